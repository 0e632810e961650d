// An instance's dataflow drawn in the page: the API's graph route (Graphviz DOT, as the
// service writes it) read by a small DOT reader, laid out in columns from left to right
// (each node one column past everything that flows into it), and drawn as SVG.

import { svg } from "./dom.js";

/** DOT text into `{label, nodes: Map(id → attrs), edges: [{from, to, attrs}]}`. Reads the
 * statements the service writes: node, edge (`a -> b`) and graph attribute statements. */
export function parseDot(text) {
  const tokens = tokenize(text);
  const graph = { label: "", nodes: new Map(), edges: [] };
  let i = tokens.findIndex((t) => t.value === "{") + 1;
  const attrs = () => {
    const found = {};
    if (tokens[i] && tokens[i].value === "[") {
      i += 1;
      while (i < tokens.length && tokens[i].value !== "]") {
        const key = tokens[i].value;
        if (tokens[i + 1] && tokens[i + 1].value === "=") {
          found[key] = tokens[i + 2] ? tokens[i + 2].value : "";
          i += 3;
        } else {
          i += 1;
        }
        if (tokens[i] && tokens[i].value === ",") i += 1;
      }
      i += 1;
    }
    return found;
  };
  while (i < tokens.length && tokens[i].value !== "}") {
    const first = tokens[i];
    if (first.value === ";") { i += 1; continue; }
    if (tokens[i + 1] && tokens[i + 1].value === "=") {
      if (first.value === "label") graph.label = tokens[i + 2].value;
      i += 3;
    } else if (tokens[i + 1] && tokens[i + 1].value === "->") {
      const to = tokens[i + 2].value;
      i += 3;
      graph.edges.push({ from: first.value, to, attrs: attrs() });
      for (const id of [first.value, to]) if (!graph.nodes.has(id)) graph.nodes.set(id, {});
    } else {
      i += 1;
      const found = attrs();
      graph.nodes.set(first.value, { ...(graph.nodes.get(first.value) || {}), ...found });
    }
  }
  return graph;
}

function tokenize(text) {
  const tokens = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) { i += 1; continue; }
    if (c === "-" && text[i + 1] === ">") { tokens.push({ value: "->" }); i += 2; continue; }
    if ("{}[]=;,".includes(c)) { tokens.push({ value: c }); i += 1; continue; }
    if (c === "\"") {
      let value = "";
      i += 1;
      while (i < text.length && text[i] !== "\"") {
        if (text[i] === "\\" && i + 1 < text.length) {
          value += text[i + 1] === "n" ? "\n" : text[i + 1];
          i += 2;
        } else {
          value += text[i];
          i += 1;
        }
      }
      tokens.push({ value, quoted: true });
      i += 1;
      continue;
    }
    let word = "";
    while (i < text.length && !/[\s{}[\]=;,"]/.test(text[i]) && !(text[i] === "-" && text[i + 1] === ">")) {
      word += text[i];
      i += 1;
    }
    tokens.push({ value: word });
  }
  return tokens;
}

/** Column of each node: one past the furthest of its predecessors (bounded, so a cycle
 * cannot loop), and an order within each column near the mean row of its predecessors. */
export function layout(graph) {
  const ids = [...graph.nodes.keys()];
  const incoming = new Map(ids.map((id) => [id, []]));
  for (const edge of graph.edges) incoming.get(edge.to).push(edge.from);
  const column = new Map(ids.map((id) => [id, 0]));
  for (let pass = 0; pass < ids.length; pass += 1) {
    let moved = false;
    for (const edge of graph.edges) {
      if (column.get(edge.to) < column.get(edge.from) + 1) {
        column.set(edge.to, column.get(edge.from) + 1);
        moved = true;
      }
    }
    if (!moved) break;
  }
  // A node nothing flows into (an initial blob, a file the script wrote) stands just left of
  // its first reader rather than at the far left, so its edges stay short.
  for (const id of ids) {
    if (incoming.get(id).length) continue;
    const readers = graph.edges.filter((e) => e.from === id).map((e) => column.get(e.to));
    if (readers.length) column.set(id, Math.max(0, Math.min(...readers) - 1));
  }
  const columns = [];
  for (const id of ids) (columns[column.get(id)] ||= []).push(id);
  const row = new Map();
  columns.forEach((members, c) => {
    if (c > 0) {
      const mean = (id) => {
        const rows = incoming.get(id).map((from) => row.get(from)).filter((r) => r !== undefined);
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
      };
      members.sort((a, b) => mean(a) - mean(b));
    }
    members.forEach((id, r) => row.set(id, r));
  });
  return { columns: columns.filter(Boolean), row, column };
}

const STATE_OF_FILL = { palegreen: "succeeded", lightcoral: "failed", lightblue: "running" };
const ROW_HEIGHT = 56;
const COLUMN_GAP = 90;
const CHAR_WIDTH = 7.2;

/** The SVG of a DOT graph. */
export function draw(dotText) {
  const graph = parseDot(dotText);
  const { columns } = layout(graph);
  const widths = columns.map((members) => Math.max(80, ...members.map((id) => {
    const lines = (graph.nodes.get(id).label ?? id).split("\n");
    return 24 + CHAR_WIDTH * Math.max(...lines.map((l) => l.length));
  })));
  const tallest = Math.max(1, ...columns.map((m) => m.length));
  const height = tallest * ROW_HEIGHT + 20;
  const place = new Map();
  let x = 10;
  columns.forEach((members, c) => {
    const offset = (height - members.length * ROW_HEIGHT) / 2;
    members.forEach((id, r) => place.set(id, { x, y: offset + r * ROW_HEIGHT + 6, w: widths[c], h: ROW_HEIGHT - 14 }));
    x += widths[c] + COLUMN_GAP;
  });
  const width = Math.max(200, x - COLUMN_GAP + 10);
  const edges = graph.edges.map((edge) => {
    const a = place.get(edge.from);
    const b = place.get(edge.to);
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2;
    const x2 = b.x - 2;
    const y2 = b.y + b.h / 2;
    const bend = (x2 - x1) / 2;
    return svg("path", { class: "edge", d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" },
      edge.attrs.label ? svg("title", {}, edge.attrs.label) : null);
  });
  const nodes = [...place.entries()].map(([id, p]) => {
    const attrs = graph.nodes.get(id);
    const lines = (attrs.label ?? id).split("\n");
    const isBlob = attrs.shape === "ellipse";
    const kind = isBlob ? "blob" : `actor state-${STATE_OF_FILL[attrs.fillcolor] || "other"}`;
    const shape = isBlob
      ? svg("ellipse", { cx: p.x + p.w / 2, cy: p.y + p.h / 2, rx: p.w / 2, ry: p.h / 2 })
      : svg("rect", { x: p.x, y: p.y, width: p.w, height: p.h, rx: 4 });
    const first = p.y + p.h / 2 - ((lines.length - 1) * 14) / 2 + 4;
    return svg("g", { class: `node ${kind}`, "data-id": id },
      svg("title", {}, lines.join(" · ")), shape,
      lines.map((line, n) => svg("text", { x: p.x + p.w / 2, y: first + n * 14, "text-anchor": "middle" }, line)));
  });
  return svg("svg", { class: "graph", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": graph.label || "dataflow" },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
    edges, nodes);
}
