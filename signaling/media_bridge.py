"""The media bridge: forwards one call's encoded audio and video between its two legs.

An SFU-style forwarder on aiortc. The server holds one ``RTCPeerConnection`` per
participant (a "leg"); each leg's encoded frames are forwarded to the other leg and
handed to an optional ``EncodedFrameSink`` (the recorder). Nothing is ever decoded or
encoded: see ``signaling/aiortc_patches.py`` for how the receive path is tapped and the
send path packetizes ``av.Packet``s.

Public API (all methods run on the event loop that owns the bridge)::

    bridge = CallMediaBridge(call_id, sink=recorder, on_leg_state=lifecycle.on_leg_state,
                             settings=BridgeSettings())
    answer_sdp = await bridge.accept_offer(participant_id, offer_sdp)
    await bridge.add_remote_candidate(participant_id, "candidate:...", sdp_mid, sdp_mline_index)
    bridge.set_media_enabled(participant_id, "video", False)
    bridge.attach_sink(recorder)  # record from now on (the call became active)
    bridge.stats()  # -> BridgeStats
    await bridge.aclose()  # idempotent

``accept_offer`` takes a browser's offer and returns the server's answer, which carries
the server's ICE candidates (gathering completes before it returns, so the server never
trickles). The offer must have exactly one audio and one video m-line (a browser without
camera uses a recvonly transceiver); both are answered sendrecv, so the other side's media
flows in as soon as it joins, without renegotiation. Codecs: Opus, and VP8 or, when the
first leg offers no VP8, H264 constrained baseline packetization-mode 1. The first leg to
connect decides the video codec; a later offer without it is refused with
``video_codec_mismatch``. A call has at most two participants (``call_full``).

A second ``accept_offer`` for the same participant:

* same ICE credentials on a live leg: renegotiation on the same peer connection;
* new ICE credentials (an ICE restart), or a leg that failed or closed, or any offer from a
  fresh browser peer connection: a fresh leg replaces the old one. aiortc 1.16 cannot
  restart ICE on an existing peer connection (``RTCIceTransport.start`` returns early
  once started), so an ICE restart is answered by a new server peer connection, with
  new DTLS, which browsers accept as an ICE and DTLS restart.

The other leg keeps running throughout; its video is held back until the new leg sends a
keyframe (one is requested), and the participant's RTP timestamps continue from where the
old leg stopped, so ``EncodedFrame.rtp_timestamp`` only grows for a participant.

``on_leg_state(participant_id, state)`` reports, for the participant's current leg only,
changes among ``connecting``, ``connected``, ``disconnected`` (connected, but nothing
received for ``BridgeSettings.disconnected_after`` seconds; back to ``connected`` when
packets flow again), ``failed`` (the bridge then closes that leg) and ``closed``. A leg
replaced by a fresh one reports nothing more. Callbacks run on the loop and must not block.

Bitrate (``signaling.media_bandwidth``): the receiving leg's network decides what the
sender sends. The REMB a participant's browser sends about the video the bridge forwards
to it (Chromium sends REMB: aiortc negotiates ``goog-remb`` and abs-send-time, not
transport-cc) becomes its ``DownlinkVideoGate``'s estimate; the REMB the bridge sends to
the other participant's browser is ``min(aiortc's own receive estimate, that estimate,
the per-leg ceiling)`` (``aiortc_patches.cap_receive_estimate``). Keyframe requests
are forwarded as before, and NACKs are answered on each hop by whoever sent the packet:
aiortc's receiver asks the sending browser, aiortc's sender answers the receiving one
from its own history. When a receiver cannot carry video, its video is not forwarded
(audio goes on) and ``on_notice(receiver_id, "video_paused")`` is called; when a probe
shows it recovered, video resumes on a keyframe and ``on_notice(receiver_id,
"video_resumed")``. What each participant sends is recorded throughout, so the
recording needs nothing. Every leg is policed at the ceiling (advertised as ``b=AS`` /
``b=TIAS`` in the answer): frames over it are neither forwarded nor recorded, and a
leg that stays over it calls ``on_failure(participant_id, "bitrate_exceeded")``.

``set_media_enabled(participant_id, kind, enabled)`` is the participant's camera or
microphone switch as told by the signalling layer: while disabled, the participant's
frames of that kind are neither forwarded nor recorded; re-enabling video asks the
browser for a keyframe and resumes on it. The sink hears every change through
``on_media_state``.

The sink receives each frame a participant sends once (not once per consumer), whether or
not the other participant is connected, on the loop: it must only enqueue.

Errors are ``MediaBridgeError`` subclasses from ``signaling.media_errors``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from signaling import aiortc_patches, video_jitter_buffer
from signaling.call_state import FailureDetail
from signaling.media_bandwidth import (
    BandwidthSettings,
    DownlinkVideoGate,
    GateChange,
    GateState,
    LegBitratePolice,
    Notice,
    PoliceVerdict,
    ReceiverReportWindow,
    advertise_ceiling,
)
from signaling.media_codecs import (
    OPUS,
    OPUS_CLOCK_RATE,
    VIDEO_CLOCK_RATE,
    VIDEO_CODEC_PREFERENCE,
    OfferSummary,
    codec_preferences,
    is_keyframe,
    summarize_offer,
    validate_candidate_line,
)
from signaling.media_errors import (
    InvalidCandidateError,
    MediaBridgeError,
    MediaNegotiationError,
    UnknownParticipantError,
)
from signaling.media_forwarding import ForwardingTrack, KeyframeRequester, StreamCounters
from signaling.media_sink import EncodedFrame, EncodedFrameSink, MediaKind
from signaling.ws_limits import MessageRateLimiter

logger = logging.getLogger(__name__)

LegState = Literal["connecting", "connected", "disconnected", "failed", "closed"]
KINDS: Final[tuple[MediaKind, MediaKind]] = ("audio", "video")
MAX_PARTICIPANT_ID_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """Limits and timings of one bridge; the defaults suit browsers at up to 720p30."""

    max_sdp_bytes: int = 64 * 1024
    # Frames waiting for a sender: 1 s of audio (20 ms frames), 1 s of video at 30 fps.
    audio_queue_frames: int = 50
    video_queue_frames: int = 30
    keyframe_request_interval: float = 0.5
    # How long a video receive leg waits for a lost packet's retransmission before it
    # gives up on the frame and asks for a keyframe (signaling/video_jitter_buffer.py).
    video_packet_max_wait_s: float = video_jitter_buffer.DEFAULT_MAX_WAIT_S
    liveness_check_interval: float = 1.0
    disconnected_after: float = 4.0
    # STUN/TURN servers for the server's own candidates; none by default, as a media
    # node normally has a reachable address and Google's STUN (aiortc's default) must
    # not be contacted implicitly.
    ice_servers: tuple[RTCIceServer, ...] = ()
    # Offers per participant: every new ICE credential pair makes a server peer
    # connection (sockets, DTLS keys), so a burst, then one every 2 s. A page offers once
    # per (re)connection; 200 offers a second must not make 200 peer connections.
    offer_burst: int = 5
    offer_rate_per_second: float = 0.5
    bandwidth: BandwidthSettings = field(default_factory=BandwidthSettings)


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Counters for one participant and kind.

    ``frames_in``..``keyframe_requests_sent`` are about what the participant sends;
    ``frames_out``..``keyframe_requests_received`` about what the bridge sends to them.
    """

    participant_id: str
    kind: MediaKind
    frames_in: int
    keyframes_in: int
    frames_muted: int
    frames_in_awaiting_keyframe: int
    keyframe_requests_sent: int
    frames_out: int
    frames_out_dropped: int
    frames_out_awaiting_keyframe: int
    keyframe_requests_received: int
    frames_over_budget: int = 0
    """Frames the participant sent beyond the per-leg ceiling (neither forwarded nor
    recorded)."""
    frames_out_paused: int = 0
    """Video frames not forwarded to the participant while their video was paused."""
    receiver_estimate_bps: int | None = None
    """Video only: the last REMB the participant's browser sent about what it receives."""
    sender_cap_bps: int | None = None
    """Video only: the last REMB the bridge sent the participant's browser."""
    video_gate: str | None = None
    """Video only: ``flowing``, ``paused`` or ``probing`` (what the participant receives)."""
    packet_gaps_skipped: int = 0
    """Video only: lost packets given up on (each cost the frames up to a keyframe)."""


@dataclass(frozen=True, slots=True)
class BridgeStats:
    call_id: str
    video_codec: str | None
    streams: tuple[StreamStats, ...]
    keyframe_requests_forwarded: int
    frames_to_sink: int
    sink_errors: int
    legs_started: int

    def stream(self, participant_id: str, kind: MediaKind) -> StreamStats:
        for stream in self.streams:
            if stream.participant_id == participant_id and stream.kind == kind:
                return stream
        raise KeyError((participant_id, kind))


class _SourceStream:
    """What the bridge keeps about one participant's outgoing stream across legs."""

    def __init__(self, kind: MediaKind) -> None:
        self.kind = kind
        self.counters = StreamCounters()
        self.enabled = True
        self.awaiting_keyframe = kind == "video"
        self._generation = -1
        self._offset = 0
        self._last_out: int | None = None
        self._last_arrival = 0.0

    def rebase(self, generation: int, timestamp: int, clock_rate: int, arrival: float) -> int:
        """Continue the participant's timeline when a fresh leg restarts RTP time at 0."""
        if generation != self._generation:
            self._generation = generation
            if self._last_out is None:
                self._offset = -timestamp
            else:
                gap = max(1, round((arrival - self._last_arrival) * clock_rate))
                self._offset = self._last_out + gap - timestamp
        out = timestamp + self._offset
        self._last_out = out
        self._last_arrival = arrival
        return out


@dataclass(eq=False)
class _Leg:
    participant_id: str
    generation: int
    pc: RTCPeerConnection
    transceivers: dict[MediaKind, Any]
    outbound: dict[MediaKind, ForwardingTrack]
    offer: OfferSummary
    state: str = "new"
    replaced: bool = False
    rx_packets: int = -1
    rx_changed_at: float = 0.0
    video_bytes_sent: int = 0
    video_bytes_sent_at: float | None = None
    # The video bitrate sent on this leg over the last liveness interval.
    video_sent_bps: float | None = None
    video_reports: ReceiverReportWindow = field(default_factory=ReceiverReportWindow)
    candidates_trickled: int = 0
    estimator: aiortc_patches.CappedBitrateEstimator | None = None


@dataclass(eq=False)
class _Participant:
    participant_id: str
    streams: dict[MediaKind, _SourceStream]
    keyframes: KeyframeRequester
    offers: MessageRateLimiter
    gate: DownlinkVideoGate
    """What this participant receives: their browser's estimate decides the other's rate."""
    police: LegBitratePolice
    """What this participant sends, held to the per-leg ceiling."""
    leg: _Leg | None = None
    peer_legs: list[_Leg] = field(default_factory=list)
    bitrate_exceeded: bool = False


class CallMediaBridge:
    """Forwards one call's encoded media between its two legs; see the module docstring."""

    def __init__(
        self,
        call_id: str,
        *,
        sink: EncodedFrameSink | None = None,
        on_leg_state: Callable[[str, str], None] | None = None,
        on_notice: Callable[[str, Notice], None] | None = None,
        on_failure: Callable[[str, FailureDetail], None] | None = None,
        settings: BridgeSettings | None = None,
    ) -> None:
        aiortc_patches.install_global_patches()
        self.call_id = call_id
        self._sink = sink
        self._on_leg_state = on_leg_state
        self._on_notice = on_notice
        self._on_failure = on_failure
        self._settings = settings or BridgeSettings()
        self._participants: dict[str, _Participant] = {}
        self._video_codec: str | None = None
        self._generations = itertools.count(1)
        self._negotiation = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        self._keyframe_requests_forwarded = 0
        self._frames_to_sink = 0
        self._sink_errors = 0
        self._legs_started = 0

    # ----------------------------------------------------------------- public API

    @property
    def video_codec(self) -> str | None:
        """``"VP8"`` or ``"H264"`` once the first leg decided, else ``None``."""
        return self._video_codec

    async def accept_offer(self, participant_id: str, offer_sdp: str) -> str:
        """Answer a participant's offer; see the module docstring for repeat offers."""
        self._check_open()
        self._check_participant_id(participant_id)
        offer = summarize_offer(offer_sdp, max_bytes=self._settings.max_sdp_bytes)
        if OPUS not in offer.audio.codecs:
            raise MediaNegotiationError("no_supported_audio_codec", "the offer has no Opus")
        async with self._negotiation:
            self._check_open()
            if participant_id not in self._participants and len(self._participants) >= 2:
                raise MediaNegotiationError("call_full", "the call already has two participants")
            video_codec = self._choose_video_codec(offer)
            participant = self._participant(participant_id)
            if not participant.offers.allow(asyncio.get_running_loop().time()):
                raise MediaNegotiationError(
                    "rate_limited",
                    f"too many offers: {self._settings.offer_burst} at once, then one every "
                    f"{1 / self._settings.offer_rate_per_second:g} s; wait and offer again",
                    retryable=True,
                )
            leg = participant.leg
            try:
                if (
                    leg is not None
                    and leg.state not in ("failed", "closed")
                    and leg.pc.signalingState == "stable"
                    and (leg.offer.ice_ufrag, leg.offer.ice_pwd) == (offer.ice_ufrag, offer.ice_pwd)
                ):
                    answer = await self._renegotiate(leg, offer_sdp, offer)
                else:
                    answer = await self._start_leg(participant, offer_sdp, offer, video_codec)
            except MediaBridgeError:
                raise
            except Exception as exc:
                if self._closing is not None:
                    raise MediaNegotiationError("bridge_closed", "the call ended") from exc
                logger.warning(
                    "call=%s participant=%s negotiation failed: %s",
                    self.call_id,
                    participant_id,
                    type(exc).__name__,
                )
                raise MediaNegotiationError(
                    "negotiation_failed", f"the offer could not be applied ({type(exc).__name__})"
                ) from exc
            self._check_open()
            self._video_codec = video_codec
            self._ensure_watchdog()
            return answer

    async def add_remote_candidate(
        self,
        participant_id: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        """Add a candidate the browser trickled; ``""`` means end of candidates."""
        self._check_open()
        participant = self._participants.get(participant_id)
        leg = participant.leg if participant is not None else None
        if leg is None:
            raise UnknownParticipantError("no leg for this participant; send an offer first")
        if not isinstance(candidate, str):
            raise InvalidCandidateError("candidate must be a string")
        if sdp_mid is None and sdp_mline_index is None:
            raise InvalidCandidateError("candidate needs sdpMid or sdpMLineIndex")
        if sdp_mid is not None and (not isinstance(sdp_mid, str) or len(sdp_mid) > 32):
            raise InvalidCandidateError("bad sdpMid")
        if sdp_mline_index is not None and (
            not isinstance(sdp_mline_index, int) or not 0 <= sdp_mline_index < 2
        ):
            raise InvalidCandidateError("bad sdpMLineIndex")
        if candidate.strip() in ("", "a=end-of-candidates"):
            await leg.pc.addIceCandidate(None)
            return
        try:
            parsed = candidate_from_sdp(validate_candidate_line(candidate))
        except ValueError as exc:
            raise InvalidCandidateError(str(exc)) from None
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        if leg.candidates_trickled >= aiortc_patches.MAX_REMOTE_CANDIDATES:
            raise InvalidCandidateError(
                f"too many ICE candidates for this connection "
                f"(at most {aiortc_patches.MAX_REMOTE_CANDIDATES})"
            )
        leg.candidates_trickled += 1
        try:
            await leg.pc.addIceCandidate(parsed)
        except ValueError as exc:
            raise InvalidCandidateError(str(exc)) from None

    def set_media_enabled(self, participant_id: str, kind: MediaKind, enabled: bool) -> None:
        """The participant turned their camera (video) or microphone (audio) on or off."""
        if kind not in KINDS:
            raise ValueError(f"kind must be 'audio' or 'video', not {kind!r}")
        participant = self._participants.get(participant_id)
        if participant is None:
            if len(self._participants) >= 2:
                raise UnknownParticipantError("not a participant of this call")
            self._check_participant_id(participant_id)
            participant = self._participant(participant_id)
        stream = participant.streams[kind]
        if stream.enabled == enabled:
            return
        stream.enabled = enabled
        logger.info(
            "call=%s participant=%s %s %s",
            self.call_id,
            participant_id,
            kind,
            "enabled" if enabled else "disabled",
        )
        if self._sink is not None:
            try:
                self._sink.on_media_state(participant_id, kind, enabled, time.monotonic())
            except Exception:
                self._sink_errors += 1
                logger.exception("call=%s sink failed on media state", self.call_id)
        if enabled and kind == "video":
            stream.awaiting_keyframe = True
            participant.keyframes.request()

    def attach_sink(self, sink: EncodedFrameSink) -> None:
        """Hand every frame from now on to ``sink`` as well (recording starts when the call
        becomes active, not when the first leg connects).

        The sink first hears which cameras and microphones are already off, then both
        participants are asked for a keyframe so that the recording opens on one.
        """
        self._check_open()
        self._sink = sink
        now = time.monotonic()
        for participant in self._participants.values():
            for kind in KINDS:
                if not participant.streams[kind].enabled:
                    try:
                        sink.on_media_state(participant.participant_id, kind, False, now)
                    except Exception:
                        self._sink_errors += 1
                        logger.exception("call=%s sink failed on media state", self.call_id)
            participant.keyframes.request()

    def request_keyframe(self, participant_id: str) -> None:
        """Ask ``participant_id``'s browser for a keyframe (rate-limited); the recorder
        asks after it had to drop video."""
        participant = self._participants.get(participant_id)
        if participant is not None and self._closing is None:
            participant.keyframes.request()

    def stats(self) -> BridgeStats:
        streams = []
        for participant in self._participants.values():
            for kind in KINDS:
                c = participant.streams[kind].counters
                streams.append(
                    StreamStats(
                        participant_id=participant.participant_id,
                        kind=kind,
                        frames_in=c.frames_in,
                        keyframes_in=c.keyframes_in,
                        frames_muted=c.frames_muted,
                        frames_in_awaiting_keyframe=c.frames_in_awaiting_keyframe,
                        keyframe_requests_sent=c.keyframe_requests_sent,
                        frames_out=c.frames_out,
                        frames_out_dropped=c.frames_out_dropped,
                        frames_out_awaiting_keyframe=c.frames_out_awaiting_keyframe,
                        keyframe_requests_received=c.keyframe_requests_received,
                        frames_over_budget=c.frames_over_budget,
                        frames_out_paused=c.frames_out_paused,
                        packet_gaps_skipped=c.packet_gaps_skipped,
                        **self._bitrate_stats(participant, kind),
                    )
                )
        return BridgeStats(
            call_id=self.call_id,
            video_codec=self._video_codec,
            streams=tuple(streams),
            keyframe_requests_forwarded=self._keyframe_requests_forwarded,
            frames_to_sink=self._frames_to_sink,
            sink_errors=self._sink_errors,
            legs_started=self._legs_started,
        )

    @staticmethod
    def _bitrate_stats(participant: _Participant, kind: MediaKind) -> dict[str, Any]:
        if kind != "video":
            return {}
        estimator = participant.leg.estimator if participant.leg is not None else None
        return {
            "receiver_estimate_bps": participant.gate.estimate,
            "sender_cap_bps": estimator.reported if estimator is not None else None,
            "video_gate": participant.gate.state.value,
        }

    def leg_state(self, participant_id: str) -> str | None:
        """The current leg's state as last reported, or None when there is no leg."""
        participant = self._participants.get(participant_id)
        if participant is None or participant.leg is None:
            return None
        return participant.leg.state

    async def aclose(self) -> None:
        """Close both legs and cancel every task the bridge owns. Safe to call twice."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            if self._watchdog is not None:
                self._watchdog.cancel()
            for participant in self._participants.values():
                participant.keyframes.close()
            for participant in self._participants.values():
                if participant.leg is not None:
                    await self._close_leg(participant.leg)
            for task in list(self._tasks):
                task.cancel()
            tasks = [*self._tasks, *([self._watchdog] if self._watchdog else [])]
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.clear()
            logger.info("call=%s media bridge closed", self.call_id)
        finally:
            self._closing.set_result(None)

    # ------------------------------------------------------------ negotiation

    def _check_open(self) -> None:
        if self._closing is not None:
            raise MediaNegotiationError("bridge_closed", "the call's media bridge is closed")

    @staticmethod
    def _check_participant_id(participant_id: str) -> None:
        if (
            not isinstance(participant_id, str)
            or not participant_id
            or len(participant_id) > MAX_PARTICIPANT_ID_LENGTH
        ):
            raise MediaNegotiationError("invalid_participant", "bad participant id")

    def _choose_video_codec(self, offer: OfferSummary) -> str:
        if self._video_codec is not None:
            if self._video_codec not in offer.video.codecs:
                raise MediaNegotiationError(
                    "video_codec_mismatch",
                    f"this call's video is {self._video_codec}, which the offer does not include",
                )
            return self._video_codec
        for codec in VIDEO_CODEC_PREFERENCE:
            if codec in offer.video.codecs:
                return codec
        raise MediaNegotiationError(
            "no_supported_video_codec",
            "the offer has neither VP8 nor H264 constrained baseline (packetization-mode=1)",
        )

    def _participant(self, participant_id: str) -> _Participant:
        participant = self._participants.get(participant_id)
        if participant is None:
            participant = _Participant(
                participant_id=participant_id,
                streams={kind: _SourceStream(kind) for kind in KINDS},
                keyframes=KeyframeRequester(
                    asyncio.get_running_loop(),
                    min_interval=self._settings.keyframe_request_interval,
                    send=lambda: self._send_keyframe_request(participant_id),
                ),
                offers=MessageRateLimiter(
                    rate_per_second=self._settings.offer_rate_per_second,
                    burst=self._settings.offer_burst,
                ),
                gate=DownlinkVideoGate(self._settings.bandwidth),
                police=LegBitratePolice(self._settings.bandwidth),
            )
            self._participants[participant_id] = participant
        return participant

    def _peer_of(self, participant_id: str) -> _Participant | None:
        for other_id, participant in self._participants.items():
            if other_id != participant_id:
                return participant
        return None

    async def _renegotiate(self, leg: _Leg, offer_sdp: str, offer: OfferSummary) -> str:
        pc = leg.pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        leg.offer = offer
        logger.info(
            "call=%s participant=%s leg=%d renegotiated",
            self.call_id,
            leg.participant_id,
            leg.generation,
        )
        return self._answer_sdp(pc)

    def _answer_sdp(self, pc: RTCPeerConnection) -> str:
        return advertise_ceiling(
            str(pc.localDescription.sdp), self._settings.bandwidth.max_leg_bitrate_bps
        )

    async def _start_leg(
        self, participant: _Participant, offer_sdp: str, offer: OfferSummary, video_codec: str
    ) -> str:
        old = participant.leg
        if old is not None:
            # One leg per participant at a time: the old one goes before the new one
            # exists, so frames of the two never interleave.
            old.replaced = True
            participant.leg = None
            await self._close_leg(old)

        participant_id = participant.participant_id
        generation = next(self._generations)
        pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=list(self._settings.ice_servers),
                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            )
        )
        codecs: dict[MediaKind, tuple[str, int]] = {
            "audio": (OPUS, OPUS_CLOCK_RATE),
            "video": (video_codec, VIDEO_CLOCK_RATE),
        }
        transceivers: dict[MediaKind, Any] = {}
        outbound: dict[MediaKind, ForwardingTrack] = {}
        leg = _Leg(
            participant_id=participant_id,
            generation=generation,
            pc=pc,
            transceivers=transceivers,
            outbound=outbound,
            offer=offer,
        )
        try:
            for kind in KINDS:
                codec, clock_rate = codecs[kind]
                track = ForwardingTrack(
                    kind,
                    capacity=(
                        self._settings.audio_queue_frames
                        if kind == "audio"
                        else self._settings.video_queue_frames
                    ),
                    counters=participant.streams[kind].counters,
                    on_attach=self._consumer_attached_callback(participant_id, kind),
                    on_keyframe_needed=self._peer_keyframe_callback(participant_id),
                )
                transceiver = pc.addTransceiver(track, direction="sendrecv")
                transceiver.setCodecPreferences(codec_preferences(kind, codec))
                aiortc_patches.tap_receiver(
                    transceiver.receiver, self._source_frame_callback(leg, kind)
                )
                aiortc_patches.make_sender_passthrough(
                    transceiver.sender,
                    codec=codec,
                    clock_rate=clock_rate,
                    on_keyframe_request=self._keyframe_request_callback(participant_id, kind),
                    on_receiver_estimate=self._receiver_estimate_callback(participant_id),
                )
                if kind == "video":
                    leg.estimator = aiortc_patches.cap_receive_estimate(
                        transceiver.receiver, self._sender_cap_callback(participant_id)
                    )
                    aiortc_patches.observe_receiver_reports(
                        transceiver.sender, self._receiver_report_callback(participant_id, leg)
                    )
                    aiortc_patches.bound_video_wait(
                        transceiver.receiver,
                        self._packet_gap_callback(leg),
                        self._settings.video_packet_max_wait_s,
                    )
                transceivers[kind] = transceiver
                outbound[kind] = track
            pc.on("connectionstatechange", lambda: self._on_pc_state(leg))

            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            # aclose() may have run while we awaited: it could not see this leg yet, so
            # nobody else would ever close it.
            self._check_open()
        except BaseException:
            await self._close_leg(leg)
            raise

        participant.leg = leg
        self._legs_started += 1
        # The participant's next frames come from a new sender: start them on a keyframe.
        participant.streams["video"].awaiting_keyframe = True
        logger.info(
            "call=%s participant=%s leg=%d started (video %s%s)",
            self.call_id,
            participant_id,
            generation,
            video_codec,
            ", replacing a previous leg" if old is not None else "",
        )
        self._report_state(leg, "connecting")
        return self._answer_sdp(pc)

    async def _close_leg(self, leg: _Leg) -> None:
        for track in leg.outbound.values():
            track.stop()
        await leg.pc.close()

    # ------------------------------------------------------------- media path

    def _source_frame_callback(
        self, leg: _Leg, kind: MediaKind
    ) -> Callable[[str, int, bytes, int], None]:
        def on_frame(codec: str, clock_rate: int, data: bytes, timestamp: int) -> None:
            self._on_source_frame(
                leg, kind, codec=codec, clock_rate=clock_rate, data=data, timestamp=timestamp
            )

        return on_frame

    def _on_source_frame(
        self,
        leg: _Leg,
        kind: MediaKind,
        *,
        codec: str,
        clock_rate: int,
        data: bytes,
        timestamp: int,
    ) -> None:
        """One complete encoded frame from a participant (on the loop, in aiortc's RTP path)."""
        participant = self._participants[leg.participant_id]
        if participant.leg is not leg:
            return
        stream = participant.streams[kind]
        counters = stream.counters
        counters.frames_in += 1
        arrival = time.monotonic()
        verdict = participant.police.admit(len(data), arrival)
        if verdict is not PoliceVerdict.FORWARD:
            counters.frames_over_budget += 1
            if verdict is PoliceVerdict.END:
                self._bitrate_exceeded(participant)
            elif kind == "video":
                # A gap in video breaks decoding: resume (forwarding and recording) on a
                # keyframe, which the browser sends at its next, smaller budget.
                stream.awaiting_keyframe = True
                participant.keyframes.request()
            return
        keyframe = is_keyframe(codec, data)
        if keyframe:
            counters.keyframes_in += 1
            if kind == "video":
                participant.keyframes.keyframe_arrived()
        if not stream.enabled:
            counters.frames_muted += 1
            return
        if stream.awaiting_keyframe:
            if not keyframe:
                counters.frames_in_awaiting_keyframe += 1
                participant.keyframes.request()
                return
            stream.awaiting_keyframe = False

        rtp_timestamp = stream.rebase(leg.generation, timestamp, clock_rate, arrival)
        if self._sink is not None:
            try:
                self._sink.on_frame(
                    EncodedFrame(
                        participant_id=leg.participant_id,
                        kind=kind,
                        codec=codec,
                        data=data,
                        rtp_timestamp=rtp_timestamp,
                        clock_rate=clock_rate,
                        keyframe=keyframe,
                        arrival=arrival,
                    )
                )
                self._frames_to_sink += 1
            except Exception:
                self._sink_errors += 1
                if self._sink_errors == 1 or self._sink_errors % 1000 == 0:
                    logger.exception(
                        "call=%s sink failed on a frame (%d failures)",
                        self.call_id,
                        self._sink_errors,
                    )
        peer = self._peer_of(leg.participant_id)
        if peer is not None and peer.leg is not None:
            if kind == "video" and not peer.gate.forwarding:
                peer.streams["video"].counters.frames_out_paused += 1
                return
            peer.leg.outbound[kind].push(data, rtp_timestamp, clock_rate, keyframe)

    # --------------------------------------------------------------- bitrate

    def _sender_cap_callback(self, sender_id: str) -> Callable[[], int | None]:
        """What ``sender_id``'s browser may send (read by its video receiver per packet)."""
        ceiling = self._settings.bandwidth.max_leg_bitrate_bps

        def cap() -> int | None:
            peer = self._peer_of(sender_id)
            return ceiling if peer is None else peer.gate.sender_cap

        return cap

    def _receiver_estimate_callback(self, receiver_id: str) -> Callable[[int], None]:
        def on_estimate(bitrate: int) -> None:
            participant = self._participants.get(receiver_id)
            if participant is None or self._closing is not None:
                return
            change = participant.gate.on_estimate(bitrate, time.monotonic())
            self._apply_gate(participant, change)

        return on_estimate

    def _receiver_report_callback(
        self, receiver_id: str, leg: _Leg
    ) -> aiortc_patches.OnReceiverReport:
        """Each receiver report ``receiver_id``'s browser sends about the video on ``leg``,
        folded into about one a second for the gate."""

        def on_report(packets_lost: int, highest_sequence: int, round_trip_s: float | None) -> None:
            participant = self._participants.get(receiver_id)
            if participant is None or participant.leg is not leg or self._closing is not None:
                return
            now = time.monotonic()
            folded = leg.video_reports.add(now, packets_lost, highest_sequence, round_trip_s)
            if folded is not None:
                loss, round_trip = folded
                change = participant.gate.on_loss(loss, now, leg.video_sent_bps, round_trip)
                self._apply_gate(participant, change)

        return on_report

    def _apply_gate(self, receiver: _Participant, change: GateChange | None) -> None:
        if change is None:
            return
        logger.info(
            "call=%s participant=%s video in %s (%s, estimate %s bps)",
            self.call_id,
            receiver.participant_id,
            change.state.value,
            change.reason,
            receiver.gate.estimate,
        )
        if change.state is not GateState.FLOWING and receiver.leg is not None:
            # Paused: nothing queued is worth sending late. Probing: start on a keyframe.
            receiver.leg.outbound["video"].hold_until_keyframe()
        if change.state is GateState.PROBING:
            sender = self._peer_of(receiver.participant_id)
            if sender is not None:
                sender.keyframes.request()
        if change.notice is not None and self._on_notice is not None:
            try:
                self._on_notice(receiver.participant_id, change.notice)
            except Exception:
                logger.exception("call=%s on_notice callback failed", self.call_id)

    def _bitrate_exceeded(self, participant: _Participant) -> None:
        if participant.bitrate_exceeded:
            return
        participant.bitrate_exceeded = True
        logger.warning(
            "call=%s participant=%s kept sending above the %d bps ceiling; ending the call",
            self.call_id,
            participant.participant_id,
            self._settings.bandwidth.max_leg_bitrate_bps,
        )
        if self._on_failure is not None:
            try:
                self._on_failure(participant.participant_id, FailureDetail.BITRATE_EXCEEDED)
            except Exception:
                logger.exception("call=%s on_failure callback failed", self.call_id)

    def _consumer_attached_callback(self, consumer_id: str, kind: MediaKind) -> Callable[[], None]:
        def on_attach() -> None:
            if kind == "video":
                peer = self._peer_of(consumer_id)
                if peer is not None:
                    peer.keyframes.request()

        return on_attach

    def _packet_gap_callback(self, leg: _Leg) -> Callable[[], None]:
        """The leg's video receiver gave up on a lost packet: the frames after it may
        not decode, so forwarding and recording resume on a keyframe."""

        def on_gap() -> None:
            participant = self._participants[leg.participant_id]
            if participant.leg is not leg:
                return
            stream = participant.streams["video"]
            stream.counters.packet_gaps_skipped += 1
            stream.awaiting_keyframe = True
            participant.keyframes.request()

        return on_gap

    def _peer_keyframe_callback(self, consumer_id: str) -> Callable[[], None]:
        def on_keyframe_needed() -> None:
            peer = self._peer_of(consumer_id)
            if peer is not None:
                peer.keyframes.request()

        return on_keyframe_needed

    def _keyframe_request_callback(self, consumer_id: str, kind: MediaKind) -> Callable[[], None]:
        """PLI or FIR from ``consumer_id`` about the stream we send them."""

        def on_keyframe_request() -> None:
            participant = self._participants.get(consumer_id)
            if participant is None or kind != "video":
                return
            participant.streams[kind].counters.keyframe_requests_received += 1
            peer = self._peer_of(consumer_id)
            if peer is not None:
                self._keyframe_requests_forwarded += 1
                peer.keyframes.request()

        return on_keyframe_request

    def _send_keyframe_request(self, participant_id: str) -> bool:
        """Send one PLI to ``participant_id``'s current leg; False when not possible yet."""
        participant = self._participants.get(participant_id)
        if self._closing is not None or participant is None:
            return False
        leg = participant.leg
        if leg is None or leg.state not in ("connected", "disconnected"):
            return False
        ssrc = leg.offer.video.primary_ssrc
        if ssrc is None:
            receiver = leg.transceivers["video"].receiver
            # getSynchronizationSources is public: SSRCs heard in the last 10 s.
            sources = sorted(
                receiver.getSynchronizationSources(), key=lambda s: s.timestamp, reverse=True
            )
            heard = [s.source for s in sources if s.source not in leg.offer.video.rtx_ssrcs]
            if not heard:
                return False
            ssrc = heard[0]
        participant.streams["video"].counters.keyframe_requests_sent += 1
        self._spawn(
            aiortc_patches.send_picture_loss_indication(leg.transceivers["video"].receiver, ssrc),
            name=f"pli-{self.call_id}-{participant_id}",
        )
        return True

    # ------------------------------------------------------------ leg states

    def _on_pc_state(self, leg: _Leg) -> None:
        state = leg.pc.connectionState
        if state in ("connecting", "connected", "failed", "closed"):
            if state == "connected":
                leg.rx_changed_at = asyncio.get_running_loop().time()
            self._report_state(leg, state)
        if state == "closed":
            for track in leg.outbound.values():
                track.stop()
        if state == "failed" and self._closing is None and not leg.replaced:
            self._spawn(leg.pc.close(), name=f"close-failed-leg-{self.call_id}")

    def _report_state(self, leg: _Leg, state: str) -> None:
        if leg.replaced or state == leg.state:
            return
        leg.state = state
        logger.info(
            "call=%s participant=%s leg=%d %s",
            self.call_id,
            leg.participant_id,
            leg.generation,
            state,
        )
        if self._on_leg_state is not None:
            try:
                self._on_leg_state(leg.participant_id, state)
            except Exception:
                logger.exception("call=%s on_leg_state callback failed", self.call_id)

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None and self._closing is None:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch_liveness(), name=f"media-liveness-{self.call_id}"
            )

    async def _watch_liveness(self) -> None:
        """Report ``disconnected`` when a connected leg goes silent (aiortc never does).

        Browsers send RTCP at least every few seconds even with camera and microphone
        off, so silence means the network or the browser went away; aiortc itself only
        notices after ICE consent expires, about 30 s later.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._settings.liveness_check_interval)
            for participant in list(self._participants.values()):
                self._apply_gate(participant, participant.gate.tick(time.monotonic()))
            for participant in list(self._participants.values()):
                leg = participant.leg
                if leg is None or leg.state not in ("connected", "disconnected"):
                    continue
                report = await leg.pc.getStats()
                leg.video_sent_bps = _video_sent_bitrate(leg, report.values(), loop.time())
                received = sum(
                    int(getattr(s, "packetsReceived", 0))
                    for s in report.values()
                    if getattr(s, "type", None) == "transport"
                )
                now = loop.time()
                if received != leg.rx_packets:
                    leg.rx_packets = received
                    leg.rx_changed_at = now
                    if leg.state == "disconnected" and leg.pc.connectionState == "connected":
                        self._report_state(leg, "connected")
                elif (
                    leg.state == "connected"
                    and now - leg.rx_changed_at >= self._settings.disconnected_after
                ):
                    self._report_state(leg, "disconnected")

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "call=%s task %s failed: %r", self.call_id, task.get_name(), task.exception()
            )


def _video_sent_bitrate(leg: _Leg, stats: Iterable[Any], now: float) -> float | None:
    """The video bitrate the bridge sent on ``leg`` since the last call (None: first)."""
    sent = sum(
        int(getattr(entry, "bytesSent", 0))
        for entry in stats
        if getattr(entry, "type", None) == "outbound-rtp" and entry.kind == "video"
    )
    before, before_at = leg.video_bytes_sent, leg.video_bytes_sent_at
    leg.video_bytes_sent, leg.video_bytes_sent_at = sent, now
    if before_at is None or now <= before_at or sent < before:
        return None
    return (sent - before) * 8 / (now - before_at)


__all__ = [
    "BridgeSettings",
    "BridgeStats",
    "CallMediaBridge",
    "InvalidCandidateError",
    "MediaBridgeError",
    "MediaNegotiationError",
    "StreamStats",
    "UnknownParticipantError",
]
