// The buyer's incoming-call banner (WS `incoming_call`). "Accept" answers in one step: the
// recording notice is on the banner (it describes "Accept"), the camera and microphone
// open, `accept_call` carries the consent, and the call screen opens on this page.
// "Decline" declines and says so; a call that rang out leaves a missed-call card.
import { CallSession } from "/static/call.js";
import { RECORDING_NOTICE, protocolErrorWords } from "/static/call_words.js";
import { currentUser, h } from "/static/common.js";
import { openLocalMedia, stopStream } from "/static/media.js";

/**
 * @param subjectOf  thread id -> subject, for "is calling you about ..."
 * @param onCallClosed  the person closed the ended call screen (thread id)
 */
export function installRinging(socket, { subjectOf = () => "", onCallClosed = () => {} } = {}) {
  const region = document.getElementById("incoming-calls");
  if (!region) return;
  const me = currentUser();
  const banners = new Map();
  const originalTitle = document.title;
  let inCall = false;

  const restoreTitle = () => {
    if (![...banners.values()].some((b) => b.ringing)) document.title = originalTitle;
  };

  /** Replace a banner's content by a note that stays until dismissed. */
  function leaveNote(callId, className, ...content) {
    const entry = banners.get(callId);
    if (!entry) return;
    entry.ringing = false;
    const dismiss = h("button", { type: "button", class: "secondary small" }, "Dismiss");
    const note = h("div", { class: `call-note-banner ${className}`, dataset: { callId } }, ...content, dismiss);
    dismiss.addEventListener("click", () => {
      note.remove();
      banners.delete(callId);
      document.querySelector("main")?.focus();
    });
    const hadFocus = entry.element.contains(document.activeElement);
    entry.element.replaceWith(note);
    entry.element = note;
    if (hadFocus) dismiss.focus();
    restoreTitle();
  }

  function remove(callId) {
    banners.get(callId)?.element.remove();
    banners.delete(callId);
    restoreTitle();
  }

  async function accept(message, entry) {
    if (entry.busy || inCall) return;
    entry.busy = true;
    entry.setBusy(true);
    entry.error.textContent = "Starting your camera and microphone...";
    let media;
    try {
      media = await openLocalMedia();
    } catch (err) {
      entry.error.textContent = `${err.message} You need at least a microphone to answer.`;
      entry.busy = false;
      entry.setBusy(false);
      return;
    }
    try {
      await socket.request({ type: "accept_call", call_id: message.call_id, recording_notice_accepted: true });
    } catch (err) {
      stopStream(media.stream);
      entry.busy = false;
      entry.setBusy(false);
      if (err.code === "call_not_live") remove(message.call_id);
      else entry.error.textContent = protocolErrorWords(err);
      return;
    }
    remove(message.call_id);
    inCall = true;
    const session = new CallSession({
      socket,
      callId: message.call_id,
      role: "buyer",
      me,
      peer: { id: message.caller.id, name: message.caller.display_name },
      stream: media.stream,
      closeLabel: "Back to the conversation",
      onClose: () => {
        inCall = false;
        onCallClosed(message.thread_id);
      },
    });
    await session.start("connecting", { mediaWarning: media.warning });
  }

  socket.on("incoming_call", (message) => {
    if (banners.has(message.call_id)) return;
    const subject = subjectOf(message.thread_id);
    const key = `${banners.size}-${Date.now()}`;
    const error = h("p", { class: "error", role: "alert" });
    const accept_ = h("button", { type: "button", "aria-describedby": `ring-notice-${key}` }, "Accept");
    const decline = h("button", { type: "button", class: "secondary" }, "Decline");
    const name = message.caller.display_name;
    const element = h(
      "section",
      { class: "incoming-call", "aria-labelledby": `ring-title-${key}`, dataset: { callId: message.call_id } },
      h("h2", { id: `ring-title-${key}` }, "Incoming video call"),
      h("p", {}, h("strong", {}, name), subject ? ` is calling you about “${subject}”.` : " is calling you."),
      h("p", { class: "recording-notice", id: `ring-notice-${key}` }, h("span", { class: "rec-dot", "aria-hidden": "true" }), RECORDING_NOTICE),
      h("p", { class: "muted" }, "Accepting turns on your camera and microphone and joins the call."),
      error,
      h("div", { class: "dialog-actions" }, accept_, decline),
    );
    const entry = {
      element,
      error,
      ringing: true,
      busy: false,
      threadId: message.thread_id,
      callerName: name,
      setBusy: (value) => {
        accept_.setAttribute("aria-disabled", String(value));
        decline.setAttribute("aria-disabled", String(value));
      },
    };
    accept_.addEventListener("click", () => accept(message, entry));
    decline.addEventListener("click", async () => {
      if (entry.busy) return;
      entry.busy = true;
      entry.setBusy(true);
      try {
        await socket.request({ type: "decline_call", call_id: message.call_id });
      } catch (err) {
        entry.busy = false;
        entry.setBusy(false);
        if (err.code === "call_not_live") remove(message.call_id);
        else error.textContent = protocolErrorWords(err);
        return;
      }
      leaveNote(message.call_id, "declined", h("p", { role: "status" }, `You declined the call from ${name}. They will see that you declined.`));
    });
    banners.set(message.call_id, entry);
    region.append(element);
    document.title = `Incoming call · ${originalTitle}`;
  });

  socket.on("call_state", (message) => {
    const entry = banners.get(message.call_id);
    if (!entry || !entry.ringing || message.state === "ringing") return;
    if (message.state !== "ended") {
      remove(message.call_id); // answered elsewhere (another tab, the join page)
      return;
    }
    if (message.end_reason === "missed" || message.end_reason === "cancelled") {
      const threadId = entry.threadId;
      leaveNote(
        message.call_id,
        "missed",
        h("p", { role: "status" }, h("strong", {}, `Missed video call from ${entry.callerName}`)),
        h("a", { class: "button small", href: `/inbox/threads/${encodeURIComponent(threadId)}#composer-text` }, "Reply"),
      );
    } else if (message.end_reason !== "declined" || message.ended_by !== me.id) {
      remove(message.call_id);
    }
  });
}
