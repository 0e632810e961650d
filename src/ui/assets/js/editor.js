// A code editor without dependencies: a textarea with line numbers beside it, and a problem
// (a script's compile error) marked at its line with its message next to it.

import { h, fill } from "./dom.js";

/** `script error at line 3, column 5: …` → {line: 3, column: 5}; null without a line. */
export function errorPosition(message) {
  const found = /line (\d+)(?:, column (\d+))?/.exec(message || "");
  return found ? { line: Number(found[1]), column: found[2] ? Number(found[2]) : null } : null;
}

/** An editor over `text`, labelled `label`: `{element, value(), setProblem(message), clear()}`. */
export function codeEditor(label, text) {
  const id = `code-${Math.random().toString(36).slice(2, 9)}`;
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const marker = h("div", { class: "error-mark", hidden: true, "aria-hidden": "true" });
  const bubble = h("div", { class: "error-bubble", hidden: true, id: `${id}-problem-inline` });
  const area = h("textarea", { id, class: "code", spellcheck: "false", wrap: "off", autocapitalize: "off", rows: 18 });
  area.value = text;
  const layer = h("div", { class: "code-layer" }, marker, bubble, area);
  const element = h("div", { class: "editor" }, h("label", { for: id }, label), h("div", { class: "code-frame" }, gutter, layer));
  let problem = null;

  function lines() {
    return area.value.split("\n").length;
  }

  function drawGutter() {
    const count = lines();
    if (gutter.childElementCount !== count) {
      fill(gutter, Array.from({ length: count }, (_, n) => h("span", { "data-line": n + 1 }, String(n + 1))));
    }
    for (const span of gutter.querySelectorAll(".problem")) span.classList.remove("problem");
    if (problem) {
      const span = gutter.querySelector(`[data-line="${problem.line}"]`);
      if (span) span.classList.add("problem");
    }
    gutter.scrollTop = area.scrollTop;
    placeMark();
  }

  function placeMark() {
    if (!problem) return;
    const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
    const padding = parseFloat(getComputedStyle(area).paddingTop) || 0;
    const top = padding + (problem.line - 1) * lineHeight - area.scrollTop;
    marker.style.top = `${top}px`;
    marker.style.height = `${lineHeight}px`;
    bubble.style.top = `${top + lineHeight}px`;
  }

  area.addEventListener("input", () => {
    drawGutter();
  });
  area.addEventListener("scroll", drawGutter);
  area.addEventListener("keydown", (event) => {
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey) return;
    // Tab indents; Escape first, then Tab, leaves the editor for keyboard users.
    if (area.dataset.escaped === "yes") { delete area.dataset.escaped; return; }
    event.preventDefault();
    area.setRangeText("    ", area.selectionStart, area.selectionEnd, "end");
    drawGutter();
  });
  area.addEventListener("keyup", (event) => {
    if (event.key === "Escape") area.dataset.escaped = "yes";
  });

  queueMicrotask(drawGutter);
  return {
    element,
    area,
    value: () => area.value,
    /** Marks the line named in `message` (when it names one) and shows the message there. */
    setProblem(message) {
      problem = errorPosition(message) || { line: 1, column: null };
      problem.message = message;
      marker.hidden = false;
      bubble.hidden = false;
      bubble.dataset.line = String(problem.line);
      // The position is shown by the mark; the bubble keeps what follows it in the message.
      const said = message.replace(/^.*?line \d+(, column \d+)?:\s*/, "") || message;
      fill(bubble, `line ${problem.line}${problem.column ? `, column ${problem.column}` : ""}: ${said}`);
      area.setAttribute("aria-invalid", "true");
      area.setAttribute("aria-describedby", bubble.id);
      drawGutter();
    },
    /** Puts the caret at the problem's line, for fixing it. */
    goToProblem() {
      if (!problem) return;
      const before = area.value.split("\n").slice(0, problem.line - 1).join("\n").length + (problem.line > 1 ? 1 : 0);
      area.focus();
      area.setSelectionRange(before + (problem.column ? problem.column - 1 : 0), before + (problem.column ? problem.column - 1 : 0));
    },
    clear() {
      problem = null;
      marker.hidden = true;
      bubble.hidden = true;
      area.removeAttribute("aria-invalid");
      area.removeAttribute("aria-describedby");
      drawGutter();
    },
  };
}
