// The buyer's join page: who calls about which thread, the recording notice, a camera and
// microphone preview with device pickers, "Join call" (accept_call carries the consent to
// the recording) and "Decline"; then the call screen.
import { CallSession } from "/static/call.js";
import { endReasonWords, protocolErrorWords } from "/static/call_words.js";
import { api, currentUser } from "/static/common.js";
import { fillDevicePicker, openLocalMedia, stopStream, trackDeviceId } from "/static/media.js";
import { pageSocket } from "/static/ws.js";

const root = document.getElementById("join");
const data = root.dataset;
const callId = data.callId;
const threadUrl = `/inbox/threads/${encodeURIComponent(data.threadId)}`;
const me = currentUser();
const controls = root.querySelector("[data-join-controls]");

// Who calls about which thread: the subject comes from the thread itself.
api("GET", `/api/v1/threads/${encodeURIComponent(data.threadId)}`)
  .then((thread) => {
    if (thread.subject) root.querySelector("[data-thread-subject]").textContent = thread.subject;
  })
  .catch(() => {
    // The thread id stays as the link text; the link still works.
  });

if (controls && data.isBuyer === "true") setUpJoining();

function setUpJoining() {
  const preview = root.querySelector("[data-preview]");
  const previewStatus = root.querySelector("[data-preview-status]");
  const cameraPicker = root.querySelector("[data-camera-picker]");
  const micPicker = root.querySelector("[data-mic-picker]");
  const joinButton = root.querySelector("[data-join-call]");
  const declineButton = root.querySelector("[data-decline-call]");
  const error = root.querySelector("[data-join-error]");
  const stateLine = root.querySelector("[data-join-state]");
  const socket = pageSocket();
  const seller = { id: data.sellerId, name: data.sellerName };
  let media = null;
  let opening = null;
  let finished = false;
  let busy = false;

  const setBusy = (value) => {
    busy = value;
    joinButton.setAttribute("aria-disabled", String(value || finished));
    declineButton?.setAttribute("aria-disabled", String(value || finished));
  };

  async function openPreview() {
    const wanted = { videoDeviceId: cameraPicker.value || undefined, audioDeviceId: micPicker.value || undefined };
    stopStream(media?.stream);
    media = null;
    preview.srcObject = null;
    previewStatus.hidden = false;
    previewStatus.textContent = "Starting your camera and microphone...";
    error.textContent = "";
    try {
      media = await openLocalMedia(cameraPicker.disabled && micPicker.disabled ? {} : wanted);
    } catch (err) {
      previewStatus.textContent = "No camera or microphone.";
      error.textContent = `${err.message} You need at least a microphone to join.`;
      return;
    }
    preview.srcObject = media.stream;
    preview.play().catch(() => {});
    const hasVideo = media.stream.getVideoTracks().length > 0;
    previewStatus.hidden = hasVideo;
    previewStatus.textContent = hasVideo ? "" : "Your camera is off; they will hear you only.";
    if (media.warning) error.textContent = media.warning;
    await fillDevicePicker(cameraPicker, "videoinput", trackDeviceId(media.stream.getVideoTracks()[0]));
    await fillDevicePicker(micPicker, "audioinput", trackDeviceId(media.stream.getAudioTracks()[0]));
  }

  const reopen = () => {
    opening = openPreview();
  };
  cameraPicker.addEventListener("change", reopen);
  micPicker.addEventListener("change", reopen);
  opening = openPreview();

  function finish(words) {
    finished = true;
    stopStream(media?.stream);
    preview.srcObject = null;
    stateLine.textContent = words;
    setBusy(false);
    joinButton.hidden = true;
    if (declineButton) declineButton.hidden = true;
    cameraPicker.disabled = true;
    micPicker.disabled = true;
  }

  // The call may end while the page is open: rang out, or the seller cancelled.
  const offState = socket.on("call_state", (message) => {
    if (message.call_id !== callId || finished) return;
    if (message.state === "ended") {
      finish(endReasonWords(message, me.id, seller.name, "buyer"));
    }
  });

  joinButton.addEventListener("click", async () => {
    if (busy || finished) return;
    setBusy(true);
    error.textContent = "";
    await opening;
    if (!media) {
      error.textContent = "Your microphone is needed to join. Allow it, or choose another one, then try again.";
      setBusy(false);
      return;
    }
    // The notice stays on screen and in view while joining.
    root.querySelector("#recording-notice").scrollIntoView({ block: "nearest" });
    const rejoin = data.callState !== "ringing";
    if (!rejoin) {
      try {
        await socket.request({ type: "accept_call", call_id: callId, recording_notice_accepted: true });
      } catch (err) {
        error.textContent = protocolErrorWords(err);
        if (err.code === "call_not_live" || err.code === "ineligible") finish(protocolErrorWords(err));
        setBusy(false);
        return;
      }
    }
    offState();
    preview.srcObject = null;
    const session = new CallSession({
      socket,
      callId,
      role: "buyer",
      me,
      peer: seller,
      stream: media.stream,
      closeLabel: "Back to the conversation",
      onClose: () => window.location.assign(threadUrl),
    });
    finished = true;
    controls.hidden = true;
    await session.start("connecting", { mediaWarning: media.warning });
  });

  declineButton?.addEventListener("click", async () => {
    if (busy || finished) return;
    setBusy(true);
    try {
      await socket.request({ type: "decline_call", call_id: callId });
    } catch (err) {
      error.textContent = protocolErrorWords(err);
      setBusy(false);
      if (err.code === "call_not_live") finish("This call has already ended.");
      return;
    }
    finish(`You declined the call. ${seller.name} will see that you declined.`);
  });
}
