// The summary: instances by state now and over the last day, success rate, actor durations,
// nodes and the queue, from the same figures as `/metrics`.

import * as api from "./api.js";
import { h, fill, table, heading, seconds } from "./dom.js";
import { REFRESH_MS } from "./live.js";
import { parseMetrics, select, sum, histogram } from "./metrics.js";
import { chart } from "./timeline.js";

const STATES = ["Queued", "Running", "Succeeded", "Failed", "Cancelled"];

function bars(counts) {
  const most = Math.max(1, ...counts.map(([, n]) => n));
  return h("ul", { class: "bars", "aria-label": "Instances by state" }, counts.map(([state, n]) => {
    const fillBar = h("span", { class: `bar-fill state-${state.toLowerCase()}` });
    // Width through the CSSOM: the page's policy allows no inline style attributes.
    fillBar.style.width = `${(100 * n) / most}%`;
    return h("li", {}, h("span", { class: "bar-label" }, state),
      h("span", { class: "bar", role: "img", "aria-label": `${state}: ${n}` }, fillBar),
      h("span", { class: "bar-value", "data-state": state }, String(n)));
  }));
}

function tile(label, value, id) {
  return h("div", { class: "tile" }, h("span", { class: "tile-label" }, label), h("strong", { id }, value));
}

export async function render(view) {
  const body = h("div", { id: "summary" });
  fill(view.root, heading("Summary"), body);
  async function refresh() {
    const [metrics, timeline] = await Promise.all([api.text("/metrics"),
      api.get(`/api/v1/StateMachineInstance/Timeline${api.query({ hours: 24, buckets: 24 })}`)]);
    const samples = parseMetrics(metrics);
    if (view.closed) return;
    const counts = STATES.map((state) => [state, sum(samples, "wharf_instances", { status: state })]);
    const ended = counts.filter(([s]) => ["Succeeded", "Failed", "Cancelled"].includes(s)).reduce((t, [, n]) => t + n, 0);
    const succeeded = counts.find(([s]) => s === "Succeeded")[1];
    const rate = ended ? `${((100 * succeeded) / ended).toFixed(1)}%` : "—";
    const nodes = select(samples, "wharf_node_up");
    const up = nodes.filter((s) => s.value === 1).length;
    const capacity = sum(samples, "wharf_node_capacity");
    const running = sum(samples, "wharf_node_running_actors");
    const durations = ["Succeeded", "Failed", "Cancelled"].map((status) => {
      const all = histogram(samples, "wharf_actor_duration_seconds", { status });
      const run = histogram(samples, "wharf_actor_run_seconds", { status });
      return [status, String(all.count), seconds(all.mean), seconds(all.p50), seconds(all.p90), seconds(run.mean)];
    });
    const wait = histogram(samples, "wharf_actor_queue_wait_seconds");
    fill(body,
      h("div", { class: "tiles" },
        tile("Success rate of ended instances", rate, "success-rate"),
        tile("Nodes up", `${up} of ${nodes.length}`, "nodes-up"),
        tile("Actors running", `${running} of ${capacity} slots`, "actors-running"),
        tile("Actors waiting for a slot", String(sum(samples, "wharf_actors_queued")), "actors-queued"),
        tile("Mean wait for a slot", seconds(wait.mean), "mean-wait")),
      h("h2", {}, "Instances by state"), bars(counts),
      h("h2", {}, "Instances over the last day"), chart(timeline),
      h("p", {}, h("a", { href: "#/instances" }, "Browse instances")),
      h("h2", {}, "Actor durations"),
      table("From asking to ending (including the wait for a node), by how actors ended; the run column is the time a node slot was held",
        ["Ended as", "Actors", "Mean", "Median (est.)", "90th percentile (est.)", "Mean run"], durations),
      h("p", { class: "hint" }, "Medians and percentiles are estimated from histogram buckets. Raw figures: ",
        h("a", { href: "/metrics" }, "/metrics"), "."));
  }
  await view.every(REFRESH_MS, refresh);
}
