// The call screen: one RTCPeerConnection to the server (which answers our offers and
// forwards the other person's media), controls, in-call chat, connection quality,
// reconnecting (ours and the other person's), reporting, and the end of the call in words.
// Used by the seller's thread page, the buyer's inbox and thread pages (Accept) and the
// join page; the markup is web/templates/_call_screen.html.
import {
  endingSoonWords,
  endReasonWords,
  protocolErrorWords,
  videoPausedWords,
} from "/static/call_words.js";
import { api, csrfToken, formatDuration, h, initials } from "/static/common.js";
import { fillIcons, icon } from "/static/icons.js";
import { stopStream } from "/static/media.js";
import { openReport } from "/static/report.js";

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

// The browser's bandwidth estimate starts low (about 300 kbit/s) and climbs over the first
// seconds, and round trips are noisy until a few have been measured: a perfect link would
// read "fair". Say "measuring" for this long after each leg connects.
export const QUALITY_WARMUP_MS = 6_000;
// A worse reading must repeat before the bars drop: one late sample is not a bad link.
const QUALITY_DOWNGRADE_SAMPLES = 2;
const QUALITY_RANK = { unknown: 0, poor: 1, fair: 2, good: 3 };
const QUALITY_WORDS = { good: "good", fair: "fair", poor: "poor", unknown: "measuring…" };

/**
 * Signal bars from one getStats interval: round trip (s), loss (share of packets lost
 * since the last sample, both directions), jitter (s) and the browser's available
 * outgoing bitrate (bit/s; the video needs room to send). The browser starts its estimate
 * at about 300 kbit/s and only raises it on a good link, so below 200 kbit/s the network
 * has pushed it down (video suffers), and below 100 kbit/s video can hardly be carried.
 */
export function classifyQuality({ rtt, loss, jitter, availableBitrate, sendingVideo }) {
  if (rtt === null && availableBitrate === null) return "unknown";
  const r = rtt ?? 0;
  const j = jitter ?? 0;
  const room = sendingVideo && availableBitrate !== null ? availableBitrate : Infinity;
  if (r > 0.5 || loss > 0.08 || j > 0.1 || room < 100_000) return "poor";
  if (r > 0.25 || loss > 0.02 || j > 0.04 || room < 200_000) return "fair";
  return "good";
}

/** What the bars show: the new reading, but a drop only once it repeats. */
export function settleQuality(shown, reading, worseStreak) {
  if (reading === "unknown" || shown === "unknown") return { shown: reading, worseStreak: 0 };
  if (QUALITY_RANK[reading] >= QUALITY_RANK[shown]) return { shown: reading, worseStreak: 0 };
  const streak = worseStreak + 1;
  return streak >= QUALITY_DOWNGRADE_SAMPLES
    ? { shown: reading, worseStreak: 0 }
    : { shown, worseStreak: streak };
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
   * @param ringTimeoutS  how long the seller's call rings (the ringing view counts down)
   */
  constructor({ socket, callId, role, me, peer, stream, onClose, closeLabel = "Back to the conversation", ringTimeoutS = null }) {
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
    this.localCandidates = 0;
    this.noPath = false;
    this.remoteCandidates = [];
    this.remoteStream = null;
    this.reconnecting = false;
    this.lastRestartAt = 0;
    this.disconnectTimer = null;
    this.statsTimer = null;
    this.clockTimer = null;
    // Connected time, counted as the server counts it (signaling/call_duration.py): only
    // while active and nobody is lost. The end screen shows the server's own figure.
    this.connectedMs = 0;
    this.countingSince = null;
    this.everActive = false;
    this.peerLost = false;
    this.peerLostUntil = null;
    // Whose connection is too weak for video (`video_paused`), and when the call reaches
    // its maximum length (`call_ending_soon`).
    this.videoPausedFor = null;
    this.endingAt = null;
    this.maxMinutes = 0;
    this.ringDeadline = ringTimeoutS === null ? null : performance.now() + ringTimeoutS * 1000;
    this.ringTimer = null;
    this.previousSample = null;
    this.legConnectedAt = null;
    this.quality = "unknown";
    this.qualityWorseStreak = 0;
    this.qualitySent = null;
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
      peerQuality: $("[data-peer-quality]"),
      qualityDetails: $("[data-quality-details]"),
      theirVideo: $("[data-their-video]"),
      yourVideo: $("[data-your-video]"),
      theirSide: $("[data-their-side]"),
      theirCover: $("[data-their-cover]"),
      theirCoverText: $("[data-their-cover-text]"),
      theirInitials: $("[data-their-initials]"),
      theirName: $("[data-their-name]"),
      peerMuted: $("[data-peer-muted]"),
      selfCameraOff: $("[data-self-camera-off]"),
      selfInitials: $("[data-self-initials]"),
      selfMuted: $("[data-self-muted]"),
      ringingInitials: $("[data-ringing-initials]"),
      ringingName: $("[data-ringing-name]"),
      ringCountdown: $("[data-ring-countdown]"),
      offlineNote: $("[data-offline-note]"),
      report: $("[data-open-report]"),
      endReport: $("[data-end-report]"),
      reportStatus: $("[data-report-status]"),
      endedInitials: $("[data-ended-initials]"),
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
      socket.on("peer_connection_state", (m) => m.call_id === callId && this.onPeerConnection(m)),
      socket.on("peer_connection_quality", (m) => m.call_id === callId && this.onPeerQuality(m)),
      socket.on("ice_candidate", (m) => m.call_id === callId && this.onRemoteCandidate(m)),
      socket.on("chat", (m) => m.call_id === callId && this.onChat(m)),
      socket.on("contact_details_warning", (m) => m.call_id === callId && this.onWarning(m)),
      socket.on("video_paused", (m) => m.call_id === callId && this.onVideoPaused(m)),
      socket.on("call_ending_soon", (m) => m.call_id === callId && this.onEndingSoon(m)),
      socket.on("open", () => this.onSocketBack()),
      socket.on("close", (info) => this.onSocketLost(info)),
    ];
    this.bindControls(closeLabel);
    // Closing the tab (or leaving the page) hangs up at once: the other person must not
    // wait out the reconnect grace for someone who left on purpose.
    this.onPageHide = () => {
      if (this.ended) return;
      const type =
        this.state === "ringing"
          ? this.role === "seller"
            ? "cancel_call"
            : "decline_call"
          : "hang_up";
      this.socket.send({ type, call_id: this.callId });
      // The browser may drop the socket before that frame leaves; a keepalive request
      // outlives the page. Whichever arrives first ends the call.
      fetch(`/api/v1/calls/${encodeURIComponent(this.callId)}/leave`, {
        method: "POST",
        keepalive: true,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ message: type }),
      }).catch(() => {});
    };
    window.addEventListener("pagehide", this.onPageHide);
    // For diagnostics (and the browser tests): the live session and its peer connection.
    window.inboxcall = { ...(window.inboxcall ?? {}), call: this };
  }

  bindControls(closeLabel) {
    const { el } = this;
    el.mic.onclick = () => this.toggle("audio");
    el.camera.onclick = () => this.toggle("video");
    el.hangUp.onclick = () => this.hangUp();
    const report = () =>
      openReport(this.callId, {
        onSent: (words) => {
          this.say(words);
          el.reportStatus.textContent = words;
        },
      });
    el.report.onclick = report;
    el.endReport.onclick = report;
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
    fillIcons(this.screen);
    for (const avatar of [el.ringingInitials, el.theirInitials, el.endedInitials]) {
      avatar.textContent = initials(this.peer.name);
    }
    el.selfInitials.textContent = initials(this.me.name);
    el.theirName.textContent = this.peer.name;
    el.ringingName.textContent = `Calling ${this.peer.name}…`;
    el.offlineNote.hidden = true;
    el.reportStatus.textContent = "";
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
    this.clockTimer = setInterval(() => this.tick(), 1_000);
    this.tick();
    await this.negotiate();
  }

  /** The buyer was offline: the server left a join link in the thread instead of a ring. */
  showOffline() {
    if (this.ended || this.state !== "ringing") return;
    this.el.offlineNote.hidden = false;
    this.el.offlineNote.textContent =
      `${this.peer.name} is offline, so a "Join call" link was left in your conversation. ` +
      "If they come back while it rings, they can join.";
    this.setState(this.state);
  }

  setState(state) {
    if (this.ended) return;
    this.state = state;
    const { el } = this;
    this.screen.dataset.state = state;
    this.screen.classList.toggle("peer-lost", this.peerLost);
    let status = STATUS_WORDS[state];
    let detail = "";
    if (this.reconnecting) {
      status = STATUS_WORDS.reconnecting;
      detail = "Your connection dropped; getting it back. The call continues if it returns soon.";
    } else if (this.peerLost) {
      status = STATUS_WORDS.reconnecting;
      detail = `${this.peer.name}'s connection dropped; reconnecting. The call waits for them${this.graceWords()}.`;
    } else if (state === "ringing") {
      detail = el.offlineNote.hidden
        ? `Waiting for ${this.peer.name} to answer.`
        : `${this.peer.name} is offline; a join link was left for them.`;
    } else if (state === "connecting") {
      detail = "Starting video and sound.";
    } else if (this.endingAt !== null) {
      detail = this.endingWords();
    } else if (this.videoPausedFor !== null) {
      detail = videoPausedWords(this.videoPausedFor, this.me.id, this.peer.name);
    }
    el.status.textContent = status;
    el.statusDetail.textContent = detail;
    this.coverTheirTile();
    const chatOpen = state === "connecting" || state === "active";
    el.chatText.disabled = !chatOpen;
    el.chatSend.disabled = !chatOpen;
    el.chatHint.hidden = chatOpen;
    if (state === "active") this.everActive = true;
    this.updateCounting();
  }

  graceWords() {
    if (this.peerLostUntil === null) return "";
    const left = Math.max(0, Math.ceil((this.peerLostUntil - performance.now()) / 1000));
    return ` (${formatDuration(left)} left)`;
  }

  /** Their tile: their video, or their initials with why there is no picture. */
  coverTheirTile() {
    const { el } = this;
    let words = null;
    if (this.state === "connecting") words = `Connecting to ${this.peer.name}…`;
    else if (this.peerLost) words = `${this.peer.name}'s connection dropped. Waiting for them to come back…`;
    else if (this.videoPausedFor === this.me.id) words = videoPausedWords(this.me.id, this.me.id, this.peer.name);
    else if (!this.peerVideo) words = `${this.peer.name} turned their camera off. Voice only.`;
    el.theirCover.hidden = words === null;
    el.theirCoverText.textContent = words ?? "";
    el.theirSide.classList.toggle("camera-off", words !== null);
  }

  /** Start or stop counting connected time (active, and nobody lost). */
  updateCounting() {
    const counting = this.state === "active" && !this.reconnecting && !this.peerLost && !this.ended;
    const now = performance.now();
    if (counting && this.countingSince === null) this.countingSince = now;
    if (!counting && this.countingSince !== null) {
      this.connectedMs += now - this.countingSince;
      this.countingSince = null;
    }
  }

  get connectedSeconds() {
    const running = this.countingSince === null ? 0 : performance.now() - this.countingSince;
    return (this.connectedMs + running) / 1000;
  }

  tick() {
    const { el } = this;
    el.timer.textContent = formatDuration(this.connectedSeconds);
    if (this.state === "ringing" && this.ringDeadline !== null) {
      const left = Math.max(0, Math.ceil((this.ringDeadline - performance.now()) / 1000));
      el.ringCountdown.textContent = `Ringing, ${formatDuration(left)} left`;
    } else {
      el.ringCountdown.textContent = "";
    }
    if (this.peerLost) el.statusDetail.textContent = `${this.peer.name}'s connection dropped; reconnecting. The call waits for them${this.graceWords()}.`;
    else if (this.endingAt !== null && !this.reconnecting) el.statusDetail.textContent = this.endingWords();
  }

  /** `video_paused`: video to one of us stopped (or resumed) for a weak connection. */
  onVideoPaused(message) {
    if (this.ended) return;
    const weakId = message.paused ? message.user_id : null;
    if (weakId === this.videoPausedFor) return;
    this.videoPausedFor = weakId;
    this.screen.classList.toggle("video-paused", weakId !== null);
    this.setState(this.state);
    this.say(weakId === null ? "Video is back." : videoPausedWords(weakId, this.me.id, this.peer.name));
  }

  /** `call_ending_soon`: the call reaches its maximum length in `seconds_left`. */
  onEndingSoon(message) {
    if (this.ended) return;
    this.endingAt = performance.now() + message.seconds_left * 1000;
    this.maxMinutes = message.max_minutes;
    this.setState(this.state);
    this.say(this.endingWords());
  }

  endingWords() {
    return endingSoonWords((this.endingAt - performance.now()) / 1000, this.maxMinutes);
  }

  /** `peer_connection_state`: the other person's socket or media dropped, or is back. */
  onPeerConnection(message) {
    if (this.ended || message.user_id !== this.peer.id) return;
    const lost = message.state === "reconnecting";
    if (lost === this.peerLost) return;
    this.peerLost = lost;
    const grace = this.socket.hello?.limits?.reconnect_grace_s ?? null;
    this.peerLostUntil = lost && grace !== null ? performance.now() + grace * 1000 : null;
    if (lost) this.showPeerQuality("unknown");
    this.setState(this.state);
    this.say(lost ? `${this.peer.name}'s connection dropped. Reconnecting; the call waits for them.` : `${this.peer.name} is back.`);
  }

  // --- media leg --------------------------------------------------------------------

  /** TURN servers with credentials minted for this person, fresh for every new leg. */
  async fetchIceServers() {
    try {
      const answer = await api("GET", "/api/v1/ice-servers");
      return answer.ice_servers ?? [];
    } catch {
      // Without them a direct path may still work; if none does, noPathWarning() says so.
      return [];
    }
  }

  async negotiate() {
    const generation = ++this.generation;
    const iceServers = await this.fetchIceServers();
    if (generation !== this.generation || this.ended) return;
    const previous = this.pc;
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    this.offerSent = false;
    this.localCandidates = 0;
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
    pc.onicecandidate = (event) => {
      if (event.candidate?.candidate) this.localCandidates += 1;
      // Gathering finished without a single way out: nothing can ever connect.
      else if (!event.candidate && this.localCandidates === 0) this.noPathWarning(generation, iceServers);
      this.sendCandidate(generation, event.candidate);
    };
    pc.onconnectionstatechange = () => this.onConnectionState(pc, generation);
    previous?.close();
    this.previousSample = null;
    this.legConnectedAt = null;

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

  /** The browser found no network path at all (UDP blocked or forbidden, no relay). */
  noPathWarning(generation, iceServers) {
    if (generation !== this.generation || this.ended) return;
    const words = iceServers.length
      ? "The call cannot connect: your network or browser blocks direct connections, and the relay server could not be reached. Try another network."
      : "The call cannot connect: your network or browser blocks direct connections, and this service has no relay (TURN) server to get around that. Try another network, or ask the site's operator to set up a relay.";
    this.noPath = true;
    this.el.mediaWarning.textContent = words;
    this.el.mediaWarning.hidden = false;
    this.say(words);
  }

  sendCandidate(generation, candidate) {
    if (generation !== this.generation || this.ended) return;
    // The server refuses mDNS (.local) candidates (DESIGN.md section 8, ICE scope); it
    // learns this browser's address from its connectivity checks instead.
    if (candidate?.candidate && / [^ ]+\.local /i.test(candidate.candidate)) return;
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
      this.legConnectedAt ??= performance.now();
      if (this.noPath) {
        this.noPath = false;
        this.el.mediaWarning.hidden = true;
      }
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
    this.qualitySent = null; // the other side hears our level again
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
    // aria-pressed: the "off" state is engaged (muted, camera off); the name says the action.
    const set = (button, name, label, off, usable) => {
      button.setAttribute("aria-pressed", String(off));
      button.setAttribute("aria-disabled", String(!usable));
      button.querySelector(".control-label").textContent = label;
      button.querySelector("[data-icon]").replaceChildren(icon(name, { off }));
      button.classList.toggle("off", off);
    };
    set(el.mic, "mic", this.audioOn ? "Mute microphone" : "Unmute microphone", !this.audioOn, hasAudio);
    set(el.camera, "camera", this.videoOn ? "Turn camera off" : "Turn camera on", !this.videoOn, hasVideo);
    if (!hasVideo) el.camera.title = "No camera is in use in this call.";
    el.selfCameraOff.hidden = this.videoOn;
    el.selfMuted.hidden = this.audioOn;
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
    el.peerMuted.hidden = message.audio;
    el.peerMuted.replaceChildren(icon("mic", { off: true, size: 16 }), "Muted");
    el.peerMuted.setAttribute("aria-label", `${this.peer.name} muted their microphone.`);
    this.coverTheirTile();
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
    if (pc !== this.pc) return;
    let pair = null;
    let lost = 0;
    let received = 0;
    let jitter = null;
    let remoteRtt = null;
    let remoteLoss = null;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
      if (s.type === "inbound-rtp") {
        lost += Math.max(0, s.packetsLost ?? 0);
        received += s.packetsReceived ?? 0;
        if (typeof s.jitter === "number") jitter = Math.max(jitter ?? 0, s.jitter);
      }
      if (s.type === "remote-inbound-rtp") {
        if (typeof s.roundTripTime === "number") remoteRtt = s.roundTripTime;
        if (typeof s.fractionLost === "number") remoteLoss = Math.max(remoteLoss ?? 0, s.fractionLost);
      }
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === "candidate-pair" && s.state === "succeeded" && s.nominated) pair = s;
      });
    }
    const rtt = typeof pair?.currentRoundTripTime === "number" ? pair.currentRoundTripTime : remoteRtt;
    const availableBitrate =
      typeof pair?.availableOutgoingBitrate === "number" ? pair.availableOutgoingBitrate : null;
    const now = performance.now();
    const before = this.previousSample;
    this.previousSample = { now, lost, received };
    if (!before) return;
    const newLost = lost - before.lost;
    const newReceived = received - before.received;
    const inLoss = newLost + newReceived > 0 ? Math.max(0, newLost) / (newLost + newReceived) : 0;
    // Loss both ways: what we receive, and what the server says it lost of ours.
    const loss = Math.max(inLoss, remoteLoss ?? 0);
    const warming = this.legConnectedAt === null || now - this.legConnectedAt < QUALITY_WARMUP_MS;
    const reading = warming
      ? "unknown"
      : classifyQuality({ rtt, loss, jitter, availableBitrate, sendingVideo: this.videoOn });
    ({ shown: this.quality, worseStreak: this.qualityWorseStreak } = settleQuality(
      this.quality,
      reading,
      this.qualityWorseStreak,
    ));
    const details = [
      rtt === null ? null : `round trip ${Math.round(rtt * 1000)} ms`,
      `packet loss ${(loss * 100).toFixed(1)} %`,
      jitter === null ? null : `jitter ${Math.round(jitter * 1000)} ms`,
      availableBitrate === null ? null : `${(availableBitrate / 1_000_000).toFixed(2)} Mbit/s available to send`,
    ]
      .filter(Boolean)
      .join(", ");
    this.showQuality(this.el.quality, this.quality, "Your connection");
    this.el.qualityDetails.textContent = details || "Measuring…";
    if (this.quality !== "unknown" && this.quality !== this.qualitySent) {
      this.qualitySent = this.quality;
      this.socket.send({ type: "connection_quality", call_id: this.callId, level: this.quality });
    }
  }

  /** Bars and words of one side's link. */
  showQuality(element, level, whose) {
    element.dataset.quality = level;
    element.querySelector("[data-quality-level]").textContent = QUALITY_WORDS[level];
    element.querySelector("[data-quality-whose]").textContent = `${whose}:`;
  }

  showPeerQuality(level) {
    this.el.peerQuality.hidden = level === "unknown";
    this.showQuality(this.el.peerQuality, level, `${this.peer.name}'s connection`);
  }

  /** `peer_connection_quality`: the other person's own bars, as their page measured them. */
  onPeerQuality(message) {
    if (this.ended || message.user_id !== this.peer.id || this.peerLost) return;
    this.showPeerQuality(message.level);
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
    this.updateCounting();
    const hadConnected = this.everActive;
    const localSeconds = this.connectedSeconds;
    this.state = "ended";
    this.ended = true;
    this.countingSince = null;
    this.screen.dataset.state = "ended";
    this.screen.classList.remove("peer-lost");
    clearInterval(this.statsTimer);
    clearInterval(this.clockTimer);
    clearTimeout(this.disconnectTimer);
    for (const off of this.unsubscribe) off();
    window.removeEventListener("pagehide", this.onPageHide);
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
    const showDuration = (seconds) => {
      el.endDuration.textContent = `The call lasted ${formatDuration(seconds)}.`;
      el.endDuration.hidden = false;
    };
    el.endDuration.hidden = true;
    if (hadConnected) showDuration(localSeconds);
    // The stored duration is the one the thread and the review queue show: use it.
    api("GET", `/api/v1/calls/${encodeURIComponent(this.callId)}`)
      .then((call) => {
        if (call.duration_seconds !== null) showDuration(call.duration_seconds);
      })
      .catch(() => {
        // The local count stays; it follows the same rule.
      });
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
