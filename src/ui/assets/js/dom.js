// Building the page: elements from plain values (text is always text, never HTML), and the
// few formats every page shares (times, durations, states, sizes).

/** `h("a", {href: "#/x"}, "text", child)`: an element; `on*` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** An SVG element (the graph). */
export function svg(tag, attrs = {}, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) element.setAttribute(key, value);
  }
  append(element, children);
  return element;
}

/** Replaces the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A time as the reader's local `YYYY-MM-DD hh:mm:ss`, or a dash. */
export function time(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` + clock(date);
}

/** `hh:mm:ss` of a Date. */
export function clock(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Seconds between two times in words (`1.2 s`, `3 min 4 s`); to now while `end` is unset. */
export function duration(start, end) {
  if (!start) return "—";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  return seconds(ms / 1000);
}

export function seconds(value) {
  if (!Number.isFinite(value)) return "—";
  if (value < 10) return `${value.toFixed(2)} s`;
  if (value < 120) return `${value.toFixed(1)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

export function bytes(value) {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let n = Number(value);
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit ? n.toFixed(1) : n} ${units[unit]}`;
}

/** A state (Queued, Running, Succeeded, Failed, Cancelled, healthy…) as a labelled badge. */
export function badge(state) {
  const text = state || "unknown";
  return h("span", { class: `badge state-${text.toLowerCase()}` }, text);
}

/** A message for the reader: `kind` is `error` or `info`. Errors are announced. */
export function notice(kind, text) {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** A table with a header row; `rows` are arrays of cells, or `tr` elements. Each cell is
 * labelled with its column (`data-label`), which a narrow screen shows beside it. */
export function table(caption, headers, rows, attrs = {}) {
  const body = rows.map((cells) => {
    const row = cells instanceof Node ? cells : h("tr", {}, cells.map((c) => h("td", {}, c)));
    [...row.children].forEach((cell, i) => cell.setAttribute("data-label", headers[i] ?? ""));
    return row;
  });
  return h("div", { class: "table-wrap" },
    h("table", attrs,
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "nothing here")))));
}

/** A labelled form field; `input` is the control, given an id for its label. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hint ? h("small", {}, hint) : null);
}

/** A page heading with optional actions beside it. */
export function heading(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", {}, title), h("div", { class: "actions" }, actions));
}

/** Runs `redraw` (which replaces controls) and gives focus back to the control with the same
 * `data-key`, so a live refresh does not throw a keyboard reader out of the page. */
export function keepingFocus(redraw) {
  const key = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  redraw();
  if (key) {
    const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}
