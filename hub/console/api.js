// The hub's REST API as the console uses it. Every failure becomes an ApiError carrying the hub's
// JSON `error`, `message` and `fields`, so the page can show what the hub said.

// Relative to /console/, so a hub served under a path prefix still works.
const base = new URL("../", document.baseURI);

export class ApiError extends Error {
  constructor(status, body) {
    const fields = Array.isArray(body.fields) ? body.fields : [];
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.error || "http_error";
    this.fields = fields;
  }

  describe() {
    const fields = this.fields
      .filter((f) => f && f.field && !this.message.includes(f.field))
      .map((f) => `${f.field}: ${f.message}`);
    const extra = fields.length ? ` (${fields.join("; ")})` : "";
    return `${this.status ? this.status + " " : ""}${this.code}: ${this.message}${extra}`;
  }
}

// With auth enabled on the hub: the bearer token from the login, kept for this tab only
// (sessionStorage: gone when the tab closes, never shared with other tabs or sent as a cookie).
const TOKEN_KEY = "omnihub.token";
let onUnauthorized = () => {};

export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  set: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
  // Called when the hub answers 401 (no, an expired or a revoked token): the page asks to log in.
  onUnauthorized: (fn) => {
    onUnauthorized = fn;
  },
};

const url = (path) => new URL(path.replace(/^\//, ""), base);
const seg = encodeURIComponent;

async function send(method, path, init) {
  const token = session.token();
  if (token) init.headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url(path), { method, ...init });
  } catch (err) {
    throw new ApiError(0, { error: "network_error", message: `the hub did not answer (${err.message})` });
  }
  if (response.status === 401 && path !== "/v1/auth/login") {
    session.clear();
    onUnauthorized();
  }
  return response;
}

async function failure(response) {
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  return new ApiError(response.status, data && typeof data === "object" ? data : { message: text.slice(0, 200) });
}

export async function request(method, path, body) {
  const init = { headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(method, path, init);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

// Bytes (an attachment) rather than JSON: fetched with the token like every call, so a hub with
// auth enabled serves them too (an <img src> or a plain link would carry no Authorization header).
export async function download(path) {
  const response = await send("GET", path, { headers: {} });
  if (!response.ok) throw await failure(response);
  return response.blob();
}

// Every item of a list the hub pages (`{"items": [...], "next": cursor}`), following `next`.
async function everything(path) {
  const items = [];
  let cursor = null;
  let summary = null;
  do {
    const join = path.includes("?") ? "&" : "?";
    const page = await request("GET", `${path}${join}limit=200${cursor ? `&cursor=${seg(cursor)}` : ""}`);
    summary = page;
    items.push(...page.items);
    cursor = page.next;
  } while (cursor);
  return { ...summary, items, next: null };
}

export const api = {
  me: () => request("GET", "/v1/auth/me"),
  login: (username, password) => request("POST", "/v1/auth/login", { username, password }),
  logout: () => request("POST", "/v1/auth/logout"),
  setPresence: (agent, presence) => request("POST", `/v1/agents/${seg(agent)}/presence`, { presence }),
  heldTasks: (agent) => everything(`/v1/tasks?agent_id=${seg(agent)}`),
  accept: (task, agent) => request("POST", `/v1/tasks/${seg(task)}/accept`, { agent_id: agent }),
  decline: (task, agent, reason) => request("POST", `/v1/tasks/${seg(task)}/decline`, { agent_id: agent, reason }),
  wrapup: (task, body) => request("POST", `/v1/tasks/${seg(task)}/wrapup`, body),
  complete: (task, body) => request("POST", `/v1/tasks/${seg(task)}/complete`, body),
  interaction: (id) => request("GET", `/v1/interactions/${seg(id)}`),
  attachmentUrl: (id, n) => url(`/v1/interactions/${seg(id)}/attachments/${n}`).href,
  attachment: (id, n) => download(`/v1/interactions/${seg(id)}/attachments/${n}`),
  profile: (id) => request("GET", `/v1/profiles/${seg(id)}`),
  timeline: (id, cursor) =>
    request("GET", `/v1/profiles/${seg(id)}/timeline?limit=20${cursor ? `&cursor=${seg(cursor)}` : ""}`),
  send: (body) => request("POST", "/v1/messages", body),
  message: (id) => request("GET", `/v1/messages/${seg(id)}`),
};

// A key for one reply, so a double click or a retried request sends it once. crypto.randomUUID
// exists only in secure contexts; a console opened over plain http on a LAN address has none.
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
