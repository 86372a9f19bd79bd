// Building the console's pieces. Customer text only ever becomes text nodes (never innerHTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function time(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  return at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function remaining(expiresAt, now = Date.now()) {
  const left = Math.ceil((Date.parse(expiresAt) - now) / 1000);
  if (Number.isNaN(left)) return "";
  return left > 0 ? `expires in ${left} s` : "expiring";
}

function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

function field(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, ...value)];
}

export function offerCard(offer, name, { onAccept, onDecline }) {
  const it = offer.interaction || {};
  const who = name || "Unknown customer";
  const label = `Offer from ${who}`;
  return h("li", { class: "card offer", dataset: { taskId: offer.task_id }, "aria-label": label },
    h("div", { class: "meta" },
      badge(offer.channel, "channel"),
      h("span", {}, "queue ", h("strong", {}, offer.queue)),
      h("span", {}, `priority ${offer.priority}`)),
    h("p", { class: "who" }, who),
    it.subject ? h("p", { class: "subject" }, it.subject) : null,
    h("p", { class: "text" }, it.text || ""),
    h("p", { class: "countdown", dataset: { expires: offer.expires_at || "" } },
      offer.expires_at ? remaining(offer.expires_at) : ""),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", onclick: onAccept }, "Accept"),
      h("button", { type: "button", onclick: onDecline }, "Decline")));
}

export function taskItem(task, name, selected, onSelect) {
  const who = name || "Customer";
  return h("li", { class: "card task" + (selected ? " selected" : ""), dataset: { taskId: task.id } },
    h("button", { type: "button", class: "select", "aria-pressed": selected ? "true" : "false", onclick: onSelect },
      h("span", { class: "meta" }, badge(task.channel, "channel"), " ", task.queue, " ",
        badge(task.state === "wrap_up" ? "wrap-up" : task.state, "state")),
      h("span", { class: "who" }, who)));
}

// Raster images show inline (as the hub serves them); anything else is a file to download.
const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"]);

function size(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// The interaction's attachments: `files.url(n)` is attachment n's address, `files.image(n, img)`
// fills an image, `files.open(event, n, name)` opens a file (both fetch with the agent's token).
function attachmentList(attachments, files) {
  const items = attachments.map((a, n) => {
    const name = a.filename || `attachment-${n}`;
    const type = (a.content_type || "").split(";")[0].trim().toLowerCase();
    if (INLINE_TYPES.has(type)) {
      const img = h("img", { class: "attachment-image", alt: name, dataset: { n: String(n) } });
      files.image(n, img);
      return h("li", {}, h("figure", {}, img, h("figcaption", {}, name)));
    }
    return h("li", {},
      h("a", { class: "attachment-file", href: files.url(n), download: name, onclick: (e) => files.open(e, n, name) },
        name),
      h("span", { class: "muted" }, ` ${a.content_type || "file"} · ${size(a.size)}`));
  });
  return h("ul", { class: "plain attachments", "aria-label": "Attachments" }, items);
}

export function interactionView(doc, files) {
  const sender = doc.sender || {};
  const ids = (sender.identifiers || []).map((i) => `${i.type} ${i.value}`).join(", ");
  const content = doc.content || {};
  return [
    h("dl", {},
      field("From", sender.display_name ? h("strong", {}, sender.display_name) : null, ids ? ` ${ids}` : ""),
      field("Channel", `${doc.channel} (${doc.provider || "?"})`),
      field("At", time(doc.occurred_at)),
      doc.subject ? field("Subject", doc.subject) : null,
      doc.tags && doc.tags.length ? field("Tags", ...doc.tags.map((t) => badge(t, "tag"))) : null),
    h("blockquote", { class: "message" }, content.text || (content.html ? "(HTML message)" : "(no text)")),
    doc.attachments && doc.attachments.length ? attachmentList(doc.attachments, files) : null,
  ].filter(Boolean);
}

// How the agent sees the customer: their name, else their first identifier (a number texting in).
export function profileName(p) {
  const first = (p.identifiers || [])[0];
  return p.display_name || [p.given_name, p.family_name].filter(Boolean).join(" ") || first?.value || "(no name)";
}

export function profileView(p) {
  const ids = (p.identifiers || []).map((i) => h("li", {}, h("span", { class: "muted" }, i.type), " ", i.value));
  const rows = [
    field("Name", h("strong", { class: "profile-name" }, profileName(p))),
    field("Identifiers", h("ul", { class: "plain" }, ids)),
    field("Tier", p.tier || "—"),
    field("Segments", ...(p.segments && p.segments.length ? p.segments.map((s) => badge(s, "segment")) : ["—"])),
  ];
  if (p.owner) rows.push(field("Owner", p.owner));
  if (p.preferred_channels && p.preferred_channels.length) rows.push(field("Prefers", p.preferred_channels.join(", ")));
  if (p.locale || p.timezone) rows.push(field("Locale", [p.locale, p.timezone].filter(Boolean).join(" · ")));
  if (p.value_score !== null && p.value_score !== undefined) rows.push(field("Value score", String(p.value_score)));
  if (p.rfm && p.rfm.frequency) rows.push(field("Purchases", `${p.rfm.frequency} (total ${p.rfm.monetary})`));
  if (p.erased_at) rows.push(field("Erased", time(p.erased_at)));
  return [h("dl", {}, rows)];
}

export function timelineItem(doc, currentId) {
  const content = doc.content || {};
  const sender = doc.sender || {};
  const current = doc.id === currentId;
  const arrow = doc.direction === "outbound" ? "sent" : "received";
  return h("li", { class: `entry ${doc.direction}` + (current ? " current" : ""), dataset: { id: doc.id } },
    h("div", { class: "meta" },
      badge(doc.channel, "channel"), " ", h("span", {}, arrow), " ",
      h("time", { datetime: doc.occurred_at }, time(doc.occurred_at)),
      doc.direction === "inbound" && sender.display_name ? h("span", { class: "muted" }, ` · ${sender.display_name}`) : null,
      current ? badge("this task", "current") : null),
    doc.subject ? h("p", { class: "subject" }, doc.subject) : null,
    h("p", { class: "text" }, content.text || (doc.kind === "transaction" ? "(purchase)" : "")));
}
