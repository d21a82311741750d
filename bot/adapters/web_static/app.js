// The playground: a chat page that talks to /api/* (the same BotCore as Slack and Discord).
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("composer");
const input = document.getElementById("text");
const channel = new URLSearchParams(location.search).get("channel") || "general";
document.getElementById("channel-name").textContent = channel;

async function api(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ channel, ...body }),
  });
  if (!res.ok) {
    return { kind: "error", text: (await res.text()) || `HTTP ${res.status}` };
  }
  return res.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function gifImg(card) {
  return el("img", { class: "gif", src: card.url, alt: card.alt, width: card.width,
                     height: card.height, "data-sha": card.sha256 });
}

function addMessage(cls, ...children) {
  const m = el("div", { class: `msg ${cls}` }, ...children);
  log.append(m);
  m.scrollIntoView({ block: "end" });
  return m;
}

// The core's texts use chat markup: *bold* and `code`. Build nodes, never innerHTML.
function textNode(text) {
  const box = el("div", { class: "text" });
  const parts = (text || "").split(/(\*[^*\n]+\*|`[^`\n]+`)/);
  for (const part of parts) {
    if (/^\*[^*]+\*$/.test(part)) box.append(el("b", {}, part.slice(1, -1)));
    else if (/^`[^`]+`$/.test(part)) box.append(el("code", {}, part.slice(1, -1)));
    else if (part) box.append(part);
  }
  return box;
}

// ---- replies -------------------------------------------------------------------------

function render(reply, container) {
  switch (reply.kind) {
    case "preview": return renderPreview(reply, container);
    case "posted": return renderPost(reply, container);
    case "poll": return renderPoll(reply);
    case "did_you_mean":
    case "help": return renderChoices(reply, container);
    case "cancelled":
      if (container) container.remove();
      return null;
    default: {
      // expired, forbidden, exhausted, cooldown, empty_pool, error, ack
      const target = container && reply.kind === "exhausted" ? container : null;
      if (target) {
        target.querySelector(".ack").textContent = reply.text;
        const sh = target.querySelector("[data-action=shuffle]");
        if (sh) sh.disabled = true;
        return target;
      }
      return addMessage(`bot ephemeral ${reply.kind}`, textNode(reply.text));
    }
  }
}

function renderPreview(reply, container) {
  const p = reply.preview;
  const box = container || addMessage("bot ephemeral preview");
  box.replaceChildren();
  box.dataset.session = p.session_id;
  box.append(el("div", { class: "only-you" }, `Only visible to you · ${p.label || p.emotion}`));
  if (p.interpretation) box.append(el("div", { class: "reading" }, p.interpretation));
  if (reply.text) box.append(textNode(reply.text));
  const cards = el("div", { class: "cards" });
  for (const card of p.cards) {
    const c = el("div", { class: "card" }, gifImg(card));
    if (p.cards.length > 1) {
      c.append(el("button", { class: "primary", "data-action": "send-this",
                              onclick: () => send(box, card.sha256) }, "Send this"));
    }
    cards.append(c);
  }
  box.append(cards);
  const buttons = el("div", { class: "buttons" });
  if (p.cards.length === 1) {
    buttons.append(el("button", { class: "primary", "data-action": "send",
                                  onclick: () => send(box, null) }, "Send"));
  }
  const shuffleBtn = el("button", { "data-action": "shuffle", onclick: () => shuffle(box) }, "Shuffle");
  shuffleBtn.disabled = !p.can_shuffle;
  buttons.append(shuffleBtn);
  buttons.append(el("button", { "data-action": "cancel", onclick: () => cancel(box) }, "Cancel"));
  box.append(buttons);
  if ((p.alternatives || []).length || (p.more_feelings || []).length) {  // the request's other likely feelings
    const other = el("div", { class: "buttons switches" }, el("span", { class: "switch-lead" }, "Not quite? Switch to:"));
    for (const emotion of p.alternatives) {
      other.append(el("button", { "data-action": "switch", "data-emotion": emotion,
                                  onclick: () => switchTo(box, emotion) }, emotion));
    }
    if ((p.more_feelings || []).length) {  // every other feeling, one pick away
      const menu = el("select", { "data-action": "other", "aria-label": "Another feeling" },
                      el("option", { value: "" }, "Another feeling…"));
      for (const emotion of p.more_feelings) menu.append(el("option", { value: emotion }, emotion));
      menu.onchange = () => { if (menu.value) switchTo(box, menu.value); };
      other.append(menu);
    }
    box.append(other);
  }
  box.append(el("div", { class: "ack" }));
  box.scrollIntoView({ block: "end" });
  return box;
}

function renderPost(reply, container) {
  const post = reply.post;
  if (container) container.remove();
  const ack = el("div", { class: "ack" });
  // the same words as Slack's and Discord's (bot.events.VOTE_LABELS); the visible text is the
  // accessible name, so a voice command "click Fits" finds the button
  const up = el("button", { "data-action": "up", title: "fits the feeling" }, "👍 Fits");
  const down = el("button", { "data-action": "down", title: "does not fit the feeling" }, "👎 Not really");
  const undo = el("button", { "data-action": "undo", title: "take this Send back" }, "Undo");
  const box = addMessage("bot post",
    el("div", { class: "meta" }, `${post.caption || post.emotion} · requested by @${post.requested_by}`
                                 + (post.card.credit ? ` · ${post.card.credit}` : "")),
    gifImg(post.card), el("div", { class: "buttons" }, up, down, undo), ack);
  box.dataset.post = post.post_id;
  undo.addEventListener("click", async () => {  // the sender takes the Send back
    const r = await api("/api/undo", { post_id: post.post_id });
    if (r.kind === "undone") box.remove();
    else ack.textContent = r.text;
  });
  let current = null;
  const vote = async (value) => {
    const next = current === value ? null : value;  // clicking your vote again withdraws it
    const r = await api("/api/vote", { post_id: post.post_id, up: next });
    ack.textContent = r.text;
    if (r.kind === "ack") {
      current = next;
      up.classList.toggle("chosen", current === true);
      down.classList.toggle("chosen", current === false);
    }
  };
  up.addEventListener("click", () => vote(true));
  down.addEventListener("click", () => vote(false));
  return box;
}

function renderPoll(reply) {
  const poll = reply.poll;
  const ack = el("div", { class: "ack" });
  const box = addMessage("bot ephemeral poll",
    el("div", { class: "only-you" }, "Only visible to you"), textNode(reply.text));
  box.dataset.poll = poll.poll_id;
  const answer = async (a) => {
    const r = await api("/api/poll", { poll_id: poll.poll_id, answer: a });
    ack.textContent = r.text;
    box.querySelectorAll("button").forEach((b) => { b.disabled = true; });
  };
  box.append(el("div", { class: "cards" },
    el("div", { class: "card" }, gifImg(poll.left),
       el("button", { "data-action": "left", onclick: () => answer("left") }, "This one")),
    el("div", { class: "card" }, gifImg(poll.right),
       el("button", { "data-action": "right", onclick: () => answer("right") }, "This one"))),
    el("div", { class: "buttons" },
       el("button", { "data-action": "neither", onclick: () => answer("neither") }, "Neither")),
    ack);
  return box;
}

function renderChoices(reply) {
  const buttons = el("div", { class: "buttons" });
  for (const choice of reply.choices || []) {
    // a "did you mean" pick opens a preview for the words asked about; the help's, the name
    const pick = reply.ask_id ? () => choose(reply.ask_id, choice) : () => request(`/gif ${choice}`);
    buttons.append(el("button", { "data-action": "choice", onclick: pick }, choice));
  }
  if (reply.ask_id && (reply.more_choices || []).length) {  // every other feeling, one pick away
    const menu = el("select", { "data-action": "choice-other", "aria-label": "Another feeling" },
                    el("option", { value: "" }, "Another feeling…"));
    for (const emotion of reply.more_choices) menu.append(el("option", { value: emotion }, emotion));
    menu.onchange = () => { if (menu.value) choose(reply.ask_id, menu.value); };
    buttons.append(menu);
  }
  return addMessage(`bot ephemeral ${reply.kind}`, textNode(reply.text), buttons);
}

// ---- actions -------------------------------------------------------------------------

async function request(text) {
  addMessage("user", textNode(text));
  const reply = await api("/api/request", { text });
  render(reply, null);
  if (reply.poll_reply) render(reply.poll_reply, null);
}

async function choose(askId, emotion) {
  addMessage("user", textNode(emotion));
  render(await api("/api/choose", { ask_id: askId, emotion }), null);
}

// One click at a time on a preview: a double click once sent two Shuffles at once.
function busy(box, on) {
  box.querySelectorAll("button").forEach((b) => {
    if (on) { b.dataset.was = b.disabled ? "1" : ""; b.disabled = true; }
    else { b.disabled = b.dataset.was === "1"; }
  });
}

async function shuffle(box) {
  busy(box, true);
  const reply = await api("/api/shuffle", { session_id: box.dataset.session });
  if (reply.kind !== "preview") busy(box, false);  // a new preview brings its own buttons
  render(reply, box);
}

async function switchTo(box, emotion) {
  const reply = await api("/api/switch", { session_id: box.dataset.session, emotion });
  if (reply.kind === "preview") render(reply, box);
  else box.querySelector(".ack").textContent = reply.text;
}

async function send(box, sha) {
  busy(box, true);
  const reply = await api("/api/send", { session_id: box.dataset.session, sha });
  if (reply.kind !== "posted") {
    // e.g. the GIF was hidden meanwhile ("Shuffle for another"): the preview stays usable
    if (reply.kind !== "closed" && reply.kind !== "expired") busy(box, false);
    box.querySelector(".ack").textContent = reply.text;
    return;
  }
  render(reply, box);
}

async function cancel(box) {
  const reply = await api("/api/cancel", { session_id: box.dataset.session });
  if (reply.kind === "cancelled") box.remove();
  else box.querySelector(".ack").textContent = reply.text;
}

// While typing: how the request would be read ("→ guilt (or embarrassment / fear)"), as
// Discord's autocomplete shows it; asked once the typing pauses, the last answer wins.
const hint = document.getElementById("hint");
let hintTimer = null;
let hintAsked = 0;
input.addEventListener("input", () => {
  clearTimeout(hintTimer);
  const words = input.value.replace(/^\s*\/gif\b/i, "").trim();
  if (!words) { hint.textContent = ""; return; }
  hintTimer = setTimeout(async () => {
    const asked = ++hintAsked;
    try {
      // the first 100 characters (code points: an emoji is one) and how many in all
      const chars = Array.from(words);
      const q = encodeURIComponent(chars.slice(0, 100).join(""));
      const res = await fetch(`/api/emotions?q=${q}&n=${chars.length}`);
      const data = res.ok ? await res.json() : {};
      if (asked === hintAsked) hint.textContent = data.reading ? `→ ${data.reading}` : "";
    } catch (_) { /* a hint that fails is just not shown */ }
  }, 250);
});

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  clearTimeout(hintTimer);
  hintAsked++;
  hint.textContent = "";
  // The core answers anything over its length limit with its own words; a pasted megabyte
  // need not travel for that (and would meet the server's 64 kB body limit first).
  const text = input.value.trim().slice(0, 4000);
  input.value = "";
  request(text);
});
