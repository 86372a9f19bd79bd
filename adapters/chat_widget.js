/* omnihub web chat widget: embed with one tag, served by the hub at /chat/widget.js.
 *
 *   <script src="https://hub.example.com/chat/widget.js" data-title="Chat with us" async></script>
 *
 * Optional attributes: data-title, data-name and data-email (a signed-in customer's, joining the
 * chat to their profile). Plain JavaScript, no build step, nothing loaded from elsewhere. The
 * visitor's hub-signed id, the conversation and unacknowledged messages live in localStorage, so a
 * reload or a dropped connection loses nothing; the socket reconnects after 1, 2, 4, 8, then every
 * 15 s. Text is only ever set as textContent, never parsed as markup.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__omnihubChat) return;
  window.__omnihubChat = true;
  var hub = new URL(script.src);
  var wsUrl = (hub.protocol === "https:" ? "wss:" : "ws:") + "//" + hub.host + "/v1/chat/ws";
  var KEY = "omnihub.chat." + hub.host + ".";
  var title = script.getAttribute("data-title") || "Chat with us";

  function load(name, fallback) {
    try { var v = localStorage.getItem(KEY + name); return v === null ? fallback : JSON.parse(v); }
    catch (e) { return fallback; }
  }
  function save(name, value) {
    try { localStorage.setItem(KEY + name, JSON.stringify(value)); } catch (e) { /* private mode: memory only */ }
  }

  var state = { visitor: load("visitor", null), log: load("log", []), outbox: load("outbox", []) };
  var ws = null, welcomed = false, retries = 0, timer = null;

  // --- the panel, in a shadow root so the site's styles and ours do not meet ---
  var host = document.createElement("div");
  host.id = "omnihub-chat";
  var root = host.attachShadow({ mode: "open" });
  var style = document.createElement("style");
  style.textContent =
    ":host{all:initial;position:fixed;right:16px;bottom:16px;z-index:2147483000;font:14px system-ui,sans-serif}" +
    "button{font:inherit;cursor:pointer}" +
    ".toggle{border:0;border-radius:20px;padding:10px 16px;background:#1f5eff;color:#fff}" +
    "section{display:none;flex-direction:column;width:320px;height:420px;background:#fff;color:#222;" +
    "border:1px solid #ccd;border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.15);margin-bottom:8px}" +
    "section.open{display:flex}" +
    "header{padding:8px 12px;background:#1f5eff;color:#fff;border-radius:8px 8px 0 0;display:flex;justify-content:space-between}" +
    "ol{flex:1;overflow-y:auto;margin:0;padding:8px;list-style:none}" +
    "li{margin:4px 0;padding:6px 10px;border-radius:12px;max-width:80%;white-space:pre-wrap;word-wrap:break-word}" +
    "li.visitor{margin-left:auto;background:#e6eeff}li.agent{background:#f0f0f0}" +
    "li.pending{opacity:.6}" +
    "form{display:flex;border-top:1px solid #ccd}" +
    "input{flex:1;border:0;padding:10px;font:inherit}" +
    "form button{border:0;background:none;color:#1f5eff;padding:0 12px}" +
    ".status{font-size:12px;color:#666;padding:2px 10px}";
  var panel = document.createElement("section");
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", title);
  var head = document.createElement("header");
  var h = document.createElement("span");
  h.textContent = title;
  var close = document.createElement("button");
  close.type = "button";
  close.textContent = "×";
  close.setAttribute("aria-label", "Close chat");
  close.style.cssText = "border:0;background:none;color:#fff";
  head.append(h, close);
  var list = document.createElement("ol");
  list.setAttribute("aria-label", "Conversation");
  list.setAttribute("aria-live", "polite");
  var status = document.createElement("div");
  status.className = "status";
  status.setAttribute("role", "status");
  var form = document.createElement("form");
  var input = document.createElement("input");
  input.setAttribute("aria-label", "Message");
  input.placeholder = "Type a message";
  input.maxLength = 4000;
  var send = document.createElement("button");
  send.type = "submit";
  send.textContent = "Send";
  form.append(input, send);
  panel.append(head, list, status, form);
  var toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "toggle";
  toggle.textContent = title;
  root.append(style, panel, toggle);

  function setOpen(open) {
    panel.classList.toggle("open", open);
    toggle.style.display = open ? "none" : "";
    if (open) { input.focus(); list.scrollTop = list.scrollHeight; }
  }
  toggle.addEventListener("click", function () { setOpen(true); });
  close.addEventListener("click", function () { setOpen(false); });

  function render() {
    list.replaceChildren();
    state.log.forEach(function (m) {
      var li = document.createElement("li");
      li.className = m.from + (m.pending ? " pending" : "");
      li.textContent = m.text;
      list.append(li);
    });
    list.scrollTop = list.scrollHeight;
  }

  function newId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function transmit(frame) {
    if (ws && ws.readyState === WebSocket.OPEN && welcomed) ws.send(JSON.stringify(frame));
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var frame = { type: "message", id: newId(), text: text };
    state.log.push({ id: frame.id, from: "visitor", text: text, pending: true });
    state.outbox.push(frame);
    save("log", state.log);
    save("outbox", state.outbox);
    input.value = "";
    render();
    transmit(frame);
  });

  function onFrame(frame) {
    switch (frame.type) {
      case "welcome":
        welcomed = true;
        retries = 0;
        state.visitor = frame.visitor;
        save("visitor", state.visitor);
        status.textContent = "";
        state.outbox.forEach(transmit);  // the hub dedupes a resend by its id
        break;
      case "ack":
        state.outbox = state.outbox.filter(function (f) { return f.id !== frame.id; });
        state.log.forEach(function (m) { if (m.id === frame.id) m.pending = false; });
        save("outbox", state.outbox);
        save("log", state.log);
        render();
        break;
      case "message":
        if (!state.log.some(function (m) { return m.id === frame.id; })) {
          state.log.push({ id: frame.id, from: "agent", text: frame.text });
          save("log", state.log);
          render();
          setOpen(true);
        }
        transmit({ type: "delivered", id: frame.id });
        break;
      case "error":
        if (frame.id && !frame.retry) {  // refused for good: drop it from the outbox
          state.outbox = state.outbox.filter(function (f) { return f.id !== frame.id; });
          save("outbox", state.outbox);
        }
        status.textContent = frame.message || "error";
        break;
    }
  }

  function connect() {
    timer = null;
    welcomed = false;
    ws = new WebSocket(wsUrl);
    ws.onopen = function () {
      var hello = { type: "hello", visitor: state.visitor };
      var name = script.getAttribute("data-name"), email = script.getAttribute("data-email");
      if (name) hello.name = name;
      if (email) hello.email = email;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (event) {
      try { onFrame(JSON.parse(event.data)); } catch (e) { /* a frame we cannot read: ignore it */ }
    };
    ws.onclose = function (event) {
      welcomed = false;
      if (event.code === 4403) {  // the hub did not sign our id (its secret changed): start afresh
        state.visitor = null;
        save("visitor", null);
      }
      var delay = Math.min(15, Math.pow(2, retries++)) * 1000;
      status.textContent = "Reconnecting…";
      if (!timer) timer = setTimeout(connect, delay);
    };
  }

  function start() {
    document.body.append(host);
    render();
    if (state.log.length) setOpen(true);
    connect();
  }
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
