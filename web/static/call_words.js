import { formatDuration } from "/static/common.js";

// Everything a call can say to a person, in words: end reasons, eligibility reasons,
// protocol errors and media-device errors. One place, so every page says the same thing.

export const RECORDING_NOTICE =
  "This call is recorded and may be reviewed for compliance with the Terms of Service. " +
  "Don't share phone numbers, e-mail or other contact details.";

// The same texts as signaling/eligibility.py REASON_MESSAGES (a browser test keeps them in
// step). The server's own message is shown whenever one arrives; these cover
// `call_state.detail`, which carries only the code.
export const ELIGIBILITY_WORDS = {
  caller_not_seller: "Only the seller of this conversation can start a video call.",
  seller_not_in_business_program:
    "Video calls are available to sellers who are members of the Business program.",
  buyer_not_vid: "Video calls are available only with VID buyers.",
  account_restricted: "One of the accounts is restricted and cannot take calls.",
  thread_not_buyer_initiated: "Video calls are possible only in conversations the buyer started.",
  thread_has_order: "An order exists for this conversation; continue on the order page.",
  thread_not_active:
    "This conversation is not active (closed, archived, or no recent buyer activity).",
  buyer_blocked_seller: "The buyer is not accepting calls from this seller.",
  call_already_active: "A call is already in progress for one of you.",
  rate_limited: "Too many call attempts in this conversation; try again later.",
};

export function eligibilityWords(code) {
  return ELIGIBILITY_WORDS[code] ?? "Calls are not allowed here right now.";
}

/**
 * Why the call ended, as a sentence for the person reading it.
 * `state` is the `call_state` message; `me` is the reader's user id; `peerName` the other
 * person's name; `role` the reader's role in the call ("seller" or "buyer").
 */
export function endReasonWords(state, me, peerName, role) {
  const byMe = state.ended_by !== null && state.ended_by === me;
  const peer = peerName || "The other person";
  switch (state.end_reason) {
    case "hung_up":
      return byMe ? "You hung up." : `${peer} hung up.`;
    case "missed":
      return role === "buyer"
        ? `You missed a call from ${peer}.`
        : `${peer} did not answer in time.`;
    case "declined":
      return byMe ? "You declined the call." : `${peer} declined the call.`;
    case "cancelled":
      return byMe ? "You cancelled the call." : `${peer} cancelled the call before you answered.`;
    case "failed":
      return failureWords(state.detail, byMe, state.ended_by === null, peer);
    case "ineligible":
      return `The call was ended because calls are no longer allowed in this conversation: ${eligibilityWords(
        state.detail,
      )}`;
    case "server_shutdown":
      return "The call service restarted, which ended the call. You can call again.";
    case "max_length":
      return "The call reached the longest a call may last, so it ended. You can call again.";
    default:
      return "The call ended.";
  }
}

function failureWords(detail, byMe, nobody, peer) {
  const whose = nobody ? "A" : byMe ? "Your" : `${peer}'s`;
  switch (detail) {
    case "ice_failed":
      return `${whose} connection could not reach the call server (network problem), so the call ended.`;
    case "dtls_failed":
      return `${whose} secure media connection failed, so the call ended.`;
    case "participant_lost":
      return byMe
        ? "Your connection was lost and did not come back in time, so the call ended."
        : `${peer}'s connection was lost and did not come back in time, so the call ended.`;
    case "connect_timeout":
      return "The call could not connect in time (the video connection did not start), so it ended.";
    case "media_worker_lost":
    case "node_lost":
      return "The call server carrying this call stopped, so the call ended. You can call again.";
    case "recording_failed":
      return "The call could not be recorded, so it ended: calls here are only allowed while they are recorded. You can call again.";
    case "storage_failed":
      return "The call service could not save the call, so it ended. You can call again in a moment.";
    case "bitrate_exceeded":
      return `${whose} connection kept sending far more video data than a call allows, so the call ended.`;
    default:
      return "The call failed because of a connection problem.";
  }
}

/**
 * `video_paused`: video to `weakId` stopped because their connection is weak (audio goes
 * on). The words for the reader (`me`), or null when nothing is paused.
 */
export function videoPausedWords(weakId, me, peerName) {
  if (weakId === null) return null;
  const peer = peerName || "The other person";
  return weakId === me
    ? "Video paused: your connection is weak. You can still hear each other; video comes back when it improves."
    : `Video paused for ${peer}: their connection is weak. They still hear you; video comes back when it improves.`;
}

/** `call_ending_soon`: the call ends at its maximum length in `seconds`. */
export function endingSoonWords(seconds, maxMinutes) {
  const limit = maxMinutes >= 1 ? ` (calls last at most ${Math.round(maxMinutes)} minutes)` : "";
  return `This call ends in ${formatDuration(Math.max(0, Math.ceil(seconds)))}${limit}.`;
}

/** A protocol error (ProtocolError from ws.js) as words. */
export function protocolErrorWords(error) {
  switch (error.code) {
    case "ineligible":
      return error.reasons?.length
        ? `You can't call here: ${error.reasons.map((r) => r.message).join(" ")}`
        : "You can't call in this conversation right now.";
    case "rate_limited":
      return "Too many attempts in a short time. Wait a moment and try again.";
    case "not_found":
      return "This call or conversation no longer exists. Reload the page.";
    case "call_not_live":
      return "This call has already ended.";
    case "not_allowed":
      return error.message || "You can't do that in this call.";
    case "connection_lost":
    case "closed":
      return error.message || "The connection to the server was lost. Try again in a moment.";
    case "sdp_invalid":
      return "Your browser's video settings could not be used by the call server.";
    default:
      return error.message || "Something went wrong. Try again in a moment.";
  }
}

/** getUserMedia errors as words. */
export function mediaErrorWords(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
      return "Camera and microphone access is blocked for this site. Allow it in your browser's address bar, then try again.";
    case "NotFoundError":
    case "DevicesNotFoundError":
      return "No camera or microphone was found. Connect one and try again.";
    case "NotReadableError":
    case "TrackStartError":
      return "Your camera or microphone is being used by another app. Close that app and try again.";
    case "OverconstrainedError":
      return "The selected camera or microphone is not available. Choose another one.";
    case "SecurityError":
      return "Calls need a secure (https) page.";
    default:
      return "Your camera and microphone could not be started.";
  }
}

/**
 * The words of a thread's note about a call (`message.call` from the inbox API), for the
 * reader: `role` is the reader's side of the thread, `other` the other person's name.
 * `missed` marks a call the buyer did not take (drawn as a missed-call card).
 */
export function callNoteWords(call, { role, other }) {
  const buyer = role === "buyer";
  if (call.kind === "invite") {
    if (!buyer) return { text: `${other} was offline, so a join link was left here for them.`, missed: false };
    return call.join_url
      ? { text: `${other} is calling you. Join from here while the call rings.`, missed: false }
      : { text: `${other} left a join link for a video call. That call is over.`, missed: false };
  }
  if (call.duration_seconds !== null && call.duration_seconds !== undefined) {
    return { text: `Video call · ${formatDuration(call.duration_seconds)}`, missed: false };
  }
  switch (call.end_reason) {
    case "missed":
    case "cancelled":
      if (buyer) return { text: `Missed video call from ${other}`, missed: true };
      return call.end_reason === "missed"
        ? { text: `${other} didn't answer your video call.`, missed: false }
        : { text: "You cancelled the video call.", missed: false };
    case "declined":
      return buyer
        ? { text: `You declined a video call from ${other}.`, missed: false }
        : { text: `${other} declined your video call.`, missed: false };
    default:
      return { text: "Video call ended before it connected.", missed: false };
  }
}
