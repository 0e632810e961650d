// The summary's chart of instances by state over time: one column per span of the last day,
// stacked by the state its instances are in now, each column a link to those instances.

import { h, clock } from "./dom.js";

const STATES = ["Queued", "Running", "Succeeded", "Failed", "Cancelled"];

/** A Date as a `datetime-local` value (the instances page's time filters). */
function local(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${clock(date)}`;
}

function column(bucket, most) {
  const start = new Date(bucket.start);
  const end = new Date(bucket.end);
  const total = STATES.reduce((sum, state) => sum + (bucket.counts[state] || 0), 0);
  const parts = STATES.filter((state) => bucket.counts[state]).map((state) => `${bucket.counts[state]} ${state.toLowerCase()}`);
  const label = `${clock(start).slice(0, 5)} to ${clock(end).slice(0, 5)}: ${total ? parts.join(", ") : "none"}`;
  const stack = h("span", { class: "stack" }, STATES.filter((state) => bucket.counts[state]).map((state) => {
    const segment = h("span", { class: `segment state-${state.toLowerCase()}` });
    // Height through the CSSOM: the page's policy allows no inline style attributes.
    segment.style.height = `${(100 * bucket.counts[state]) / most}%`;
    return segment;
  }));
  const link = `#/instances?from=${local(start)}&to=${local(new Date(end - 1000))}`;
  return h("li", {}, h("a", { href: link, title: label, "aria-label": label, "data-total": total }, stack),
    h("span", { class: "tick", "aria-hidden": "true" }, start.getMinutes() === 0 && start.getHours() % 6 === 0 ? clock(start).slice(0, 5) : ""));
}

/** The chart of `buckets` (`GET /api/v1/StateMachineInstance/Timeline`), oldest first. */
export function chart(buckets) {
  const most = Math.max(1, ...buckets.map((b) => STATES.reduce((sum, state) => sum + (b.counts[state] || 0), 0)));
  return h("figure", { class: "timeline" },
    h("ol", { class: "columns", "aria-label": `Instances created per hour over the last ${buckets.length} hours; the tallest column holds ${most}` },
      buckets.map((bucket) => column(bucket, most))),
    h("figcaption", {}, "Instances created each hour, by the state they are in now (tallest column: ", String(most), "). ",
      h("span", { class: "legend" }, STATES.map((state) =>
        h("span", { class: "key" }, h("span", { class: `swatch state-${state.toLowerCase()}` }), state)))));
}
