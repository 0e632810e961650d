// The instances page: one page of the listing at a time (never all of them), filtered by
// state machine, state, stage and creation time, refreshed live. The filters live in the
// address (`#/instances?name=judge&state=Running&page=2`), so a filtered view can be linked.

import * as api from "./api.js";
import { h, fill, table, badge, field, heading, time, duration } from "./dom.js";
import { REFRESH_MS } from "./live.js";

const STATES = ["Queued", "Running", "Succeeded", "Failed", "Cancelled"];
const PAGE_SIZES = [20, 50, 100];

/** A `datetime-local` value as epoch milliseconds, for the API's time filters. */
function millis(local) {
  return local ? String(new Date(local).getTime()) : undefined;
}

function filterForm(params) {
  const name = h("input", { name: "name", list: "machine-names", value: params.get("name") || "", autocomplete: "off" });
  const state = h("select", { name: "state" }, h("option", { value: "" }, "any"),
    STATES.map((s) => h("option", { value: s, selected: params.get("state") === s }, s)));
  const stage = h("input", { name: "stage", value: params.get("stage") || "", autocomplete: "off" });
  const from = h("input", { name: "from", type: "datetime-local", value: params.get("from") || "" });
  const to = h("input", { name: "to", type: "datetime-local", value: params.get("to") || "" });
  const size = h("select", { name: "pageSize" },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: Number(params.get("pageSize") || 20) === n }, String(n))));
  const names = h("datalist", { id: "machine-names" });
  api.get(`/api/v1/StateMachine/All${api.query({ page: 1, pageSize: 100 })}`)
    .then((machines) => fill(names, machines.map((m) => h("option", { value: m.name }))))
    .catch(() => {});
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter instances" },
    field("State machine", name), names, field("State", state), field("Stage", stage),
    field("Created from", from), field("Created until", to), field("Per page", size),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Filter"),
      h("a", { href: "#/instances", class: "button" }, "Clear")));
  const filtered = ["name", "state", "stage", "from", "to"].some((key) => params.get(key));
  // Open on a wide screen or when a filter is set; on a phone the listing comes first.
  const box = h("details", { class: "filter-box", open: filtered || matchMedia("(min-width: 700px)").matches },
    h("summary", {}, filtered ? "Filters (set)" : "Filters"), form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    location.hash = `#/instances?${next}`;
  });
  return box;
}

function row(instance) {
  return h("tr", { "data-instance": instance.id },
    h("td", {}, h("a", { href: `#/instance/${instance.id}` }, h("code", {}, instance.id.slice(0, 8)))),
    h("td", {}, instance.name),
    h("td", {}, badge(instance.state)),
    h("td", {}, instance.stage || "—"),
    h("td", {}, time(instance.createdAt)),
    h("td", {}, instance.state === "Queued" ? "—" : duration(instance.startTime, instance.endTime)),
    h("td", {}, String(instance.startedActors.length)));
}

export async function render(view, params) {
  const page = Math.max(1, Number(params.get("page") || 1));
  const pageSize = Number(params.get("pageSize") || 20);
  const listing = h("div", { id: "instance-list" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of instances" });
  fill(view.root, heading("Instances"), filterForm(params), listing, pager);

  const path = `/api/v1/StateMachineInstance/All${api.query({
    name: params.get("name"), state: params.get("state"), stage: params.get("stage"),
    begin_time: millis(params.get("from")), finish_time: millis(params.get("to")), page, pageSize,
  })}`;
  const linkTo = (n) => {
    const next = new URLSearchParams(params);
    next.set("page", n);
    return `#/instances?${next}`;
  };

  async function refresh() {
    const { data, total } = await api.call("GET", path);
    if (view.closed) return;
    const pages = Math.max(1, Math.ceil((total ?? data.length) / pageSize));
    fill(listing, table(`Instances, newest first: ${total ?? data.length} in all`,
      ["Instance", "State machine", "State", "Stage", "Created", "Took", "Actors"], data.map(row)));
    fill(pager,
      page > 1 ? h("a", { href: linkTo(page - 1), rel: "prev", class: "button" }, "Newer") : null,
      h("span", { class: "page-of" }, `page ${page} of ${pages}`),
      page < pages ? h("a", { href: linkTo(page + 1), rel: "next", class: "button" }, "Older") : null);
  }
  await view.every(REFRESH_MS, refresh);
}
