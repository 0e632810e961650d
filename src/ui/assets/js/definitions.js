// State machines and actors: paged lists, and an editor to view, change or create one. A
// script the service refuses (its compile error names a line) is shown at that line.

import * as api from "./api.js";
import { h, fill, table, notice, field, heading, time } from "./dom.js";
import { codeEditor } from "./editor.js";

const PAGE_SIZE = 50;

/** What the next editor shows first: "saved" survives the move to the saved one's address. */
let flash = null;

const KINDS = {
  machines: { title: "State machines", one: "state machine", route: "machine", path: "/api/v1/StateMachine", bodyLabel: "Script (Rhai)" },
  actors: { title: "Actors", one: "actor", route: "actor", path: "/api/v1/Actor", bodyLabel: "Program (shell, run in the container)" },
};

export async function renderList(view, kindName) {
  const kind = KINDS[kindName];
  const page = Math.max(1, Number(new URLSearchParams(location.hash.split("?")[1] || "").get("page") || 1));
  const { data, total } = await api.call("GET", `${kind.path}/All${api.query({ page, pageSize: PAGE_SIZE })}`);
  if (view.closed) return;
  const pages = Math.max(1, Math.ceil((total ?? data.length) / PAGE_SIZE));
  const link = (n) => `#/${kindName}?page=${n}`;
  fill(view.root,
    heading(kind.title, h("a", { href: `#/${kind.route}`, class: "button primary", id: "new-definition" }, `New ${kind.one}`)),
    table(`${kind.title}, newest first: ${total ?? data.length}`, ["Name", "Updated", kindName === "actors" ? "Image" : "Lines"],
      data.map((item) => [h("a", { href: `#/${kind.route}/${api.seg(item.name)}` }, item.name), time(item.updatedAt),
        kindName === "actors" ? (item.image || "node default") : String(item.body.split("\n").length)])),
    h("nav", { class: "pager", "aria-label": `Pages of ${kind.title.toLowerCase()}` },
      page > 1 ? h("a", { href: link(page - 1), class: "button" }, "Previous") : null,
      h("span", { class: "page-of" }, `page ${page} of ${pages}`),
      page < pages ? h("a", { href: link(page + 1), class: "button" }, "Next") : null));
}

/** A limitation as JSON text, and back (empty text: none). */
function limitationField(value) {
  const area = h("textarea", { name: "limitation", rows: 3, class: "small-code", spellcheck: "false" });
  area.value = value ? JSON.stringify(value, null, 1) : "";
  return area;
}

function readLimitation(area) {
  const text = area.value.trim();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`field \`limitation\`: not JSON (${error.message})`);
  }
}

export async function renderEditor(view, kindName, name) {
  const kind = KINDS[kindName];
  const existing = name ? await api.get(`${kind.path}/${api.seg(name)}`) : null;
  if (view.closed) return;
  const messages = h("div", { class: "messages", id: "editor-messages" }, flash ? notice("info", flash) : null);
  flash = null;
  const nameInput = h("input", { name: "name", required: true, value: existing ? existing.name : "", autocomplete: "off" });
  const editor = codeEditor(kind.bodyLabel, existing ? existing.body : "");
  const limitation = limitationField(existing && existing.limitation);
  const extra = {};
  const fields = [field("Name", nameInput)];
  if (kindName === "actors") {
    extra.image = h("input", { name: "image", value: (existing && existing.image) || "", autocomplete: "off" });
    extra.outputs = h("input", { name: "outputs", value: existing ? existing.outputs.join(", ") : "", autocomplete: "off" });
    extra.sandbox = h("select", { name: "sandbox" }, ["fresh", "warm"].map((s) =>
      h("option", { value: s, selected: existing && existing.sandbox === s }, s)));
    fields.push(field("Image", extra.image, "empty: the node's default image"),
      field("Outputs", extra.outputs, "files kept after a run, comma-separated"), field("Sandbox", extra.sandbox));
  }
  const form = h("form", { class: "definition", id: "definition-form" },
    fields, editor.element,
    field("Limits (JSON)", limitation, "e.g. {\"executionTimeout\": 1000, \"memory\": 67108864}; empty: none"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "save" }, existing ? "Save" : `Create ${kind.one}`)));

  function body() {
    const fieldsOut = { name: nameInput.value.trim(), body: editor.value(), limitation: readLimitation(limitation) };
    if (kindName === "actors") {
      fieldsOut.image = extra.image.value.trim() || null;
      fieldsOut.outputs = extra.outputs.value.split(",").map((s) => s.trim()).filter(Boolean);
      fieldsOut.sandbox = extra.sandbox.value;
    }
    return fieldsOut;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(messages);
    try {
      const fieldsOut = body();
      if (existing) await api.patch(`${kind.path}/${api.seg(existing.name)}`, fieldsOut);
      else await api.put(kind.path, fieldsOut);
      editor.clear();
      const saved = `Saved ${kind.one} ${fieldsOut.name}.`;
      if (!existing || existing.name !== fieldsOut.name) {
        flash = saved;
        location.hash = `#/${kind.route}/${api.seg(fieldsOut.name)}`;
      } else {
        fill(messages, notice("info", saved));
      }
    } catch (error) {
      const inBody = /`body`/.test(error.message);
      if (inBody) editor.setProblem(error.message);
      fill(messages, notice("error", error.message),
        inBody ? h("button", { type: "button", class: "link", onclick: () => editor.goToProblem() }, "Go to the problem") : null);
    }
  });

  const remove = existing ? h("button", { type: "button", class: "danger", id: "delete",
    onclick: async () => {
      if (remove.dataset.armed !== "yes") {
        remove.dataset.armed = "yes";
        remove.textContent = `Really delete ${existing.name}`;
        return;
      }
      try {
        await api.del(`${kind.path}/${api.seg(existing.name)}`);
        location.hash = `#/${kindName}`;
      } catch (error) {
        fill(messages, notice("error", error.message));
      }
    } }, "Delete") : null;

  fill(view.root,
    heading(existing ? `${kind.one[0].toUpperCase()}${kind.one.slice(1)} ${existing.name}` : `New ${kind.one}`, remove),
    existing ? h("p", { class: "hint" }, `Created ${time(existing.createdAt)}, updated ${time(existing.updatedAt)}.`) : null,
    messages, form);
}
