// The agent websocket (`GET /v1/agents/ws?agent_id=...`), reconnected after a drop. The hub sends
// `hello` on each connection and then the offers still pending, so a reconnect needs no replay here.
// With auth enabled the token rides in the query string: a browser cannot give a websocket headers.

import { session } from "./api.js";

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

  open() {
    this.stopped = false;
    const url = new URL("../v1/agents/ws", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("agent_id", this.agentId);
    const token = session.token();
    if (token) url.searchParams.set("token", token);
    this.onStatus(this.attempt ? "reconnecting" : "connecting", null);
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
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) {
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
