// The agent websocket (`GET /v1/agents/ws?agent_id=...`), reconnected after a drop. The hub sends
// `hello` on each connection and then the offers still pending, so a reconnect needs no replay here.
// With auth enabled it opens with a one-time ticket (`POST /v1/auth/ws-ticket`; a browser cannot
// give a websocket headers, and the token itself must not sit in a URL). The hub closes it with code
// 4401 once the session ends (logout, disabled user, expiry): then the page asks to log in again.

import { request, session } from "./api.js";

const CREDENTIALS_ENDED = 4401;

const RETRY_S = [1, 2, 4, 8, 15];
// Refusals that another try cannot change (the hub does not know this agent).
const FINAL = new Set(["not_found", "missing_agent_id"]);

export class AgentSocket {
  // onFrame(frame) for every frame; onStatus(state, detail) with state one of
  // connecting | connected | reconnecting | refused | closed.
  constructor(agentId, { onFrame, onStatus }) {
    this.agentId = agentId;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
  }

  async open() {
    this.stopped = false;
    const url = new URL("../v1/agents/ws", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("agent_id", this.agentId);
    this.onStatus(this.attempt ? "reconnecting" : "connecting", null);
    if (session.token()) {
      let issued;
      try {
        issued = await request("POST", "/v1/auth/ws-ticket");
      } catch (err) {
        if (err.status === 401) {
          this.stopped = true;
          this.onStatus("refused", { error: "unauthorized", message: err.message });
        } else {
          this.retry();
        }
        return;
      }
      if (this.stopped) return;
      if (issued && issued.ticket) url.searchParams.set("ticket", issued.ticket);
    }
    const ws = new WebSocket(url);
    this.ws = ws;
    let greeted = false;
    let refusal = null;
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return; // a socket this console has let go of
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "hello") {
        greeted = true;
        this.attempt = 0;
        this.onStatus("connected", null);
      } else if (frame.type === "error" && !greeted) {
        refusal = frame;
      }
      this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (event.code === CREDENTIALS_ENDED) {
        this.stopped = true;
        session.clear();
        this.onStatus("refused", { error: "unauthorized", message: event.reason || "log in again" });
      } else if (this.stopped) {
        this.onStatus("closed", null);
      } else if (refusal && FINAL.has(refusal.error)) {
        this.stopped = true;
        this.onStatus("refused", refusal);
      } else {
        this.retry();
      }
    });
  }

  retry() {
    const delay = RETRY_S[Math.min(this.attempt, RETRY_S.length - 1)];
    this.attempt += 1;
    this.onStatus("reconnecting", { inSeconds: delay });
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) this.open();
    }, delay * 1000);
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null; // its late frames and close event are ignored from here on
    if (ws) ws.close(1000, "agent disconnected");
    this.onStatus("closed", null);
  }
}
