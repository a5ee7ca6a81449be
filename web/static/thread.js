// The thread page: messages (call notes drawn as cards: "Join call", missed call with
// "Reply", how long a call lasted, "Report"), the composer, presence, the video-call icon
// with the reasons written out when a call is not possible, the seller's recording notice
// + "Call now" + call screen, and the buyer's incoming calls.
import { CallSession } from "/static/call.js";
import { callNoteWords, protocolErrorWords } from "/static/call_words.js";
import { api, currentUser, fillInitials, h, safeHttpUrl, shortTime } from "/static/common.js";
import { icon } from "/static/icons.js";
import { openLocalMedia, stopStream } from "/static/media.js";
import { trackPresence } from "/static/presence.js";
import { openReport } from "/static/report.js";
import { installRinging } from "/static/ring.js";
import { installThreadList } from "/static/thread_list.js";
import { pageSocket } from "/static/ws.js";

const view = document.getElementById("thread-view");
const threadId = view.dataset.threadId;
const me = currentUser();
const myRole = view.dataset.myRole;
const other = { id: view.dataset.otherId, name: view.dataset.otherName };
const list = document.getElementById("messages");
const composer = document.getElementById("composer");
const composerText = document.getElementById("composer-text");
const reportStatus = document.getElementById("report-status");
const MESSAGE_POLL_MS = 15_000;
const threadList = installThreadList();

// --- messages ----------------------------------------------------------------------------

function reportButton(callId) {
  const button = h("button", { type: "button", class: "secondary small" }, icon("flag", { size: 16 }), "Report");
  button.addEventListener("click", () =>
    openReport(callId, {
      onSent: (words) => {
        reportStatus.textContent = words;
      },
    }),
  );
  return button;
}

function callNote(message) {
  const call = message.call;
  const words = callNoteWords(call, { role: myRole, other: other.name });
  const item = h("li", {
    class: `message system call-note${words.missed ? " missed" : ""}`,
    dataset: { messageId: message.id, callId: call.id },
  });
  const text = words.missed ? h("strong", { class: "text" }, words.text) : h("span", { class: "text" }, words.text);
  const actions = h("span", { class: "note-actions" });
  const joinUrl = call.join_url ? safeHttpUrl(call.join_url) : null;
  if (joinUrl) {
    const join = h("button", { type: "button" }, icon("camera", { size: 18 }), "Join call");
    join.addEventListener("click", () => window.location.assign(joinUrl));
    actions.append(join);
  }
  if (words.missed && composerText) {
    const reply = h("button", { type: "button", class: "small" }, "Reply");
    reply.addEventListener("click", () => composerText.focus());
    actions.append(reply);
  }
  if (call.kind === "outcome") actions.append(reportButton(call.id));
  item.append(icon("camera", { size: 18, off: words.missed }), " ", text);
  if (actions.childElementCount) item.append(actions);
  return item;
}

function messageItem(message) {
  if (message.kind === "system" && message.call) return callNote(message);
  const mine = message.sender_id === me.id;
  const item = h("li", {
    class: `message ${message.kind}${mine ? " mine" : ""}`,
    dataset: { messageId: message.id },
  });
  if (message.kind === "system") {
    item.append(h("span", { class: "text" }, message.text));
  } else {
    item.append(
      h(
        "span",
        { class: "sender" },
        mine ? "You" : other.name,
        message.kind === "call_chat" ? h("span", { class: "muted" }, " (in call)") : null,
      ),
      h("span", { class: "text" }, message.text),
    );
    if (message.flags.includes("contact_details")) {
      item.append(h("span", { class: "flag", role: "note" }, "Contact details detected"));
    }
  }
  return item;
}

/** Add or redraw (a call note changes when its call ends) one message; true if new. */
function showMessage(message) {
  const signature = JSON.stringify(message);
  const existing = list.querySelector(`[data-message-id="${CSS.escape(message.id)}"]`);
  if (existing?.dataset.signature === signature) return false;
  const item = messageItem(message);
  item.dataset.signature = signature;
  item.append(h("time", { datetime: message.created_at }, shortTime(message.created_at)));
  if (existing) existing.replaceWith(item);
  else list.append(item);
  return !existing;
}

function scrollToNewest() {
  list.scrollTop = list.scrollHeight;
}

function showMessages(messages) {
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  let added = false;
  for (const message of messages) added = showMessage(message) || added;
  if (added && nearBottom) scrollToNewest();
  if (added && document.visibilityState === "visible") markRead();
  return added;
}

function markRead() {
  api("POST", `/api/v1/threads/${encodeURIComponent(threadId)}/read`).catch(() => {
    // The unread count is only a hint; the next read marks it.
  });
}

let latest = JSON.parse(document.getElementById("thread-data").textContent);
let refreshing = null;
async function refreshMessages() {
  // One refresh at a time; a request while one runs waits for it, then runs once more.
  if (refreshing) return refreshing.then(refreshMessages);
  refreshing = (async () => {
    try {
      latest = await api("GET", `/api/v1/threads/${encodeURIComponent(threadId)}`);
      showMessages(latest.messages);
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
  const error = document.getElementById("composer-error");
  error.textContent = "";
  if (!composerText.value.trim()) {
    error.textContent = "Write a message first.";
    composerText.focus();
    return;
  }
  try {
    const message = await api("POST", `/api/v1/threads/${encodeURIComponent(threadId)}/messages`, {
      text: composerText.value,
    });
    showMessage(message);
    scrollToNewest();
    composerText.value = "";
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

fillInitials(view);
showMessages(latest.messages);
scrollToNewest();
if (location.hash === "#composer-text") composerText?.focus();
setInterval(() => {
  if (document.visibilityState === "visible") refreshMessages();
}, MESSAGE_POLL_MS);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refreshMessages();
});

// --- the video-call icon (sellers) -------------------------------------------------------

/** Draw the icon from an eligibility answer; the reasons are written under the header. */
function renderCallControl(decision) {
  const control = document.getElementById("call-control");
  const reasons = document.getElementById("call-unavailable");
  if (!control) return;
  const hadFocus = control.contains(document.activeElement);
  control.dataset.allowed = String(decision.allowed);
  reasons.hidden = decision.allowed;
  if (decision.allowed) {
    const start = h("button", { type: "button", class: "video-call", id: "start-call" }, icon("camera"), h("span", {}, "Start video call"));
    start.addEventListener("click", openNotice);
    control.replaceChildren(start);
    reasons.replaceChildren();
  } else {
    control.replaceChildren(
      h(
        "button",
        {
          type: "button",
          class: "video-call icon-only",
          "aria-disabled": "true",
          "aria-describedby": "call-unavailable",
          "aria-label": "Video call unavailable",
        },
        icon("camera", { off: true }),
      ),
    );
    reasons.replaceChildren(
      h("strong", {}, "Video calls aren't available here. "),
      ...decision.reasons.map((r) => h("span", { class: "reason", dataset: { reason: r.code } }, `${r.message} `)),
    );
  }
  if (hadFocus) control.querySelector("button")?.focus();
}

async function refreshEligibility() {
  if (myRole !== "seller") return;
  try {
    renderCallControl(await api("GET", `/api/v1/threads/${encodeURIComponent(threadId)}/call-eligibility`));
  } catch {
    // Keep the icon as drawn; the server checks again when it is pressed.
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
    ringTimeoutS: started.ring_timeout_s,
    closeLabel: "Back to the conversation",
    onClose: () => {
      session = null;
      refreshMessages();
      refreshEligibility();
      document.querySelector("#call-control button")?.focus();
    },
  });
  const starting_ = session.start("ringing", { mediaWarning: media.warning });
  // An offline buyer gets a join link in the thread instead of a ring: say so.
  await refreshMessages();
  const invite = latest.messages.find((m) => m.call?.id === started.call_id && m.call.kind === "invite");
  if (invite) session?.showOffline();
  await starting_;
}

// Any call of ours changing state (ours or the other tab's): the thread may have a new
// note (missed call, call ended), the list a new preview, and the icon may have changed.
socket.on("call_state", (message) => {
  if (message.state === "ended") {
    refreshMessages();
    threadList?.refresh();
  }
  refreshEligibility();
});

socket.on("close", (info) => {
  if (info.final) document.getElementById("call-error").textContent = info.reason;
});

renderCallControl(JSON.parse(document.getElementById("eligibility-data").textContent));
trackPresence(socket, [...new Set([threadId, ...(threadList?.threads().map((t) => t.id) ?? [])])]);
if (me.role === "buyer") {
  const subjects = new Map((threadList?.threads() ?? []).map((t) => [t.id, t.subject]));
  subjects.set(threadId, view.dataset.threadSubject);
  installRinging(socket, {
    subjectOf: (id) => subjects.get(id) ?? "",
    onCallClosed: (id) => {
      if (id === threadId) {
        refreshMessages();
        composerText?.focus();
      } else {
        window.location.assign(`/inbox/threads/${encodeURIComponent(id)}`);
      }
    },
  });
}
