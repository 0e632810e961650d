// One instance: its state, stage, parameters, result and exception; its actors with node,
// container, times, limits and outputs to download; its dataflow graph and its actors' logs;
// cancel, and re-run from a stage. Refreshed live while it runs.

import * as api from "./api.js";
import { h, fill, table, badge, notice, field, heading, keepingFocus, time, duration } from "./dom.js";
import { REFRESH_MS } from "./live.js";
import { draw } from "./graph.js";

const FINISHED = ["Succeeded", "Failed", "Cancelled"];

function downloads(blobs) {
  if (!blobs.length) return "—";
  return h("ul", { class: "plain" }, blobs.map((blob) => h("li", {},
    h("button", { type: "button", class: "link", "data-key": `dl-${blob.id}`, "data-blob": blob.id,
      onclick: () => api.download(blob.id, blob.name) }, blob.name))));
}

/** An actor definition's limits in words (time, memory, CPUs, network). */
function limits(limitation) {
  if (!limitation) return "service defaults";
  const parts = [];
  if (limitation.executionTimeout) parts.push(`${limitation.executionTimeout} ms`);
  if (limitation.memory) parts.push(`${Math.round(limitation.memory / 1048576)} MiB`);
  if (limitation.cpuQuota && limitation.cpuPeriod) parts.push(`${(limitation.cpuQuota / limitation.cpuPeriod).toFixed(2)} CPU`);
  if (limitation.enableNetwork) parts.push("network");
  return parts.length ? parts.join(", ") : "service defaults";
}

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

function stages(instance) {
  const seen = ["Start"];
  for (const actor of instance.startedActors) if (actor.stage && !seen.includes(actor.stage)) seen.push(actor.stage);
  if (instance.stage && !seen.includes(instance.stage)) seen.push(instance.stage);
  return seen;
}

export async function render(view, id) {
  const base = `/api/v1/StateMachineInstance/${api.seg(id)}`;
  const messages = h("div", { class: "messages" });
  const summary = h("section", { "aria-label": "Instance", id: "instance-summary" });
  const controls = h("section", { "aria-labelledby": "i-controls" });
  const actors = h("section", { "aria-labelledby": "i-actors", id: "instance-actors" });
  const graph = h("section", { "aria-labelledby": "i-graph" }, h("h2", { id: "i-graph" }, "Dataflow"), h("div", { class: "graph-wrap", id: "graph" }));
  const logs = h("section", { "aria-labelledby": "i-logs" }, h("h2", { id: "i-logs" }, "Logs"), h("div", { id: "logs" }));
  fill(view.root, heading(`Instance ${id.slice(0, 8)}`), messages, summary, controls, actors, graph, logs);

  const actorLimits = new Map();
  let shown = "";
  let cursor = 0;

  async function act(run, done) {
    try {
      await run();
      fill(messages, notice("info", done));
      shown = "";
      await refresh();
    } catch (error) {
      fill(messages, notice("error", error.message));
    }
  }

  function drawControls(instance) {
    const running = !FINISHED.includes(instance.state);
    const stage = h("select", { name: "stage", "data-key": "rerun-stage" }, stages(instance).map((s) => h("option", { value: s }, s)));
    const form = h("form", { class: "inline-form", id: "rerun-form" },
      field("Re-run from stage", stage),
      h("div", { class: "actions" }, h("button", { type: "submit", "data-key": "rerun" }, "Re-run")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      act(() => api.patch(base, { stage: stage.value }), `Re-running from ${stage.value}.`);
    });
    fill(controls, h("h2", { id: "i-controls" }, "Actions"),
      running ? h("button", { type: "button", class: "danger", "data-key": "cancel",
        onclick: () => act(() => api.del(base), "Cancelled.") }, "Cancel instance") : null,
      form);
  }

  function drawSummary(instance) {
    const facts = [
      ["State machine", h("a", { href: `#/machine/${api.seg(instance.name)}` }, instance.name)],
      ["State", badge(instance.state)],
      ["Stage", instance.stage || "—"],
      ["Priority", String(instance.priority)],
      ["Created", time(instance.createdAt)],
      ["Started", time(instance.startTime)],
      ["Ended", time(instance.endTime)],
      ["Took", instance.state === "Queued" ? "—" : duration(instance.startTime, instance.endTime)],
      ["Re-runs", String(instance.reRunTimes)],
      ["Execution key", instance.executionKey ? h("code", {}, instance.executionKey) : "—"],
      ["Run by", instance.runBy || "—"],
      ["Limits", limits(instance.limitation)],
      ["Initial blobs", downloads(instance.initialBlobs)],
    ];
    const parameters = Object.entries(instance.parameters || {});
    fill(summary,
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { "data-fact": k }, v)])),
      h("h2", {}, "Parameters"),
      parameters.length ? table("Parameters", ["Name", "Value"], parameters.map(([k, v]) => [k, v])) : h("p", {}, "none"),
      instance.exception ? [h("h2", {}, "Exception"), h("pre", { class: "exception", id: "exception" }, instance.exception)] : null,
      instance.result !== null && instance.result !== undefined ? [h("h2", {}, "Result"), h("div", { id: "result" }, json(instance.result))] : null,
      instance.callbacks && instance.callbacks.length
        ? [h("h2", {}, "Callback"), table("Deliveries", ["Status", "Attempts", "Last error"],
          instance.callbacks.map((c) => [c.status || "—", String(c.attempts ?? "—"), c.lastError || "—"]))]
        : null);
  }

  function drawActors(instance) {
    fill(actors, h("h2", { id: "i-actors" }, `Actors: ${instance.startedActors.length}`),
      table("Actors in the order asked for", ["Actor", "State", "Stage", "Node", "Container", "Asked", "Ended", "Took", "Actor's limits", "Inputs", "Outputs"],
        instance.startedActors.map((a) => h("tr", {},
          h("td", {}, a.name, a.tag ? h("small", {}, ` [${a.tag}]`) : null,
            a.exceptions.length ? h("pre", { class: "exception" }, a.exceptions.join("\n")) : null),
          h("td", {}, badge(a.state)), h("td", {}, a.stage || "—"), h("td", {}, a.usedNode || "—"),
          h("td", {}, a.usedContainer ? h("code", { title: a.usedContainer }, a.usedContainer.slice(0, 12)) : "—"),
          h("td", {}, time(a.startTime)), h("td", {}, time(a.endTime)), h("td", { class: "nowrap" }, duration(a.startTime, a.endTime)),
          h("td", {}, actorLimits.has(a.name) ? limits(actorLimits.get(a.name)) : "…"),
          h("td", {}, downloads(a.inputs)), h("td", {}, downloads(a.outputs))))));
  }

  async function learnLimits(instance) {
    const names = [...new Set(instance.startedActors.map((a) => a.name))].filter((n) => !actorLimits.has(n));
    await Promise.all(names.map(async (name) => {
      try {
        actorLimits.set(name, (await api.get(`/api/v1/Actor/${api.seg(name)}`)).limitation);
      } catch {
        actorLimits.set(name, null);
      }
    }));
  }

  async function drawGraph() {
    const dot = await api.text(`${base}/graph`);
    if (!view.closed) fill(document.getElementById("graph"), draw(dot));
  }

  async function appendLogs() {
    const records = await api.get(`${base}/logs${api.query({ after: cursor || undefined })}`);
    const list = document.getElementById("logs");
    if (view.closed || !list) return;
    if (!cursor && !records.length) fill(list, h("p", { class: "empty" }, "No actor has ended yet."));
    if (!cursor && records.length) fill(list);
    for (const record of records) {
      cursor = Math.max(cursor, record.cursor);
      list.append(h("details", { class: "log", open: record.state !== "Succeeded" ? true : null },
        h("summary", {}, `${record.actor}${record.tag ? ` [${record.tag}]` : ""} on ${record.node} — ${record.state}, `,
          `${record.lines.length} lines${record.droppedLines ? ` (${record.droppedLines} earlier dropped)` : ""}`),
        h("pre", {}, record.lines.map((l) => h("span", { class: `line ${l.stream}` }, l.text, "\n")))));
    }
  }

  async function refresh() {
    const instance = await api.get(base);
    if (view.closed) return;
    const snapshot = JSON.stringify(instance);
    if (snapshot === shown) return;
    if (shown && JSON.parse(shown).executionKey !== instance.executionKey) {
      cursor = 0;
      fill(document.getElementById("logs"));
    }
    shown = snapshot;
    await learnLimits(instance);
    keepingFocus(() => {
      drawSummary(instance);
      drawControls(instance);
      drawActors(instance);
    });
    await Promise.all([drawGraph(), appendLogs()]);
  }

  await view.every(REFRESH_MS, refresh);
}
