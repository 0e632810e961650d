// The queue: actors waiting for a node slot by priority (`DockerNode/WaitingTasks`), actors
// running on each node, and the instances still queued, oldest first, one page of them.

import * as api from "./api.js";
import { h, fill, table, heading, time } from "./dom.js";
import { REFRESH_MS } from "./live.js";

const QUEUED_SHOWN = 20;

export async function render(view) {
  const waiting = h("section", { "aria-labelledby": "q-actors" });
  const running = h("section", { "aria-labelledby": "q-running" });
  const queued = h("section", { "aria-labelledby": "q-instances" });
  fill(view.root, heading("Queue"), waiting, running, queued);

  async function refresh() {
    const [byPriority, nodes, instances] = await Promise.all([
      api.get("/api/v1/DockerNode/WaitingTasks"),
      api.get("/api/v1/DockerNode/All"),
      api.call("GET", `/api/v1/StateMachineInstance/All${api.query({ state: "Queued", page: 1, pageSize: QUEUED_SHOWN })}`),
    ]);
    if (view.closed) return;
    const priorities = Object.keys(byPriority).sort((a, b) => Number(b) - Number(a));
    const total = priorities.reduce((sum, p) => sum + byPriority[p], 0);
    fill(waiting, h("h2", { id: "q-actors" }, `Actors waiting for a slot: ${total}`),
      table("Waiting actors by priority (highest first)", ["Priority", "Actors"],
        priorities.map((p) => [p, String(byPriority[p])]), { id: "queue-table" }));
    const slots = nodes.reduce((sum, n) => sum + n.nodeInfo.capacity, 0);
    const busy = nodes.reduce((sum, n) => sum + n.runningJobs, 0);
    fill(running, h("h2", { id: "q-running" }, `Running actors: ${busy} of ${slots} slots`),
      table("Running actors by node", ["Node", "Running", "What"],
        nodes.map((n) => [n.name, `${n.runningJobs} / ${n.nodeInfo.capacity}${n.nodeInfo.drained ? " (drained)" : ""}`,
          n.runningJobDescriptions.length ? h("ul", { class: "plain" }, n.runningJobDescriptions.map((d) => h("li", {}, h("small", {}, d)))) : "—"])));
    const count = instances.total ?? instances.data.length;
    fill(queued, h("h2", { id: "q-instances" }, `Queued instances: ${count}`),
      table(count > QUEUED_SHOWN ? `The newest ${QUEUED_SHOWN}` : "Queued instances", ["Instance", "State machine", "Priority", "Created"],
        instances.data.map((i) => [h("a", { href: `#/instance/${i.id}` }, i.id.slice(0, 8)), i.name, String(i.priority), time(i.createdAt)])),
      h("p", {}, h("a", { href: "#/instances?state=Queued" }, "All queued instances")));
  }
  await view.every(REFRESH_MS, refresh);
}
