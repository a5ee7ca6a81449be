"""Bitrate rules of the media bridge, pure: what a receiver can take, and what a leg may send.

Nothing here does I/O or reads a clock: the bridge feeds observations with the loop's
monotonic time (seconds) and acts on the decisions it gets back.

``DownlinkVideoGate`` (one per receiving participant) decides, from what that
participant's browser reports about the video the bridge forwards to it (REMB: its
bandwidth estimate; RTCP receiver reports: the share of packets lost), whether that
video is forwarded, and what the *sending* browser is told it may send:

* ``flowing``: video is forwarded; the sender's cap is the receiver's estimate. This is
  the SFU rule: the receiving leg's network decides what the sender sends. The estimate
  a browser sends in REMB is delay-based only: a path that drops what exceeds its rate
  without queueing it (a policer, coturn's ``max-bps``) leaves it high while most
  packets are lost. So the cap is also held under a loss-based estimate, as the sending
  side of Google congestion control does (draft-ietf-rmcat-gcc, section 6): on each
  loss report above ``LOSS_DECREASE_ABOVE`` it is multiplied by ``1 - loss / 2``, and
  held under ``LOSS_THROUGHPUT_SHARE`` of what got through (the video bitrate the
  bridge sent it, less the loss) so that it lands under the path in one step instead of
  converging on it from above, at most once per ``LOSS_DECREASE_INTERVAL_S``; below
  ``LOSS_INCREASE_BELOW`` it grows ``LOSS_INCREASE`` a report until it no longer binds.
  A path that queues instead of dropping (TCP to a TURN server, a deep router buffer)
  loses nothing and still leaves the estimate high, while the delay grows by seconds:
  a report whose round trip exceeds the lowest of the last ``BASE_ROUND_TRIP_WINDOW_S``
  by more than ``QUEUE_DELAY_LIMIT_S`` cuts the cap the same way, to
  ``QUEUE_DELAY_CUT`` of what was sent, unless the queue is draining (the round trip
  fell since the last report); the cap does not grow while a queue stands.
* ``paused``: for ``video_pause_after_s`` the estimate stayed below
  ``video_pause_below_bps`` *and* the receiver kept losing ``video_pause_loss`` or more
  of the packets: even video squeezed to the estimate does not get through. (A low
  estimate alone is not enough: a receiver's estimate climbs slowly, about 8 % a
  second, after any dip, so it is often stale while the video it caps arrives fine.)
  Its video is not forwarded, audio is untouched, and both people are told
  (``video_paused``). The sender's cap goes back to the ceiling: its video is still
  recorded, and nobody should record a postage stamp because the other person's link
  is weak.
* ``probing``: after a back-off (``video_probe_after_s``, growing on each failed try) the
  gate forwards video again from a keyframe with the sender capped at
  ``video_resume_above_bps``. A paused receiver reports nothing about video it does not
  get, so trying is the only way to learn that its link recovered. If it loses less
  than ``video_pause_loss`` throughout ``video_probe_s``, video is back
  (``video_resumed``); if it loses more, or reports nothing within ``PROBE_TIME_LIMIT``
  probe times, the gate pauses again without telling anyone anything new.

``LegBitratePolice`` (one per participant's incoming leg) enforces the per-leg ceiling on
what a participant sends: a token bucket at ``max_leg_bitrate_bps * police_tolerance``
with a second of burst (a keyframe fits). Frames beyond it are neither forwarded nor
recorded (video then waits for a keyframe, which the bridge requests); a leg over budget
for ``police_end_after_s`` in a row is ended (``bitrate_exceeded``). A browser never gets
there: the ceiling is advertised in the answer (``b=AS``/``b=TIAS``) and in every REMB.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

DEFAULT_MAX_LEG_BITRATE_BPS: Final = 2_500_000
# Below this a browser's VP8 is a slide show at 320x180 (Chromium's floor for a video
# stream is 30 kbps, for a useful one about 100 kbps); Opus audio (about 40 kbps with
# overhead) is not part of the video estimate and keeps flowing.
DEFAULT_VIDEO_PAUSE_BELOW_BPS: Final = 100_000
DEFAULT_VIDEO_RESUME_ABOVE_BPS: Final = 200_000
# A receiver losing a tenth of the video packets sees a frozen or broken picture.
DEFAULT_VIDEO_PAUSE_LOSS: Final = 0.10
# A probe that has not confirmed recovery within this many probe times failed.
PROBE_TIME_LIMIT: Final = 3
# A loss report older than this says nothing about now.
LOSS_REPORT_MAX_AGE_S: Final = 3.0
# The loss-based estimate (draft-ietf-rmcat-gcc section 6; the bridge reports loss about
# once a second): cut by half the loss above 10 %, +8 % a report below 2 %, hold between.
LOSS_DECREASE_ABOVE: Final = 0.10
LOSS_INCREASE_BELOW: Final = 0.02
LOSS_INCREASE: Final = 1.08
LOSS_THROUGHPUT_SHARE: Final = 0.9
# Cut at most this often: the next report or two still describe the loss from before the
# sender's encoder followed the last cut (libwebrtc waits 300 ms plus a round trip; our
# reports come about once a second).
LOSS_DECREASE_INTERVAL_S: Final = 2.0
# A standing queue this much longer than the path's own round trip: the sender is above
# what the path carries, whatever the loss says. Audio in the queue is that late too.
QUEUE_DELAY_LIMIT_S: Final = 0.25
QUEUE_DELAY_CUT: Final = 0.7
# A round trip this much shorter than the last one: the queue drains, no need to cut more.
QUEUE_DRAINING_S: Final = 0.02
BASE_ROUND_TRIP_WINDOW_S: Final = 60.0
# Chromium's own floor for a video stream.
LOSS_BASED_FLOOR_BPS: Final = 30_000


@dataclass(frozen=True, slots=True)
class BandwidthSettings:
    """Bitrate limits of one bridge (bits per second, seconds)."""

    max_leg_bitrate_bps: int = DEFAULT_MAX_LEG_BITRATE_BPS
    """The ceiling each leg may send: advertised in the answer and in every REMB, policed."""
    receiver_driven: bool = True
    """Cap each sender at its receiver's estimate and pause video a receiver cannot
    carry (False: aiortc's own receive estimate only, as before; for the benchmark)."""
    video_pause_below_bps: int = DEFAULT_VIDEO_PAUSE_BELOW_BPS
    video_pause_loss: float = DEFAULT_VIDEO_PAUSE_LOSS
    video_resume_above_bps: int = DEFAULT_VIDEO_RESUME_ABOVE_BPS
    video_pause_after_s: float = 3.0
    video_probe_after_s: tuple[float, ...] = (5.0, 10.0, 20.0, 30.0)
    video_probe_s: float = 4.0
    police_tolerance: float = 1.5
    police_burst_s: float = 1.0
    police_end_after_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_leg_bitrate_bps < 64_000:
            raise ValueError("the per-leg bitrate ceiling must be at least 64 kbps")
        if not 0 < self.video_pause_below_bps <= self.video_resume_above_bps:
            raise ValueError("need 0 < video_pause_below_bps <= video_resume_above_bps")
        if self.video_resume_above_bps > self.max_leg_bitrate_bps:
            raise ValueError("video_resume_above_bps cannot exceed the per-leg ceiling")
        if not 0 < self.video_pause_loss < 1:
            raise ValueError("video_pause_loss is a share of packets, between 0 and 1")
        if not self.video_probe_after_s or min(self.video_probe_after_s) <= 0:
            raise ValueError("video_probe_after_s needs positive back-off steps")
        if self.police_tolerance < 1 or self.police_burst_s <= 0 or self.police_end_after_s <= 0:
            raise ValueError("bad policing parameters")


def advertise_ceiling(sdp: str, bitrate_bps: int) -> str:
    """``sdp`` (an answer) with the ceiling as ``b=AS`` (kbit/s) and ``b=TIAS`` (bit/s)
    on its video section, where browsers read their video send limit.

    SDP orders a media section's lines ``m= i= c= b= ...``, so they go before the
    section's first other line; ``b=`` lines it had are replaced. aiortc writes no
    ``b=`` lines and ignores them in what it reads.
    """
    newline = "\r\n" if "\r\n" in sdp else "\n"
    out: list[str] = []
    section = ""
    pending = False
    for line in sdp.split(newline):
        if line.startswith("m="):
            section = line
            pending = line.startswith("m=video")
        elif section.startswith("m=video") and line.startswith("b="):
            continue
        elif pending and not line.startswith(("i=", "c=")):
            out += [f"b=AS:{max(1, bitrate_bps // 1000)}", f"b=TIAS:{bitrate_bps}"]
            pending = False
        out.append(line)
    return newline.join(out)


class GateState(StrEnum):
    FLOWING = "flowing"
    PAUSED = "paused"
    PROBING = "probing"


Notice = Literal["video_paused", "video_resumed"]


@dataclass(frozen=True, slots=True)
class GateChange:
    """The gate moved to ``state`` because of ``reason``; ``notice`` is what both people
    are told (None: nothing new for them, e.g. a probe that failed)."""

    state: GateState
    reason: str
    notice: Notice | None


class DownlinkVideoGate:
    """Whether one receiver gets video, and what its sender may send; see the module doc."""

    def __init__(self, settings: BandwidthSettings) -> None:
        self._settings = settings
        self.state = GateState.FLOWING
        self.estimate: int | None = None
        """The receiver's last reported estimate (bits per second)."""
        self.loss: float | None = None
        """The share of video packets the receiver last reported lost."""
        self.loss_based: float | None = None
        self._loss_cut_at: float | None = None
        self._round_trips: deque[tuple[float, float]] = deque()
        self._last_round_trip: float | None = None
        """The loss-based estimate (bits per second) while loss binds; None: it does not."""
        self._loss_at = 0.0
        self._struggling_since: float | None = None
        self._paused_at = 0.0
        self._failed_probes = 0
        self._probe_started = 0.0
        self._probe_clean_since: float | None = None

    @property
    def forwarding(self) -> bool:
        return self.state is not GateState.PAUSED

    @property
    def sender_cap(self) -> int:
        """What the other participant's browser may send its video at (bits per second)."""
        ceiling = self._settings.max_leg_bitrate_bps
        if not self._settings.receiver_driven:
            return ceiling
        match self.state:
            case GateState.PAUSED:
                return ceiling
            case GateState.PROBING:
                return min(ceiling, self._settings.video_resume_above_bps)
            case GateState.FLOWING:
                return self._flowing_cap()

    def _flowing_cap(self) -> int:
        cap = self._settings.max_leg_bitrate_bps
        if self.estimate is not None:
            cap = min(cap, self.estimate)
        if self.loss_based is not None:
            cap = min(cap, int(self.loss_based))
        return cap

    def on_estimate(self, bitrate: int, now: float) -> GateChange | None:
        """The receiver's browser reported ``bitrate`` (a REMB about the video it gets)."""
        self.estimate = bitrate
        return self._judge_flowing(now)

    def on_loss(
        self,
        fraction: float,
        now: float,
        sent_bps: float | None = None,
        round_trip_s: float | None = None,
    ) -> GateChange | None:
        """The receiver reported losing ``fraction`` of the video packets sent to it;
        ``sent_bps``: the video bitrate the bridge sent it over about that time;
        ``round_trip_s``: the report's round trip (RFC 3550), when known."""
        self.loss = fraction
        self._loss_at = now
        queued = self._queued(round_trip_s, now)
        if self.state is GateState.FLOWING and self._settings.receiver_driven:
            self._update_loss_based(fraction, sent_bps, now, queued)
        if round_trip_s is not None:
            self._last_round_trip = round_trip_s
        if self.state is GateState.PROBING and self._settings.receiver_driven:
            if fraction >= self._settings.video_pause_loss:
                self._failed_probes += 1
                return self._pause(now, "probe_lost_packets", None)
            if self._probe_clean_since is None:
                self._probe_clean_since = now
            if now - self._probe_clean_since >= self._settings.video_probe_s:
                self.state = GateState.FLOWING
                self._failed_probes = 0
                self._struggling_since = None
                # What the probe proved gets through, growing from there.
                self.loss_based = float(self._settings.video_resume_above_bps)
                return GateChange(GateState.FLOWING, "recovered", "video_resumed")
            return None
        return self._judge_flowing(now)

    def _queued(self, round_trip_s: float | None, now: float) -> float | None:
        """``round_trip_s`` if it says a queue stands on the path, else None (and
        remember it for the path's own round trip)."""
        if round_trip_s is None:
            return None
        trips = self._round_trips
        while trips and now - trips[0][0] > BASE_ROUND_TRIP_WINDOW_S:
            trips.popleft()
        while trips and trips[-1][1] >= round_trip_s:
            trips.pop()  # kept increasing: the first is the window's lowest
        trips.append((now, round_trip_s))
        return round_trip_s if round_trip_s - trips[0][1] > QUEUE_DELAY_LIMIT_S else None

    def _update_loss_based(
        self, fraction: float, sent_bps: float | None, now: float, queued: float | None
    ) -> None:
        """``queued``: the round trip of a report that says a queue stands, else None."""
        draining = (
            queued is not None
            and self._last_round_trip is not None
            and queued < self._last_round_trip - QUEUE_DRAINING_S
        )
        if fraction > LOSS_DECREASE_ABOVE or (queued is not None and not draining):
            if self._loss_cut_at is not None and now - self._loss_cut_at < LOSS_DECREASE_INTERVAL_S:
                return  # the sender has not followed the last cut yet
            self._loss_cut_at = now
            current = self.loss_based if self.loss_based is not None else self._flowing_cap()
            if fraction > LOSS_DECREASE_ABOVE:
                cut = current * (1 - fraction / 2)
                if sent_bps:
                    cut = min(cut, sent_bps * (1 - fraction) * LOSS_THROUGHPUT_SHARE)
            else:
                cut = current * QUEUE_DELAY_CUT
                if sent_bps:
                    cut = min(cut, sent_bps * QUEUE_DELAY_CUT)
            self.loss_based = max(LOSS_BASED_FLOOR_BPS, cut)
        elif fraction < LOSS_INCREASE_BELOW and queued is None and self.loss_based is not None:
            self.loss_based *= LOSS_INCREASE
            unbound = self._settings.max_leg_bitrate_bps
            if self.estimate is not None:
                unbound = min(unbound, self.estimate)
            if self.loss_based >= unbound:
                self.loss_based = None

    def _judge_flowing(self, now: float) -> GateChange | None:
        if self.state is not GateState.FLOWING or not self._settings.receiver_driven:
            return None
        struggling = (
            (self.estimate is not None or self.loss_based is not None)
            and self._flowing_cap() < self._settings.video_pause_below_bps
            and self.loss is not None
            and self.loss >= self._settings.video_pause_loss
            and now - self._loss_at <= LOSS_REPORT_MAX_AGE_S
        )
        if not struggling:
            self._struggling_since = None
            return None
        if self._struggling_since is None:
            self._struggling_since = now
        if now - self._struggling_since >= self._settings.video_pause_after_s:
            return self._pause(now, "weak_connection", "video_paused")
        return None

    def tick(self, now: float) -> GateChange | None:
        """Time passed (the bridge calls this about once a second)."""
        if self.state is GateState.PAUSED:
            steps = self._settings.video_probe_after_s
            wait = steps[min(self._failed_probes, len(steps) - 1)]
            if now - self._paused_at >= wait:
                self.state = GateState.PROBING
                self._probe_started = now
                self._probe_clean_since = None
                return GateChange(GateState.PROBING, "probe", None)
        elif (
            self.state is GateState.PROBING
            and now - self._probe_started >= PROBE_TIME_LIMIT * self._settings.video_probe_s
        ):
            # Nothing confirmed the recovery (no receiver report at all): back off.
            self._failed_probes += 1
            return self._pause(now, "probe_unconfirmed", None)
        return None

    def _pause(self, now: float, reason: str, notice: Notice | None) -> GateChange:
        self.state = GateState.PAUSED
        self.loss_based = None
        self._paused_at = now
        self._struggling_since = None
        return GateChange(GateState.PAUSED, reason, notice)


# Receiver reports are folded over at least this long: Chromium sends one with every NACK
# and REMB (several a second on a lossy link), each saying what was lost since the last.
REPORT_WINDOW_S: Final = 1.0


class ReceiverReportWindow:
    """Folds one receiver's RTCP reports about a stream into about one a second: the share
    of packets lost over the window (from the cumulative counts, RFC 3550 6.4.1) and the
    round trip of the report that closes it."""

    def __init__(self) -> None:
        self._start: tuple[float, int, int] | None = None  # (time, lost, highest sequence)

    def add(
        self, now: float, packets_lost: int, highest_sequence: int, round_trip_s: float | None
    ) -> tuple[float, float | None] | None:
        """The window's (loss, round trip) once it is ``REPORT_WINDOW_S`` long, else None."""
        if self._start is None or highest_sequence < self._start[2]:
            self._start = (now, packets_lost, highest_sequence)  # first, or a new stream
            return None
        started, lost_before, highest_before = self._start
        if now - started < REPORT_WINDOW_S:
            return None
        self._start = (now, packets_lost, highest_sequence)
        expected = highest_sequence - highest_before
        if expected <= 0:
            return 0.0, round_trip_s
        return min(1.0, max(0.0, (packets_lost - lost_before) / expected)), round_trip_s


class PoliceVerdict(StrEnum):
    FORWARD = "forward"
    DROP = "drop"
    """Over budget: neither forward nor record this frame."""
    END = "end"
    """Over budget for too long: end the call (``bitrate_exceeded``)."""


class LegBitratePolice:
    """A token bucket over everything one participant sends; see the module docstring."""

    def __init__(self, settings: BandwidthSettings) -> None:
        rate = settings.max_leg_bitrate_bps * settings.police_tolerance / 8
        self._rate = rate  # bytes per second
        self._burst = rate * settings.police_burst_s
        self._end_after = settings.police_end_after_s
        self._tokens = self._burst
        self._at: float | None = None
        self._over_since: float | None = None
        self._last_drop: float | None = None
        self.bytes_in = 0
        self.bytes_dropped = 0
        self.frames_dropped = 0

    def admit(self, size: int, now: float) -> PoliceVerdict:
        """May a frame of ``size`` bytes arriving at ``now`` go on?"""
        self.bytes_in += size
        if self._at is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if size <= self._tokens:
            self._tokens -= size
            # Over budget "in a row" means drops with no second of compliance between.
            if self._last_drop is not None and now - self._last_drop > 1.0:
                self._over_since = None
            return PoliceVerdict.FORWARD
        self.bytes_dropped += size
        self.frames_dropped += 1
        self._last_drop = now
        if self._over_since is None:
            self._over_since = now
        if now - self._over_since >= self._end_after:
            return PoliceVerdict.END
        return PoliceVerdict.DROP


__all__ = [
    "BandwidthSettings",
    "DownlinkVideoGate",
    "GateChange",
    "GateState",
    "LegBitratePolice",
    "Notice",
    "PoliceVerdict",
    "advertise_ceiling",
]
