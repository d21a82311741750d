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
  p.cards.forEach((card, i) => {
    const c = el("div", { class: "card" }, gifImg(card));
    if (p.cards.length > 1) {
      // "Send #1".."Send #3" as on Slack and Discord: one name per button, not three "Send this"
      c.append(el("button", { class: "primary", "data-action": "send-this", "data-sha": card.sha256,
                              onclick: () => send(box, card.sha256) }, `Send #${i + 1}`));
    }
    cards.append(c);
  });
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
      pickWith(menu, (emotion) => switchTo(box, emotion));
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
  // "Left" / "Right" as on Slack and Discord: two buttons both named "This one" could not be
  // told apart in a screen reader's list of buttons
  box.append(el("div", { class: "cards" },
    el("div", { class: "card" }, gifImg(poll.left),
       el("button", { "data-action": "left", onclick: () => answer("left") }, "Left")),
    el("div", { class: "card" }, gifImg(poll.right),
       el("button", { "data-action": "right", onclick: () => answer("right") }, "Right"))),
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
    pickWith(menu, (emotion) => choose(reply.ask_id, emotion));
    buttons.append(menu);
  }
  return addMessage(`bot ephemeral ${reply.kind}`, textNode(reply.text), buttons);
}

// "Another feeling" acts on a pick, not on every step towards one. Chrome changes a closed
// menu's value on each arrow key and fires "change": one ArrowDown once switched the feeling
// (a request per key press, the preview rebuilt under the user). So a change made by a key
// (it comes in the same task as the key press) waits for Enter; a pick from the open list
// (mouse, or the list's own keys) acts at once. Which keys step and which open the list
// differs by system (on a Mac the arrow keys open it), hence the timing, not the key.
function pickWith(menu, act) {
  let keyed = false;  // a key press is being handled: a "change" now is a step
  let stepped = false;  // the shown value was stepped to, not picked
  menu.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && stepped && menu.value) {
      ev.preventDefault();
      stepped = false;
      act(menu.value);
      return;
    }
    keyed = true;
    setTimeout(() => { keyed = false; }, 0);
  });
  menu.addEventListener("change", () => {
    if (keyed) stepped = true;
    else if (menu.value) { stepped = false; act(menu.value); }
  });
  menu.addEventListener("blur", () => {
    if (stepped) menu.value = "";  // left without Enter: nothing was picked, so show none
    stepped = false;
  });
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

// Keyboard focus across a rebuild. Shuffle, a switch and "Another feeling" replace the
// preview's controls (renderPreview), and disabling a control while its request runs (busy)
// can drop focus too: either way it fell to the page's body, and a keyboard or screen-reader
// user had to find the preview again from the top. So note the control that had focus before
// the request, and afterwards focus the same one in the new preview, else the first control
// that can still be used (a Shuffle with nothing left is disabled; a switched-to feeling is no
// longer offered).
function focusedControl(box) {
  const a = document.activeElement;
  if (!a || a === document.body || !box.contains(a) || !a.dataset.action) return null;
  let sel = `[data-action="${a.dataset.action}"]`;
  if (a.dataset.emotion) sel += `[data-emotion="${CSS.escape(a.dataset.emotion)}"]`;
  if (a.dataset.sha) sel += `[data-sha="${CSS.escape(a.dataset.sha)}"]`;
  return sel;
}

function restoreFocus(box, sel) {
  if (!sel || !box.isConnected) return;  // focus was elsewhere, or the preview is gone
  const usable = (n) => n && !n.disabled;
  const same = box.querySelector(sel);
  const target = usable(same) ? same : [...box.querySelectorAll("button, select")].find(usable);
  if (target) target.focus();
}

// One click at a time on a preview: a double click once sent two Shuffles at once.
function busy(box, on) {
  box.querySelectorAll("button").forEach((b) => {
    if (on) { b.dataset.was = b.disabled ? "1" : ""; b.disabled = true; }
    else { b.disabled = b.dataset.was === "1"; }
  });
}

async function shuffle(box) {
  const focused = focusedControl(box);  // before busy() disables it
  busy(box, true);
  const reply = await api("/api/shuffle", { session_id: box.dataset.session });
  if (reply.kind !== "preview") busy(box, false);  // a new preview brings its own buttons
  render(reply, box);
  restoreFocus(box, focused);
}

async function switchTo(box, emotion) {
  const focused = focusedControl(box);
  const reply = await api("/api/switch", { session_id: box.dataset.session, emotion });
  if (reply.kind === "preview") render(reply, box);
  else box.querySelector(".ack").textContent = reply.text;
  restoreFocus(box, focused);
}

async function send(box, sha) {
  const focused = focusedControl(box);
  busy(box, true);
  const reply = await api("/api/send", { session_id: box.dataset.session, sha });
  if (reply.kind !== "posted") {
    // e.g. the GIF was hidden meanwhile ("Shuffle for another"): the preview stays usable
    if (reply.kind !== "closed" && reply.kind !== "expired") busy(box, false);
    box.querySelector(".ack").textContent = reply.text;
    restoreFocus(box, focused);
    return;
  }
  render(reply, box);
  backToTyping(focused);
}

async function cancel(box) {
  const focused = focusedControl(box);
  const reply = await api("/api/cancel", { session_id: box.dataset.session });
  if (reply.kind === "cancelled") {
    box.remove();
    backToTyping(focused);
  } else box.querySelector(".ack").textContent = reply.text;
}

// A Send or Cancel closes the preview, and its focused button with it: focus fell to the
// page's body. The next thing done is the next request, so focus goes to the text box, as
// a chat client's composer takes it after a message (only when focus was on the preview).
function backToTyping(focused) {
  if (focused && (!document.activeElement || document.activeElement === document.body)) input.focus();
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
