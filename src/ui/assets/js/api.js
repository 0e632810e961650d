// Calls to the service's API from the page: the `{code, msg, data}` envelope unwrapped, the
// bearer token asked for when the service wants one and sent with every call.

const TOKEN_KEY = "wharf.token";

/** An answer that was not a success: its HTTP status and the service's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let waitingForToken = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Shows the token dialog; resolves once a token was entered. One dialog for every caller. */
function askForToken(reason) {
  if (waitingForToken) return waitingForToken;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-reason").textContent = reason;
  waitingForToken = new Promise((resolve) => {
    form.addEventListener("submit", () => {
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      waitingForToken = null;
      resolve();
    }, { once: true });
  });
  if (!dialog.open) dialog.showModal();
  input.focus();
  return waitingForToken;
}

/** A raw response for `path`, with the token; asks for one (and retries) on a 401. */
export async function fetchRaw(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const current = token();
    if (current) headers.set("Authorization", `Bearer ${current}`);
    const response = await fetch(path, { ...options, headers });
    if (response.status !== 401) return response;
    const body = await response.json().catch(() => ({}));
    sessionStorage.removeItem(TOKEN_KEY);
    await askForToken(current ? "That token was refused; enter another." : (body.msg || "This service needs a token."));
  }
}

/** Resolves once the API accepts this page's calls: asks for a token first when the service
 * wants one, before any page shows (some pages read only public routes such as `/metrics`). */
export async function ensureAccess() {
  const response = await fetchRaw("/api/v1/DockerNode/WaitingTasks");
  await response.body?.cancel();
}

/** The `data` of an answer (and its `x-total-count`, for listings) or an ApiError. */
export async function call(method, path, body) {
  const options = { method };
  if (body !== undefined) {
    options.headers = { "content-type": "application/json" };
    options.body = JSON.stringify(body);
  }
  const response = await fetchRaw(path, options);
  const answer = await response.json().catch(() => null);
  if (!response.ok || !answer) {
    throw new ApiError(response.status, (answer && answer.msg) || `${method} ${path}: HTTP ${response.status}`);
  }
  const total = response.headers.get("x-total-count");
  return { data: answer.data, total: total === null ? null : Number(total) };
}

export const get = async (path) => (await call("GET", path)).data;
export const put = async (path, body) => (await call("PUT", path, body)).data;
export const patch = async (path, body) => (await call("PATCH", path, body)).data;
export const del = async (path) => (await call("DELETE", path)).data;

/** Text of a route that answers text (the graph, metrics). */
export async function text(path) {
  const response = await fetchRaw(path);
  const body = await response.text();
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** Saves a blob's content as a file through the browser (the token goes in the header). */
export async function download(id, name) {
  const response = await fetchRaw(`/api/v1/Blob/${encodeURIComponent(id)}/content`);
  if (!response.ok) throw new ApiError(response.status, `blob ${id}: HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Path-segment and query escaping. */
export const seg = encodeURIComponent;
export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}
