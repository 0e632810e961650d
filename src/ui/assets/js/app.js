// The console's entry point: hash routes (`#/nodes`, `#/instance/<id>` …) to pages; each
// page is a module exporting `render(view, ...params)`.

import * as api from "./api.js";
import { h, fill, notice } from "./dom.js";
import { View, markFailed } from "./live.js";
import * as nodes from "./nodes.js";
import * as queue from "./queue.js";
import * as instances from "./instances.js";
import * as instance from "./instance.js";
import * as definitions from "./definitions.js";
import * as summary from "./summary.js";

/** Route patterns to pages; the first segment names the page, the rest are its parameters. */
const ROUTES = {
  summary: summary.render,
  nodes: nodes.render,
  queue: queue.render,
  instances: instances.render,
  instance: instance.render,
  machines: (view) => definitions.renderList(view, "machines"),
  machine: (view, name) => definitions.renderEditor(view, "machines", typeof name === "string" ? name : null),
  actors: (view) => definitions.renderList(view, "actors"),
  actor: (view, name) => definitions.renderEditor(view, "actors", typeof name === "string" ? name : null),
};

let current = null;
let access = null;

/** `#/instances?status=Failed` → ["instances"], URLSearchParams. */
export function parseHash(hash) {
  const [path, search = ""] = hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search) };
}

async function show() {
  if (current) current.close();
  const root = document.getElementById("main");
  const { parts, params } = parseHash(location.hash);
  const [page = "summary", ...rest] = parts;
  const render = ROUTES[page];
  for (const link of document.querySelectorAll("nav a")) {
    const target = link.getAttribute("href").slice(2);
    const active = target === page || (page === "instance" && target === "instances")
      || (page === "machine" && target === "machines") || (page === "actor" && target === "actors");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = new View(root);
  current = view;
  fill(root);
  if (!render) {
    fill(root, h("h1", {}, "Not found"), notice("error", `There is no page “${page}”.`));
    return;
  }
  try {
    access ||= api.ensureAccess().catch((error) => {
      access = null;
      throw error;
    });
    await access;
    if (view.closed) return;
    await render(view, ...rest, params);
  } catch (error) {
    if (view.closed) return;
    markFailed(error);
    root.append(notice("error", error instanceof api.ApiError ? error.message : `The page failed: ${error.message}`));
  }
}

window.addEventListener("hashchange", show);
window.addEventListener("DOMContentLoaded", show);
