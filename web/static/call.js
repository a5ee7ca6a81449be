// The call screen: one RTCPeerConnection to the server (which answers our offers and
// forwards the other person's media), controls, in-call chat, connection quality,
// reconnecting, and the end of the call in words. Used by the seller's thread page and
// the buyer's join page; the markup is web/templates/_call_screen.html.
import { endReasonWords, protocolErrorWords } from "/static/call_words.js";
import { formatDuration, h } from "/static/common.js";
import { stopStream } from "/static/media.js";

const STATS_INTERVAL_MS = 2_000;
// A "disconnected" leg often recovers by itself within a second or two; only after this
// long do we build a new one (the server's aiortc cannot restart ICE in place).
const DISCONNECTED_GRACE_MS = 2_500;
const MIN_MS_BETWEEN_RESTARTS = 3_000;
// If the server's `call_state: ended` does not follow our own hang-up within this, end
// the screen anyway: the person asked to leave.
const HANG_UP_CONFIRM_MS = 5_000;

const STATUS_WORDS = {
  ringing: "Calling...",
  connecting: "Connecting...",
  active: "Connected",
  reconnecting: "Reconnecting...",
  ended: "Call ended",
};

/** Connection quality from one getStats interval. */
export function classifyQuality({ rtt, loss, bitrate, expectVideo }) {
  if (rtt === null && bitrate === null) return "unknown";
  const r = rtt ?? 0;
  if (r > 0.6 || loss > 0.1 || (expectVideo && bitrate !== null && bitrate < 80_000)) return "poor";
  if (r > 0.25 || loss > 0.03 || (expectVideo && bitrate !== null && bitrate < 250_000)) {
    return "fair";
  }
  return "good";
}

export class CallSession {
  /**
   * @param socket   the page's CallSocket
   * @param callId   the call
   * @param role     "seller" | "buyer"
   * @param me       { id }
   * @param peer     { id, name }
   * @param stream   the local MediaStream (camera + microphone, or microphone only)
   * @param onClose  called when the person closes the ended call screen
   * @param closeLabel  the label of that button
   */
  constructor({ socket, callId, role, me, peer, stream, onClose, closeLabel = "Close" }) {
    this.socket = socket;
    this.callId = callId;
    this.role = role;
    this.me = me;
    this.peer = peer;
    this.stream = stream;
    this.onClose = onClose;
    this.state = "ringing";
    this.ended = false;
    this.pc = null;
    this.generation = 0;
    this.offerSent = false;
    this.candidateQueue = [];
    this.remoteCandidates = [];
    this.remoteStream = null;
    this.reconnecting = false;
    this.lastRestartAt = 0;
    this.disconnectTimer = null;
    this.statsTimer = null;
    this.clockTimer = null;
    this.activeSince = null;
    this.previousSample = null;
    this.peerVideo = true;
    this.peerAudio = true;
    this.chatIds = new Set();

    const screen = document.getElementById("call-screen");
    this.screen = screen;
    const $ = (selector) => screen.querySelector(selector);
    this.el = {
      title: $("[data-call-title]"),
      status: $("[data-call-status]"),
      statusDetail: $("[data-call-status-detail]"),
      timer: $("[data-call-timer]"),
      quality: $("[data-call-quality]"),
      theirVideo: $("[data-their-video]"),
      yourVideo: $("[data-your-video]"),
      theirSide: $("[data-their-side]"),
      placeholder: $("[data-their-placeholder]"),
      voiceOnly: $("[data-voice-only]"),
      voiceOnlyText: $("[data-voice-only-text]"),
      voiceOnlyInitial: $("[data-voice-only-initial]"),
      peerMuted: $("[data-peer-muted]"),
      selfCameraOff: $("[data-self-camera-off]"),
      mic: $("[data-toggle-mic]"),
      camera: $("[data-toggle-camera]"),
      hangUp: $("[data-hang-up]"),
      chatLog: $("[data-chat-log]"),
      chatForm: $("[data-chat-form]"),
      chatText: $("[data-chat-text]"),
      chatSend: $("[data-chat-send]"),
      chatWarning: $("[data-chat-warning]"),
      chatHint: $("[data-chat-hint]"),
      mediaWarning: $("[data-media-warning]"),
      live: $("[data-call-live]"),
      endPanel: $("[data-call-ended]"),
      endHeading: $("[data-call-ended-heading]"),
      endReason: $("[data-call-end-reason]"),
      endDuration: $("[data-call-end-duration]"),
      endClose: $("[data-call-close]"),
    };
    this.unsubscribe = [
      socket.on("call_state", (m) => m.call_id === callId && this.onCallState(m)),
      socket.on("peer_media_state", (m) => m.call_id === callId && this.onPeerMedia(m)),
      socket.on("ice_candidate", (m) => m.call_id === callId && this.onRemoteCandidate(m)),
      socket.on("chat", (m) => m.call_id === callId && this.onChat(m)),
      socket.on("contact_details_warning", (m) => m.call_id === callId && this.onWarning(m)),
      socket.on("open", () => this.onSocketBack()),
      socket.on("close", (info) => this.onSocketLost(info)),
    ];
    this.bindControls(closeLabel);
    // For diagnostics (and the browser tests): the live session and its peer connection.
    window.inboxcall = { ...(window.inboxcall ?? {}), call: this };
  }

  bindControls(closeLabel) {
    const { el } = this;
    el.mic.onclick = () => this.toggle("audio");
    el.camera.onclick = () => this.toggle("video");
    el.hangUp.onclick = () => this.hangUp();
    el.chatForm.onsubmit = (event) => {
      event.preventDefault();
      this.sendChat();
    };
    el.endClose.textContent = closeLabel;
    el.endClose.onclick = () => {
      this.screen.close();
      this.onClose?.();
    };
    // Escape must not silently leave a live call; "Hang up" is the way out.
    this.screen.addEventListener("cancel", (event) => {
      if (!this.ended) event.preventDefault();
    });
  }

  /** Show the screen in `state` ("ringing" for the seller, "connecting" for the buyer). */
  async start(state, { mediaWarning } = {}) {
    const { el } = this;
    el.title.textContent = `Video call with ${this.peer.name}`;
    el.endPanel.hidden = true;
    el.chatLog.replaceChildren();
    el.mediaWarning.textContent = mediaWarning ?? "";
    el.mediaWarning.hidden = !mediaWarning;
    el.yourVideo.srcObject = this.stream;
    el.yourVideo.muted = true;
    el.yourVideo.play().catch(() => {});
    el.theirVideo.srcObject = null;
    this.updateMediaButtons();
    this.setState(state);
    if (!this.screen.open) this.screen.showModal();
    el.hangUp.focus();
    this.statsTimer = setInterval(() => this.sampleStats(), STATS_INTERVAL_MS);
    await this.negotiate();
  }

  setState(state) {
    if (this.ended) return;
    this.state = state;
    const { el } = this;
    this.screen.dataset.state = state;
    el.status.textContent = this.reconnecting ? STATUS_WORDS.reconnecting : STATUS_WORDS[state];
    let detail = "";
    if (this.reconnecting) {
      detail = "The connection dropped; getting it back. The call continues if it returns soon.";
    } else if (state === "ringing") {
      detail = `Waiting for ${this.peer.name} to answer.`;
    } else if (state === "connecting") {
      detail = "Starting video and sound.";
    }
    el.statusDetail.textContent = detail;
    el.placeholder.textContent =
      state === "ringing"
        ? `Calling ${this.peer.name}...`
        : state === "connecting"
          ? `Connecting to ${this.peer.name}...`
          : "";
    el.placeholder.hidden = state === "active";
    const chatOpen = state === "connecting" || state === "active";
    el.chatText.disabled = !chatOpen;
    el.chatSend.disabled = !chatOpen;
    el.chatHint.hidden = chatOpen;
    if (state === "active" && this.activeSince === null) {
      this.activeSince = performance.now();
      this.tickClock();
      this.clockTimer = setInterval(() => this.tickClock(), 1_000);
    }
  }

  tickClock() {
    if (this.activeSince === null) return;
    this.el.timer.textContent = formatDuration((performance.now() - this.activeSince) / 1000);
  }

  // --- media leg --------------------------------------------------------------------

  async negotiate() {
    const generation = ++this.generation;
    const previous = this.pc;
    const pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.offerSent = false;
    this.candidateQueue = [];
    this.remoteCandidates = [];
    const remote = new MediaStream();
    this.remoteStream = remote;
    // One audio and one video transceiver, sendrecv, even without a camera (protocol step 5).
    const audioTrack = this.stream.getAudioTracks()[0];
    const videoTrack = this.stream.getVideoTracks()[0];
    pc.addTransceiver(audioTrack ?? "audio", { direction: "sendrecv", streams: [this.stream] });
    pc.addTransceiver(videoTrack ?? "video", { direction: "sendrecv", streams: [this.stream] });
    pc.ontrack = (event) => {
      if (generation !== this.generation) return;
      remote.addTrack(event.track);
      if (this.el.theirVideo.srcObject !== remote) this.el.theirVideo.srcObject = remote;
      this.el.theirVideo.play().catch(() => {});
    };
    pc.onicecandidate = (event) => this.sendCandidate(generation, event.candidate);
    pc.onconnectionstatechange = () => this.onConnectionState(pc, generation);
    previous?.close();
    this.previousSample = null;

    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    let answer;
    try {
      answer = await this.socket.request(
        { type: "offer", call_id: this.callId, sdp: pc.localDescription.sdp },
        {
          onSent: () => {
            this.offerSent = true;
            for (const message of this.candidateQueue.splice(0)) this.socket.send(message);
          },
        },
      );
    } catch (error) {
      if (generation !== this.generation || this.ended) return;
      if (error.code === "call_not_live") {
        this.endUnknown();
        return;
      }
      this.say(protocolErrorWords(error));
      return;
    }
    if (generation !== this.generation || this.ended) return;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    for (const candidate of this.remoteCandidates.splice(0)) {
      await pc.addIceCandidate(candidate).catch(() => {});
    }
    this.sendMediaState();
  }

  sendCandidate(generation, candidate) {
    if (generation !== this.generation || this.ended) return;
    const message = {
      type: "ice_candidate",
      call_id: this.callId,
      candidate: candidate?.candidate || null,
      sdp_mid: candidate?.candidate ? candidate.sdpMid : null,
      sdp_mline_index: candidate?.candidate ? candidate.sdpMLineIndex : null,
    };
    if (!this.offerSent) this.candidateQueue.push(message);
    else this.socket.send(message);
  }

  async onRemoteCandidate(message) {
    const pc = this.pc;
    if (!pc || this.ended) return;
    const candidate = message.candidate
      ? { candidate: message.candidate, sdpMid: message.sdp_mid, sdpMLineIndex: message.sdp_mline_index }
      : null;
    if (candidate === null) return; // end of candidates: nothing to tell Chromium
    if (!pc.remoteDescription) this.remoteCandidates.push(candidate);
    else await pc.addIceCandidate(candidate).catch(() => {});
  }

  onConnectionState(pc, generation) {
    if (generation !== this.generation || this.ended) return;
    const state = pc.connectionState;
    if (state === "connected") {
      clearTimeout(this.disconnectTimer);
      if (this.reconnecting) {
        this.reconnecting = false;
        this.setState(this.state);
        this.say("Reconnected.");
      }
    } else if (state === "disconnected") {
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = setTimeout(() => {
        if (pc.connectionState !== "connected") this.restartLeg();
      }, DISCONNECTED_GRACE_MS);
    } else if (state === "failed") {
      this.restartLeg();
    }
  }

  /** A new RTCPeerConnection and offer for the same call: the protocol's ICE restart. */
  restartLeg() {
    if (this.ended) return;
    this.reconnecting = true;
    this.setState(this.state);
    const wait = Math.max(0, this.lastRestartAt + MIN_MS_BETWEEN_RESTARTS - performance.now());
    clearTimeout(this.disconnectTimer);
    this.disconnectTimer = setTimeout(async () => {
      if (this.ended) return;
      this.lastRestartAt = performance.now();
      try {
        await this.socket.ready();
        await this.negotiate();
      } catch {
        // The socket is down; onSocketBack() restarts the leg when it returns.
      }
    }, wait);
  }

  onSocketLost(info) {
    if (this.ended) return;
    if (info.final) {
      this.say(info.reason);
      return;
    }
    this.reconnecting = true;
    this.setState(this.state);
  }

  /** The socket is back: tell the server we are here (media_state), check the call lives. */
  async onSocketBack() {
    if (this.ended) return;
    try {
      await this.socket.request(this.mediaStateMessage());
    } catch (error) {
      if (error.code === "call_not_live") this.endUnknown();
      return;
    }
    const connected = this.pc?.connectionState === "connected";
    if (connected) {
      this.reconnecting = false;
      this.setState(this.state);
    } else {
      this.restartLeg();
    }
  }

  // --- controls ---------------------------------------------------------------------

  toggle(kind) {
    const tracks = kind === "audio" ? this.stream.getAudioTracks() : this.stream.getVideoTracks();
    if (!tracks.length) return;
    const on = !tracks[0].enabled;
    for (const track of tracks) track.enabled = on;
    this.updateMediaButtons();
    this.sendMediaState();
    if (kind === "audio") this.say(on ? "Microphone on." : "Microphone muted.");
    else this.say(on ? "Camera on." : "Camera off.");
  }

  get audioOn() {
    return this.stream.getAudioTracks().some((t) => t.enabled);
  }

  get videoOn() {
    return this.stream.getVideoTracks().some((t) => t.enabled);
  }

  updateMediaButtons() {
    const { el } = this;
    const hasAudio = this.stream.getAudioTracks().length > 0;
    const hasVideo = this.stream.getVideoTracks().length > 0;
    el.mic.textContent = this.audioOn ? "Mute microphone" : "Unmute microphone";
    el.mic.setAttribute("aria-disabled", String(!hasAudio));
    el.camera.textContent = this.videoOn ? "Turn camera off" : "Turn camera on";
    el.camera.setAttribute("aria-disabled", String(!hasVideo));
    if (!hasVideo) el.camera.title = "No camera is in use in this call.";
    el.selfCameraOff.hidden = this.videoOn;
    this.screen.classList.toggle("self-camera-off", !this.videoOn);
  }

  mediaStateMessage() {
    return { type: "media_state", call_id: this.callId, audio: this.audioOn, video: this.videoOn };
  }

  sendMediaState() {
    if (this.ended) return;
    this.socket.send(this.mediaStateMessage());
  }

  onPeerMedia(message) {
    this.peerVideo = message.video;
    this.peerAudio = message.audio;
    const { el } = this;
    el.theirSide.classList.toggle("camera-off", !message.video);
    el.voiceOnly.hidden = message.video;
    el.voiceOnlyText.textContent = `${this.peer.name} turned their camera off. Voice only.`;
    el.voiceOnlyInitial.textContent = (this.peer.name.trim()[0] ?? "?").toUpperCase();
    el.peerMuted.hidden = message.audio;
    el.peerMuted.textContent = `${this.peer.name} muted their microphone.`;
  }

  async hangUp() {
    if (this.ended) return;
    const type =
      this.state === "ringing" ? (this.role === "seller" ? "cancel_call" : "decline_call") : "hang_up";
    this.el.hangUp.setAttribute("aria-disabled", "true");
    try {
      await this.socket.request({ type, call_id: this.callId });
    } catch (error) {
      if (error.code === "call_not_live") {
        this.endUnknown();
        return;
      }
      this.el.hangUp.setAttribute("aria-disabled", "false");
      this.say(protocolErrorWords(error));
      return;
    }
    const reason = type === "hang_up" ? "hung_up" : type === "cancel_call" ? "cancelled" : "declined";
    setTimeout(
      () => this.end({ end_reason: reason, ended_by: this.me.id, detail: null }),
      HANG_UP_CONFIRM_MS,
    );
  }

  // --- chat -------------------------------------------------------------------------

  async sendChat() {
    const { el } = this;
    const text = el.chatText.value.trim();
    if (!text || this.ended) return;
    el.chatWarning.textContent = "";
    try {
      await this.socket.request({ type: "chat", call_id: this.callId, text });
      el.chatText.value = "";
    } catch (error) {
      el.chatWarning.textContent = protocolErrorWords(error);
    }
  }

  onChat(message) {
    const record = message.message;
    if (this.chatIds.has(record.id)) return;
    this.chatIds.add(record.id);
    const mine = record.sender_id === this.me.id;
    const flagged = record.flags.includes("contact_details");
    const item = h(
      "li",
      { class: `chat-line${mine ? " mine" : ""}${flagged ? " flagged" : ""}`, dataset: { messageId: record.id } },
      h("span", { class: "sender" }, mine ? "You" : this.peer.name),
      " ",
      h("span", { class: "text" }, record.text),
      flagged ? h("span", { class: "flag", role: "note" }, "Contact details detected") : null,
    );
    this.el.chatLog.append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  onWarning(message) {
    this.el.chatWarning.textContent =
      message.message ||
      "That message looks like it contains contact details. Sharing phone numbers, e-mail or other contact details breaks the Terms of Service.";
  }

  // --- quality ----------------------------------------------------------------------

  async sampleStats() {
    const pc = this.pc;
    if (!pc || this.ended || this.state === "ringing") return;
    let report;
    try {
      report = await pc.getStats();
    } catch {
      return;
    }
    let rtt = null;
    let bytes = 0;
    let lost = 0;
    let received = 0;
    report.forEach((s) => {
      if (s.type === "candidate-pair" && s.state === "succeeded" && s.nominated) {
        if (typeof s.currentRoundTripTime === "number") rtt = s.currentRoundTripTime;
      }
      if (s.type === "remote-inbound-rtp" && rtt === null && typeof s.roundTripTime === "number") {
        rtt = s.roundTripTime;
      }
      if (s.type === "inbound-rtp") {
        bytes += s.bytesReceived ?? 0;
        lost += Math.max(0, s.packetsLost ?? 0);
        received += s.packetsReceived ?? 0;
      }
    });
    const now = performance.now();
    const before = this.previousSample;
    this.previousSample = { now, bytes, lost, received };
    if (!before) return;
    const seconds = (now - before.now) / 1000;
    const bitrate = seconds > 0 ? ((bytes - before.bytes) * 8) / seconds : null;
    const newLost = lost - before.lost;
    const newReceived = received - before.received;
    const loss = newLost + newReceived > 0 ? newLost / (newLost + newReceived) : 0;
    const level = classifyQuality({ rtt, loss, bitrate, expectVideo: this.peerVideo });
    const details = [
      rtt === null ? null : `round trip ${Math.round(rtt * 1000)} ms`,
      `loss ${(loss * 100).toFixed(1)} %`,
      bitrate === null ? null : `${(bitrate / 1_000_000).toFixed(2)} Mbit/s in`,
    ]
      .filter(Boolean)
      .join(", ");
    const words = { good: "good", fair: "fair", poor: "poor", unknown: "measuring" }[level];
    const q = this.el.quality;
    q.dataset.quality = level;
    q.querySelector("[data-quality-level]").textContent = words;
    q.querySelector("[data-quality-details]").textContent = details;
  }

  // --- ending -----------------------------------------------------------------------

  onCallState(message) {
    if (message.state === "ended") this.end(message);
    else this.setState(message.state);
  }

  endUnknown() {
    this.end({ end_reason: null, ended_by: null, detail: null });
  }

  end(message) {
    if (this.ended) return;
    const { el } = this;
    const hadConnected = this.activeSince !== null;
    const duration = hadConnected ? (performance.now() - this.activeSince) / 1000 : 0;
    this.state = "ended";
    this.ended = true;
    this.screen.dataset.state = "ended";
    clearInterval(this.statsTimer);
    clearInterval(this.clockTimer);
    clearTimeout(this.disconnectTimer);
    for (const off of this.unsubscribe) off();
    this.pc?.close();
    stopStream(this.stream);
    el.yourVideo.srcObject = null;
    el.theirVideo.srcObject = null;
    el.status.textContent = STATUS_WORDS.ended;
    el.statusDetail.textContent = "";
    el.chatText.disabled = true;
    el.chatSend.disabled = true;
    el.endReason.textContent =
      message.end_reason === null
        ? "The call ended while you were disconnected."
        : endReasonWords(message, this.me.id, this.peer.name, this.role);
    el.endDuration.textContent = hadConnected ? `The call lasted ${formatDuration(duration)}.` : "";
    el.endDuration.hidden = !hadConnected;
    el.endPanel.hidden = false;
    el.endHeading.focus();
    this.endMessage = message;
    this.screen.dispatchEvent(new CustomEvent("call-ended", { detail: message }));
  }

  /** Screen-reader announcement (and visible status line). */
  say(text) {
    this.el.live.textContent = text;
  }
}
