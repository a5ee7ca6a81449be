"""The bridge's bitrate rules: the downlink video gate, the per-leg police, the SDP ceiling."""

from __future__ import annotations

import pytest

from signaling.media_bandwidth import (
    BandwidthSettings,
    DownlinkVideoGate,
    GateChange,
    GateState,
    LegBitratePolice,
    PoliceVerdict,
    ReceiverReportWindow,
    advertise_ceiling,
)

SETTINGS = BandwidthSettings(
    max_leg_bitrate_bps=1_000_000,
    video_pause_after_s=3.0,
    video_probe_after_s=(5.0, 10.0),
    video_probe_s=4.0,
)


def weak(gate: DownlinkVideoGate, start: float, seconds: int) -> list[GateChange]:
    """A receiver on a weak link: a low estimate and a fifth of the packets lost."""
    changes = []
    for t in range(seconds + 1):
        for change in (gate.on_estimate(60_000, start + t), gate.on_loss(0.2, start + t)):
            if change is not None:
                changes.append(change)
    return changes


def test_the_receivers_estimate_caps_the_sender_within_the_ceiling() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    assert gate.sender_cap == 1_000_000  # nothing heard yet: the ceiling
    assert gate.on_estimate(400_000, 0.0) is None
    assert gate.sender_cap == 400_000 and gate.forwarding
    gate.on_estimate(5_000_000, 1.0)
    assert gate.sender_cap == 1_000_000


def test_a_low_estimate_alone_does_not_pause_video() -> None:
    # A receiver's estimate climbs slowly after a dip: low but loss-free is not weak.
    gate = DownlinkVideoGate(SETTINGS)
    for t in range(20):
        assert gate.on_estimate(50_000, float(t)) is None
        assert gate.on_loss(0.0, float(t)) is None
    assert gate.state is GateState.FLOWING and gate.sender_cap == 50_000


def test_a_weak_link_pauses_video_after_a_while_and_tells_both() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    changes = weak(gate, 0.0, 3)
    assert changes == [GateChange(GateState.PAUSED, "weak_connection", "video_paused")]
    assert not gate.forwarding
    # Paused: the sender may send its best again (it is still recorded).
    assert gate.sender_cap == 1_000_000


def test_a_short_dip_does_not_pause() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    assert weak(gate, 0.0, 2) == []
    gate.on_loss(0.0, 2.5)  # the loss stopped: the stretch starts over
    assert weak(gate, 3.0, 2) == []
    assert gate.forwarding


def test_a_stale_loss_report_is_not_a_weak_link() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    gate.on_loss(0.5, 0.0)
    for t in range(4, 12):
        assert gate.on_estimate(50_000, float(t)) is None


def test_probe_after_the_back_off_and_resume_when_the_receiver_loses_nothing() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    weak(gate, 0.0, 3)
    assert gate.tick(7.9) is None
    assert gate.tick(8.0) == GateChange(GateState.PROBING, "probe", None)
    assert gate.forwarding and gate.sender_cap == SETTINGS.video_resume_above_bps
    # A stale low estimate during the probe decides nothing; loss does.
    assert gate.on_estimate(30_000, 8.5) is None
    assert gate.on_loss(0.0, 9.0) is None
    assert gate.on_loss(0.01, 12.0) is None
    assert gate.on_loss(0.0, 13.0) == GateChange(GateState.FLOWING, "recovered", "video_resumed")


def test_a_failed_probe_pauses_again_quietly_and_backs_off() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    weak(gate, 0.0, 3)
    gate.tick(8.0)
    assert gate.on_loss(0.3, 9.0) == GateChange(GateState.PAUSED, "probe_lost_packets", None)
    assert gate.tick(18.9) is None  # the second back-off step: 10 s
    assert gate.tick(19.0) is not None
    assert gate.on_loss(0.3, 20.0) is not None
    assert gate.tick(29.9) is None  # the last step repeats
    assert gate.tick(30.0) is not None


def test_a_probe_nobody_answers_fails() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    weak(gate, 0.0, 3)
    gate.tick(8.0)
    assert gate.tick(19.9) is None
    assert gate.tick(20.0) == GateChange(GateState.PAUSED, "probe_unconfirmed", None)


def test_switched_off_the_gate_never_pauses_nor_caps() -> None:
    gate = DownlinkVideoGate(BandwidthSettings(receiver_driven=False))
    assert weak(gate, 0.0, 10) == []
    assert gate.forwarding and gate.sender_cap == BandwidthSettings().max_leg_bitrate_bps


@pytest.mark.parametrize(
    "bad",
    [
        {"max_leg_bitrate_bps": 10_000},
        {"video_pause_below_bps": 300_000, "video_resume_above_bps": 200_000},
        {"video_resume_above_bps": 3_000_000},
        {"video_pause_loss": 0.0},
        {"video_probe_after_s": ()},
        {"police_tolerance": 0.5},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BandwidthSettings(**bad)  # type: ignore[arg-type]


def test_the_police_lets_a_leg_within_the_ceiling_through_with_keyframe_bursts() -> None:
    police = LegBitratePolice(BandwidthSettings(max_leg_bitrate_bps=1_000_000))
    # 1 Mbit/s at 30 fps with a 40 KB keyframe every second, for a minute.
    for frame in range(30 * 60):
        size = 40_000 if frame % 30 == 0 else 3_000
        assert police.admit(size, frame / 30) is PoliceVerdict.FORWARD
    assert police.frames_dropped == 0


def test_the_police_cuts_a_leg_far_above_then_ends_it() -> None:
    police = LegBitratePolice(
        BandwidthSettings(max_leg_bitrate_bps=1_000_000, police_end_after_s=10.0)
    )
    verdicts = [police.admit(60_000, frame / 30) for frame in range(30 * 12)]
    first_end = verdicts.index(PoliceVerdict.END)
    before = verdicts[:first_end]
    # 14.4 Mbit/s against a 1.5 Mbit/s budget: about one frame in ten gets through.
    assert 0.05 < before.count(PoliceVerdict.FORWARD) / len(before) < 0.2
    first_drop = verdicts.index(PoliceVerdict.DROP)
    assert (first_end - first_drop) / 30 == pytest.approx(10.0, abs=0.1)


def test_a_leg_back_under_the_ceiling_starts_over() -> None:
    police = LegBitratePolice(
        BandwidthSettings(max_leg_bitrate_bps=1_000_000, police_end_after_s=5.0)
    )
    t = 0.0
    for _ in range(3):
        for _ in range(30 * 4):  # 4 s far over
            assert police.admit(60_000, t) is not PoliceVerdict.END
            t += 1 / 30
        for _ in range(30 * 3):  # 3 s compliant
            police.admit(1_000, t)
            t += 1 / 30


def test_the_ceiling_goes_on_the_video_section_only() -> None:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:99\r\na=mid:1\r\n"
    )
    out = advertise_ceiling(sdp, 2_500_000)
    audio, video = out.split("m=video")
    assert "b=" not in audio
    assert "\r\nc=IN IP4 0.0.0.0\r\nb=AS:2500\r\nb=TIAS:2500000\r\na=mid:1\r\n" in video
    assert "b=AS:99" not in out


def test_loss_at_a_high_estimate_brings_the_sender_under_what_the_path_carries() -> None:
    # A policer drops what exceeds 400 kbps without queueing: the receiver's delay-based
    # estimate stays at 2 Mbps while most packets are lost.
    gate = DownlinkVideoGate(BandwidthSettings(max_leg_bitrate_bps=2_500_000))
    path = 400_000
    caps = []
    for t in range(40):
        gate.on_estimate(2_000_000, float(t))
        sent = gate.sender_cap  # the sending browser's encoder follows its cap
        assert gate.on_loss(max(0.0, 1 - path / sent), float(t), sent_bps=sent) is None
        caps.append(gate.sender_cap)
    # One report: under the path (what got through, less a tenth).
    assert abs(caps[0] - 360_000) <= 1
    # From then on it probes up to the path and falls back under it, never up to the
    # estimate: lost a tenth or more at most one report in three.
    assert all(300_000 <= cap <= path * 1.1 for cap in caps), caps
    assert sum(cap > path / 0.9 for cap in caps) <= len(caps) // 3, caps
    assert gate.forwarding


def test_once_the_loss_stops_the_loss_based_cap_grows_until_it_no_longer_binds() -> None:
    gate = DownlinkVideoGate(BandwidthSettings(max_leg_bitrate_bps=2_500_000))
    gate.on_estimate(1_000_000, 0.0)
    gate.on_loss(0.6, 0.0)
    assert gate.sender_cap == 700_000
    gate.on_loss(0.05, 1.0)  # between 2 and 10 %: hold
    assert gate.sender_cap == 700_000
    for t in range(2, 7):
        gate.on_loss(0.0, float(t))
    assert gate.sender_cap == 1_000_000 and gate.loss_based is None


def test_loss_that_takes_the_cap_under_the_floor_pauses_video() -> None:
    gate = DownlinkVideoGate(SETTINGS)
    gate.on_estimate(1_000_000, 0.0)
    changes = [gate.on_loss(0.9, float(t)) for t in range(12)]
    assert GateChange(GateState.PAUSED, "weak_connection", "video_paused") in changes


def test_reports_from_before_the_sender_followed_a_cut_do_not_cut_again() -> None:
    gate = DownlinkVideoGate(BandwidthSettings(max_leg_bitrate_bps=2_500_000))
    gate.on_estimate(1_000_000, 0.0)
    gate.on_loss(0.5, 0.0, sent_bps=1_000_000)
    assert gate.sender_cap == 450_000  # 0.9 x what got through
    gate.on_loss(0.5, 1.0, sent_bps=1_000_000)  # still the old rate: not a new cut
    assert gate.sender_cap == 450_000
    gate.on_loss(0.5, 2.0, sent_bps=450_000)  # loss at the new rate: cut again
    assert gate.sender_cap == int(450_000 * 0.5 * 0.9)


def test_receiver_reports_are_folded_into_about_one_a_second() -> None:
    # Chromium sends a report with every NACK: several a second, each about a sliver.
    window = ReceiverReportWindow()
    assert window.add(0.0, 0, 1000, None) is None
    assert window.add(0.3, 30, 1050, 0.05) is None
    assert window.add(0.6, 30, 1080, 0.05) is None
    # 1.0 s: 40 of the 200 packets since the window opened were lost.
    assert window.add(1.0, 40, 1200, 0.06) == (0.2, 0.06)
    assert window.add(2.1, 40, 1300, None) == (0.0, None)
    # A new stream (sequence numbers start over) opens a new window.
    assert window.add(2.5, 0, 10, None) is None


def test_a_queue_that_keeps_growing_cuts_the_cap_though_nothing_is_lost() -> None:
    # TCP to a TURN server queues instead of dropping: no loss, the round trip grows.
    gate = DownlinkVideoGate(BandwidthSettings(max_leg_bitrate_bps=2_500_000))
    gate.on_estimate(600_000, 0.0)
    for t, rtt in enumerate((0.03, 0.04, 0.03)):
        gate.on_loss(0.0, float(t), sent_bps=600_000, round_trip_s=rtt)
    assert gate.sender_cap == 600_000
    gate.on_loss(0.0, 3.0, sent_bps=600_000, round_trip_s=0.5)
    assert gate.sender_cap == 420_000  # 0.7 x what was sent
    # Draining (the round trip falls): no further cut, and no growth either.
    gate.on_loss(0.0, 5.0, sent_bps=420_000, round_trip_s=0.4)
    assert gate.sender_cap == 420_000
    # Still growing after the sender followed: cut again.
    gate.on_loss(0.0, 7.0, sent_bps=420_000, round_trip_s=0.6)
    assert gate.sender_cap == 294_000
    # The queue is gone: it grows back.
    gate.on_loss(0.0, 8.0, sent_bps=294_000, round_trip_s=0.04)
    assert gate.sender_cap == int(294_000 * 1.08)
