// The agent console: one agent's offers, held tasks, the selected task's customer and history,
// replies and wrap-up. State lives here; the hub stays the source of truth (REST + websocket).

import { ApiError, api, newKey, session } from "./api.js";
import { AgentSocket } from "./socket.js";
import {
  h, interactionView, offerCard, profileName, profileView, remaining, taskItem, timelineItem,
} from "./view.js";

const $ = (selector) => document.querySelector(selector);
const HELD = new Set(["assigned", "wrap_up"]);
const FINAL_MESSAGE_STATES = new Set(["sent", "delivered", "read", "failed"]);

const state = {
  user: null, // {name, role, agent_id} once logged in, on a hub with auth enabled
  agent: null,
  socket: null,
  presence: null,
  offers: new Map(), // task id -> offer frame
  tasks: new Map(), // task id -> task view (assigned or wrap_up, this agent's)
  summaries: new Map(), // interaction id -> {sender, text} from offers, for the task list
  names: new Map(), // profile id -> the customer's name (an SMS or a call carries none of its own)
  selected: null,
  detail: null, // {taskId, interaction, cursor, objectUrls}
  drafts: new Map(), // task id -> reply text not sent yet
};

// --- messages to the agent ---

function showError(what, err) {
  const text = typeof err?.describe === "function" ? err.describe() : String(err?.message || err);
  const item = h("div", { class: "error" },
    h("span", {}, `${what}: ${text}`),
    h("button", { type: "button", class: "dismiss", "aria-label": "Dismiss error", onclick: () => item.remove() }, "×"));
  $("#errors").append(item);
  while ($("#errors").children.length > 5) $("#errors").firstElementChild.remove();
}

function notice(text) {
  $("#notice").textContent = text;
}

async function attempt(what, fn) {
  try {
    return await fn();
  } catch (err) {
    showError(what, err);
    return undefined;
  }
}

// --- connection ---

const STATUS_TEXT = {
  connecting: () => "Connecting…",
  connected: () => `Connected as ${state.agent}`,
  reconnecting: (d) => (d?.inSeconds ? `Connection lost; reconnecting in ${d.inSeconds} s` : "Reconnecting…"),
  refused: (d) => `Refused: ${d?.message || d?.error}`,
  closed: () => "Not connected",
};

function setConnection(status, detail) {
  const el = $("#connection");
  el.dataset.state = status;
  el.textContent = STATUS_TEXT[status](detail);
  const live = status !== "closed" && status !== "refused";
  $("#agent-id").disabled = live;
  $("#connect").hidden = live;
  $("#disconnect").hidden = !live;
  $("#presence").hidden = status !== "connected";
  // A websocket refused for an expired token just fails to open; asking who we are turns that
  // into the hub's 401, which brings the login form back.
  if (status === "reconnecting" && state.user) api.me().catch(() => {});
}

// --- login (only when the hub has auth enabled: it answers 401) ---

function showLogin() {
  disconnect();
  state.user = null;
  state.tasks.clear();
  select(null);
  renderTasks();
  $("#sign-in").hidden = true;
  $("#user").hidden = true;
  $("#login").hidden = false;
  notice("Log in to use the console.");
  $("#username").focus();
}

function showUser(user) {
  state.user = user;
  $("#login").hidden = true;
  $("#sign-in").hidden = false;
  $("#user").hidden = false;
  $("#user-name").textContent = `${user.name} (${user.role})`;
  notice("");
  // An agent user acts only as its own agent; supervisors may open any agent's console.
  $("#agent-id").readOnly = Boolean(user.agent_id);
  if (user.agent_id) {
    $("#agent-id").value = user.agent_id;
    connect(user.agent_id);
  }
}

async function logIn(event) {
  event.preventDefault();
  const username = $("#username").value.trim();
  const password = $("#password").value;
  $("#password").value = "";
  const done = await attempt("Log in", () => api.login(username, password));
  if (!done) return;
  session.set(done.token);
  showUser(done.user);
}

async function logOut() {
  await attempt("Log out", () => api.logout());
  session.clear();
  showLogin();
}

function connect(agent) {
  disconnect();
  state.agent = agent;
  const url = new URL(location.href);
  url.searchParams.set("agent", agent);
  history.replaceState(null, "", url);
  document.title = `${agent} · omnihub console`;
  state.socket = new AgentSocket(agent, { onFrame, onStatus: setConnection });
  state.socket.open();
}

function disconnect() {
  if (state.socket) state.socket.close();
  state.socket = null;
  state.offers.clear();
  renderOffers();
}

// --- frames from the hub ---

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      return onHello(frame);
    case "offer":
      // The countdown runs on this browser's clock: the hub sends the seconds left as well.
      if (frame.expires_in_s != null) frame.expires_at = new Date(Date.now() + frame.expires_in_s * 1000).toISOString();
      state.offers.set(frame.task_id, frame);
      if (frame.interaction?.id) state.summaries.set(frame.interaction.id, frame.interaction);
      if (frame.interaction?.customer && frame.profile_id) state.names.set(frame.profile_id, frame.interaction.customer);
      else if (!frame.interaction?.sender && frame.profile_id) lookUpName(frame.profile_id);
      return renderOffers();
    case "task":
      return onTask(frame);
    case "presence":
      return setPresence(frame.presence, frame.reason);
    case "ack":
      return frame.task ? onTask({ event: frame.op, task: frame.task }) : undefined;
    case "error":
      return showError("Hub", { message: frame.message || frame.error, describe: () => `${frame.error}: ${frame.message || ""}` });
    default:
      return undefined;
  }
}

async function onHello(frame) {
  setPresence(frame.agent.presence);
  // The hub re-sends pending offers right after hello: start from none.
  state.offers.clear();
  renderOffers();
  const held = await attempt("Loading your tasks", () => api.heldTasks(state.agent));
  if (!held) return;
  if (held.active === false) showError("Routing", { message: "routing is not active on this hub" });
  state.tasks = new Map(held.items.filter((t) => HELD.has(t.state)).map((t) => [t.id, t]));
  if (state.selected && !state.tasks.has(state.selected)) select(null);
  renderTasks();
}

function onTask({ event, task }) {
  const mine = task.agent_id === state.agent;
  if (!(mine && task.state === "offered")) state.offers.delete(task.id);
  if (mine && HELD.has(task.state)) {
    state.tasks.set(task.id, task);
  } else if (state.tasks.delete(task.id)) {
    notice(`Task ${event === "completed" ? "completed" : `${event}: now ${task.state}`}` +
      (task.disposition ? ` (${task.disposition})` : ""));
    if (state.selected === task.id) select(null);
  }
  renderOffers();
  renderTasks();
  if (state.selected === task.id) renderSummary();
}

function setPresence(presence, reason) {
  state.presence = presence;
  // Say why only when the hub changed it on its own (missed offers, a closed console).
  const why = reason && reason !== "requested" ? ` (${reason.replaceAll("_", " ")})` : "";
  $("#presence-value").textContent = presence + why;
  if (presence === "offline") notice("You are offline: choose Available to receive offers.");
  else if ($("#notice").textContent.startsWith("You are offline")) notice("");
  for (const button of document.querySelectorAll("#presence [data-presence]")) {
    button.setAttribute("aria-pressed", String(button.dataset.presence === presence));
  }
}

// --- offers ---

async function lookUpName(profileId) {
  if (state.names.has(profileId)) return;
  state.names.set(profileId, null);
  const profile = await attempt("Loading the customer's name", () => api.profile(profileId));
  if (!profile) return;
  state.names.set(profileId, profileName(profile));
  renderOffers();
  renderTasks();
}

function customer(interactionSender, profileId) {
  return interactionSender || state.names.get(profileId) || null;
}

function renderOffers() {
  const list = $("#offers");
  const cards = [...state.offers.values()].map((offer) =>
    offerCard(offer, customer(offer.interaction?.sender, offer.profile_id), {
      onAccept: () => accept(offer),
      onDecline: () => decline(offer),
    }));
  list.replaceChildren(...cards);
  $("#offer-count").textContent = String(state.offers.size);
  $("#no-offers").hidden = state.offers.size > 0;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("#offers .countdown[data-expires]")) {
    if (el.dataset.expires) el.textContent = remaining(el.dataset.expires, now);
  }
}

async function accept(offer) {
  const task = await attempt("Accept", () => api.accept(offer.task_id, state.agent));
  if (!task) return;
  onTask({ event: "assigned", task });
  select(task.id);
}

async function decline(offer) {
  const task = await attempt("Decline", () => api.decline(offer.task_id, state.agent, "declined in console"));
  if (!task) return;
  state.offers.delete(offer.task_id);
  renderOffers();
  notice(`Offer declined; the task went back to the ${task.queue} queue.`);
}

// --- held tasks and the selected one ---

function renderTasks() {
  const items = [...state.tasks.values()].map((task) =>
    taskItem(task, customer(state.summaries.get(task.interaction_id)?.sender, task.profile_id),
      task.id === state.selected, () => select(task.id)));
  $("#tasks").replaceChildren(...items);
  $("#task-count").textContent = String(state.tasks.size);
  $("#no-tasks").hidden = state.tasks.size > 0;
}

function renderSummary() {
  const task = state.tasks.get(state.selected);
  if (!task) return;
  const waited = task.answered_at ? ` · answered ${new Date(task.answered_at).toLocaleTimeString()}` : "";
  $("#task-summary").textContent = `${task.channel} · queue ${task.queue} · priority ${task.priority} · ` +
    `${task.state === "wrap_up" ? "wrap-up" : task.state}${waited}`;
  $("#wrap").disabled = task.state !== "assigned";
  $("#reply-label").textContent = `Reply on ${task.channel}`;
}

function select(taskId) {
  if (state.selected) state.drafts.set(state.selected, $("#reply-text").value);
  for (const objectUrl of state.detail?.objectUrls || []) URL.revokeObjectURL(objectUrl);
  state.selected = taskId;
  renderTasks();
  const task = taskId ? state.tasks.get(taskId) : null;
  $("#detail").hidden = !task;
  if (!task) {
    state.detail = null;
    return;
  }
  state.detail = { taskId, interaction: null, cursor: null, objectUrls: [] };
  const who = customer(state.summaries.get(task.interaction_id)?.sender, task.profile_id);
  $("#detail-title").textContent = `Task: ${who || "customer"}`;
  renderSummary();
  $("#reply-text").value = state.drafts.get(taskId) || "";
  $("#reply-status").textContent = "";
  $("#disposition").value = task.disposition || "";
  $("#note").value = task.note || "";
  for (const id of ["#interaction", "#profile"]) $(`${id} .body`).replaceChildren(h("p", { class: "muted" }, "Loading…"));
  $("#timeline .timeline").replaceChildren();
  loadDetail(task);
}

async function loadDetail(task) {
  const still = () => state.detail && state.detail.taskId === task.id;
  const jobs = [];
  if (task.interaction_id) {
    jobs.push(attempt("Loading the interaction", () => api.interaction(task.interaction_id)).then((doc) => {
      if (!still() || !doc) return;
      state.detail.interaction = doc;
      state.summaries.set(doc.id, { sender: doc.sender?.display_name, text: doc.content?.text });
      renderTasks();
      $("#interaction .body").replaceChildren(...interactionView(doc, attachmentFiles(doc.id)));
      const subject = $("#reply-subject");
      subject.hidden = task.channel !== "email";
      subject.value = doc.subject ? (/^re:/i.test(doc.subject) ? doc.subject : `Re: ${doc.subject}`) : "";
    }));
  }
  if (task.profile_id) {
    jobs.push(attempt("Loading the profile", () => api.profile(task.profile_id)).then((profile) => {
      if (!still() || !profile) return;
      state.names.set(task.profile_id, profileName(profile));
      $("#profile .body").replaceChildren(...profileView(profile));
      $("#detail-title").textContent = `Task: ${profileName(profile)}`;
      renderTasks();
    }));
    jobs.push(loadTimeline(task, null));
  } else {
    $("#profile .body").replaceChildren(h("p", { class: "muted" }, "No profile for this task."));
  }
  await Promise.all(jobs);
}

// Attachments come with the agent's token (an <img src> would carry none), then show from memory.
function attachmentFiles(interactionId) {
  const detail = state.detail;
  const fetchUrl = async (n) => {
    const blob = await api.attachment(interactionId, n);
    const objectUrl = URL.createObjectURL(blob);
    detail.objectUrls.push(objectUrl);
    return objectUrl;
  };
  return {
    url: (n) => api.attachmentUrl(interactionId, n),
    image: (n, img) => {
      attempt("Loading an attachment", () => fetchUrl(n)).then((objectUrl) => {
        if (objectUrl) img.src = objectUrl;
      });
    },
    open: async (event, n, name) => {
      event.preventDefault();
      const objectUrl = await attempt(`Downloading ${name}`, () => fetchUrl(n));
      if (!objectUrl) return;
      const link = h("a", { href: objectUrl, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
    },
  };
}

async function loadTimeline(task, cursor) {
  const page = await attempt("Loading the history", () => api.timeline(task.profile_id, cursor));
  if (!page || !state.detail || state.detail.taskId !== task.id) return;
  const list = $("#timeline .timeline");
  const items = page.items.map((doc) => timelineItem(doc, task.interaction_id));
  if (cursor) list.append(...items);
  else list.replaceChildren(...items);
  state.detail.cursor = page.next;
  $("#older").hidden = !page.next;
}

// --- reply ---

async function sendReply(event) {
  event.preventDefault();
  const task = state.tasks.get(state.selected);
  const text = $("#reply-text").value.trim();
  if (!task || !text) return;
  const body = {
    in_reply_to: task.interaction_id, channel: task.channel, text, purpose: "transactional",
    idempotency_key: state.detail.replyKey || (state.detail.replyKey = newKey()),
  };
  if (task.channel === "email" && $("#reply-subject").value.trim()) body.subject = $("#reply-subject").value.trim();
  const button = $("#send");
  button.disabled = true;
  const message = await attempt("Send reply", () => api.send(body));
  button.disabled = false;
  if (!message) return;
  state.detail.replyKey = null;
  $("#reply-text").value = "";
  state.drafts.delete(task.id);
  $("#reply-status").textContent = `Reply ${message.state} on ${message.channel} (message ${message.id})`;
  followMessage(task, message);
}

async function followMessage(task, message) {
  // The dispatcher sends in the background; say how it went, and show it in the history once sent.
  for (let i = 0; i < 30 && !FINAL_MESSAGE_STATES.has(message.state); i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = await attempt("Checking the reply", () => api.message(message.id));
    if (!now) return;
    message = now;
  }
  if (!state.detail || state.detail.taskId !== task.id) return;
  if (message.state === "failed") {
    showError("Reply failed", { message: `${message.error?.code || ""} ${message.error?.message || ""}`.trim() });
  }
  $("#reply-status").textContent = `Reply ${message.state} on ${message.channel} (message ${message.id})`;
  if (task.profile_id) loadTimeline(task, null);
}

// --- wrap-up ---

async function finish(event) {
  event.preventDefault();
  const task = state.tasks.get(state.selected);
  if (!task) return;
  const op = event.submitter?.value === "wrapup" ? "wrapup" : "complete";
  const body = {
    disposition: $("#disposition").value.trim() || null,
    note: $("#note").value.trim() || null,
  };
  const done = await attempt(op === "wrapup" ? "Wrap up" : "Complete", () => api[op](task.id, body));
  if (done) onTask({ event: op === "wrapup" ? "wrap_up" : "completed", task: done });
}

// --- wiring ---

async function start() {
  session.onUnauthorized(showLogin);
  $("#login").addEventListener("submit", logIn);
  $("#logout").addEventListener("click", logOut);
  $("#sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    const agent = $("#agent-id").value.trim();
    if (agent) connect(agent);
  });
  $("#disconnect").addEventListener("click", () => {
    disconnect();
    state.tasks.clear();
    select(null);
    renderTasks();
  });
  for (const button of document.querySelectorAll("#presence [data-presence]")) {
    button.addEventListener("click", async () => {
      const agent = await attempt("Presence", () => api.setPresence(state.agent, button.dataset.presence));
      if (agent) setPresence(agent.presence);
    });
  }
  $("#reply").addEventListener("submit", sendReply);
  $("#wrapup").addEventListener("submit", finish);
  $("#older").addEventListener("click", () => {
    const task = state.tasks.get(state.selected);
    if (task && state.detail?.cursor) loadTimeline(task, state.detail.cursor);
  });
  setInterval(tick, 1000);
  setConnection("closed", null);
  renderOffers();
  renderTasks();
  let me;
  try {
    me = await api.me();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError("Hub", err);
    return; // 401: the login form is up
  }
  if (me.auth_enabled) {
    showUser(me);
    if (me.agent_id) return;
  }
  const agent = new URLSearchParams(location.search).get("agent");
  if (agent) {
    $("#agent-id").value = agent;
    connect(agent);
  } else {
    $("#agent-id").focus();
  }
}

start();
