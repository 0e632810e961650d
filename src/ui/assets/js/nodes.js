// The nodes page: each Docker engine's health, load against capacity, whether it has its
// default image, drain and undrain, removal, and a form to add one.

import * as api from "./api.js";
import { h, fill, table, badge, notice, field, heading, keepingFocus } from "./dom.js";
import { REFRESH_MS } from "./live.js";

function load(node) {
  const capacity = node.nodeInfo.capacity;
  const share = capacity ? Math.min(100, Math.round((100 * node.runningJobs) / capacity)) : 0;
  return h("div", { class: "load" },
    h("meter", { min: 0, max: capacity, value: node.runningJobs, "aria-label": `${node.name} load` }),
    h("span", {}, `${node.runningJobs} / ${capacity} (${share}%)`));
}

function image(node) {
  const present = node.imagePresent === null ? "not probed yet" : node.imagePresent ? "present" : "missing";
  return h("span", {}, h("code", {}, node.nodeInfo.image), " ", h("span", { class: `image-${present.split(" ")[0]}` }, `(${present})`));
}

export async function render(view) {
  const status = h("div", { class: "messages" });
  const list = h("div", { id: "node-list" });
  const removing = new Set();

  async function act(run) {
    try {
      await run();
      fill(status);
      await refresh();
    } catch (error) {
      fill(status, notice("error", error.message));
    }
  }

  function actions(node) {
    const drained = node.nodeInfo.drained;
    const toggle = h("button", {
      type: "button", "data-key": `drain-${node.name}`, class: "drain",
      onclick: () => act(() => api.patch(`/api/v1/DockerNode/${api.seg(node.name)}`, { drained: !drained })),
    }, drained ? `Undrain ${node.name}` : `Drain ${node.name}`);
    const remove = removing.has(node.name)
      ? h("button", {
        type: "button", class: "danger", "data-key": `remove-${node.name}`,
        onclick: () => act(async () => {
          removing.delete(node.name);
          await api.del(`/api/v1/DockerNode/${api.seg(node.name)}`);
        }),
      }, `Really remove ${node.name}`)
      : h("button", {
        type: "button", "data-key": `remove-${node.name}`,
        onclick: () => { removing.add(node.name); draw(lastNodes); },
      }, "Remove");
    return h("div", { class: "row-actions" }, toggle, remove);
  }

  let lastNodes = [];
  function draw(nodes) {
    lastNodes = nodes;
    keepingFocus(() => fill(list, table("Nodes", ["Node", "Health", "Load", "Default image", "Drained", "Running", "Actions"],
      nodes.map((node) => h("tr", { "data-node": node.name },
        h("th", { scope: "row" }, node.name, h("br"), h("small", {}, node.nodeInfo.address)),
        h("td", {}, badge(node.health), node.lastError ? h("small", { class: "error-text" }, node.lastError) : null),
        h("td", {}, load(node)),
        h("td", {}, image(node)),
        h("td", { class: "drained" }, node.nodeInfo.drained ? "drained" : "no"),
        h("td", {}, node.runningJobDescriptions.length
          ? h("ul", { class: "plain" }, node.runningJobDescriptions.map((d) => h("li", {}, h("small", {}, d))))
          : "—"),
        h("td", {}, actions(node)))))));
  }

  async function refresh() {
    const { data } = await api.call("GET", "/api/v1/DockerNode/All");
    if (!view.closed) draw(data);
  }

  const form = h("form", { class: "inline-form", "aria-labelledby": "add-node" });
  const name = h("input", { name: "name", required: true, autocomplete: "off" });
  const address = h("input", { name: "address", required: true, placeholder: "tcp://10.0.0.2:2375", autocomplete: "off" });
  const imageInput = h("input", { name: "image", placeholder: "wharf/actor:latest", autocomplete: "off" });
  const capacity = h("input", { name: "capacity", type: "number", min: 1, value: 4 });
  fill(form, h("h2", { id: "add-node" }, "Add a node"),
    field("Name", name), field("Engine address", address, "unix://, tcp:// or https://"),
    field("Default image", imageInput, "empty: the service's default"), field("Capacity", capacity),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add node")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), address: address.value.trim(), capacity: Number(capacity.value) };
    if (imageInput.value.trim()) body.image = imageInput.value.trim();
    act(async () => {
      await api.put("/api/v1/DockerNode", body);
      form.reset();
    });
  });

  fill(view.root, heading("Nodes"), status, list, form,
    h("p", { class: "hint" }, "Load, health and image presence come from the last probe; times are shown in your time zone. ",
      h("a", { href: "#/queue" }, "Actors waiting for a slot"), "."));
  await view.every(REFRESH_MS, refresh);
}
