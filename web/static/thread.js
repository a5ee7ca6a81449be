// The thread page: messages and composer, presence, the video-call icon (or why not),
// the seller's recording notice + "Call now" + call screen, the buyer's incoming calls.
import { CallSession } from "/static/call.js";
import { protocolErrorWords } from "/static/call_words.js";
import { api, currentUser, h, safeHttpUrl } from "/static/common.js";
import { openLocalMedia, stopStream } from "/static/media.js";
import { trackPresence } from "/static/presence.js";
import { installRinging } from "/static/ring.js";
import { pageSocket } from "/static/ws.js";

const view = document.getElementById("thread-view");
const threadId = view.dataset.threadId;
const me = currentUser();
const other = { id: view.dataset.otherId, name: view.dataset.otherName };
const list = document.getElementById("messages");
const composer = document.getElementById("composer");
const MESSAGE_POLL_MS = 15_000;

// --- messages ----------------------------------------------------------------------------

function localiseTimes(root = document) {
  for (const time of root.querySelectorAll("time[datetime]")) {
    const when = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) {
      time.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    }
  }
}

/** System messages may carry a join link; make http(s) addresses clickable, safely. */
function linkified(text) {
  const parts = [];
  let position = 0;
  for (const match of text.matchAll(/https?:\/\/[^\s<>"']+/g)) {
    const url = match[0].replace(/[.,;:!?)]+$/, "");
    parts.push(text.slice(position, match.index));
    const safe = safeHttpUrl(url);
    parts.push(safe ? h("a", { href: safe }, url) : url);
    position = match.index + url.length;
  }
  parts.push(text.slice(position));
  return parts;
}

function messageItem(message) {
  const mine = message.sender_id === me.id;
  const item = h("li", {
    class: `message ${message.kind}${mine ? " mine" : ""}`,
    dataset: { messageId: message.id },
  });
  if (message.kind === "system") {
    item.append(h("span", { class: "text" }, linkified(message.text)));
  } else {
    const sender = mine ? "You" : other.name;
    item.append(
      h(
        "span",
        { class: "sender" },
        sender,
        message.kind === "call_chat" ? h("span", { class: "muted" }, " (in call)") : null,
      ),
      h("span", { class: "text" }, message.text),
    );
    if (message.flags.includes("contact_details")) {
      item.append(h("span", { class: "flag", role: "note" }, "Contact details detected"));
    }
  }
  item.append(h("time", { datetime: message.created_at }, message.created_at));
  localiseTimes(item);
  return item;
}

function appendMessage(message) {
  if (list.querySelector(`[data-message-id="${CSS.escape(message.id)}"]`)) return;
  list.append(messageItem(message));
}

let refreshing = null;
async function refreshMessages() {
  // One refresh at a time; a request while one runs waits for it, then runs once more.
  if (refreshing) return refreshing.then(refreshMessages);
  refreshing = (async () => {
    try {
      const detail = await api("GET", `/api/v1/threads/${encodeURIComponent(threadId)}`);
      for (const message of detail.messages) appendMessage(message);
    } catch {
      // Polling again later is the recovery; a visible error here would only be noise.
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

composer?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = composer.querySelector("textarea");
  const error = document.getElementById("composer-error");
  error.textContent = "";
  if (!field.value.trim()) {
    error.textContent = "Write a message first.";
    field.focus();
    return;
  }
  try {
    const message = await api("POST", `/api/v1/threads/${encodeURIComponent(threadId)}/messages`, {
      text: field.value,
    });
    appendMessage(message);
    field.value = "";
    if (message.flags.includes("contact_details")) {
      error.textContent =
        "Sharing phone numbers, e-mail or other contact details breaks the Terms of Service. Your message was flagged for review.";
    }
  } catch (err) {
    error.textContent = err.message;
  }
});

const blockToggle = document.getElementById("block-toggle");
blockToggle?.addEventListener("click", async () => {
  const blocked = blockToggle.dataset.blocked === "true";
  try {
    await api(blocked ? "DELETE" : "PUT", `/api/v1/threads/${encodeURIComponent(threadId)}/block`);
    window.location.reload();
  } catch (err) {
    document.getElementById("call-error").textContent = err.message;
  }
});

localiseTimes();
setInterval(() => {
  if (document.visibilityState === "visible") refreshMessages();
}, MESSAGE_POLL_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refreshMessages();
});

// --- the video-call icon -----------------------------------------------------------------

const VIDEO_ICON_PATH =
  "M4 6h10a2 2 0 0 1 2 2v1.6l4.4-2.7A1 1 0 0 1 22 7.8v8.4a1 1 0 0 1-1.6.9L16 14.4V16a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2z";

function videoIcon(crossed) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({
    class: "icon",
    viewBox: "0 0 24 24",
    width: "22",
    height: "22",
    "aria-hidden": "true",
    focusable: "false",
  })) {
    svg.setAttribute(k, v);
  }
  const body = document.createElementNS(ns, "path");
  body.setAttribute("fill", "currentColor");
  body.setAttribute("d", VIDEO_ICON_PATH);
  svg.append(body);
  if (crossed) {
    const slash = document.createElementNS(ns, "path");
    for (const [k, v] of Object.entries({
      stroke: "currentColor",
      "stroke-width": "2.2",
      "stroke-linecap": "round",
      d: "M3 3l18 18",
    })) {
      slash.setAttribute(k, v);
    }
    svg.append(slash);
  }
  return svg;
}

/** Redraw the icon from the eligibility API's answer (same markup as _call_control.html). */
function renderCallControl(decision) {
  const control = document.getElementById("call-control");
  const hadFocus = control.contains(document.activeElement);
  control.dataset.allowed = String(decision.allowed);
  if (decision.allowed) {
    control.replaceChildren(
      h("button", { type: "button", class: "video-call", id: "start-call" }, videoIcon(false), h("span", {}, "Start video call")),
    );
  } else {
    control.replaceChildren(
      h(
        "span",
        { class: "video-call-disabled" },
        h(
          "button",
          {
            type: "button",
            class: "video-call icon-only",
            "aria-disabled": "true",
            "aria-describedby": "call-unavailable",
            "aria-label": "Video call unavailable",
          },
          videoIcon(true),
        ),
        h(
          "span",
          { role: "tooltip", id: "call-unavailable", class: "tooltip" },
          h("strong", {}, "Video call unavailable."),
          decision.reasons.map((r) => h("span", { class: "reason", dataset: { reason: r.code } }, r.message)),
        ),
      ),
    );
  }
  wireCallControl();
  if (hadFocus) control.querySelector("button")?.focus();
}

async function refreshEligibility() {
  try {
    renderCallControl(
      await api("GET", `/api/v1/threads/${encodeURIComponent(threadId)}/call-eligibility`),
    );
  } catch {
    // Keep the icon as drawn; the server checks again when it is pressed.
  }
}

function wireCallControl() {
  const start = document.getElementById("start-call");
  start?.addEventListener("click", openNotice);
  const disabled = document.querySelector(".video-call-disabled");
  if (disabled) {
    const button = disabled.querySelector("button");
    // Touch screens have no hover: a tap shows the reasons; Escape hides them (WCAG 1.4.13).
    button.addEventListener("click", () => disabled.classList.toggle("open"));
    disabled.addEventListener("keydown", (event) => {
      if (event.key === "Escape") disabled.classList.add("dismissed");
    });
    const reset = () => disabled.classList.remove("dismissed", "open");
    disabled.addEventListener("mouseleave", reset);
    button.addEventListener("blur", reset);
  }
}

// --- calling (seller) --------------------------------------------------------------------

const socket = pageSocket();
const notice = document.getElementById("call-notice");
const callNow = document.getElementById("call-now");
const noticeError = document.getElementById("call-notice-error");
let session = null;
let starting = false;

function openNotice() {
  if (!notice) return;
  noticeError.textContent = "";
  notice.showModal();
  callNow.focus();
}

document.getElementById("call-notice-cancel")?.addEventListener("click", () => notice.close());

callNow?.addEventListener("click", async () => {
  if (starting) return;
  starting = true;
  callNow.setAttribute("aria-disabled", "true");
  noticeError.textContent = "Starting your camera and microphone...";
  try {
    await startCall();
  } finally {
    starting = false;
    callNow.setAttribute("aria-disabled", "false");
  }
});

async function startCall() {
  let media;
  try {
    media = await openLocalMedia();
  } catch (err) {
    noticeError.textContent = err.message;
    return;
  }
  noticeError.textContent = "Calling...";
  let started;
  try {
    started = await socket.request({ type: "start_call", thread_id: threadId, recording_notice_accepted: true });
  } catch (err) {
    stopStream(media.stream);
    noticeError.textContent = protocolErrorWords(err);
    refreshEligibility();
    return;
  }
  notice.close();
  session = new CallSession({
    socket,
    callId: started.call_id,
    role: "seller",
    me,
    peer: other,
    stream: media.stream,
    closeLabel: "Back to the conversation",
    onClose: () => {
      session = null;
      refreshMessages();
      refreshEligibility();
      document.querySelector("#call-control button")?.focus();
    },
  });
  await session.start("ringing", { mediaWarning: media.warning });
}

// Any call of ours changing state (ours or the other tab's): the thread may have a new
// system message (missed call, call ended) and the icon may have changed.
socket.on("call_state", (message) => {
  if (message.state === "ended") refreshMessages();
  if (me.role === "seller") refreshEligibility();
});

socket.on("close", (info) => {
  if (info.final) document.getElementById("call-error").textContent = info.reason;
});

wireCallControl();
trackPresence(socket, [threadId]);
if (me.role === "buyer") {
  const subjects = new Map(
    [...document.querySelectorAll(".thread-item")].map((i) => [i.dataset.threadId, i.dataset.threadSubject]),
  );
  subjects.set(threadId, view.dataset.threadSubject);
  installRinging(socket, { subjectOf: (id) => subjects.get(id) ?? "" });
}
