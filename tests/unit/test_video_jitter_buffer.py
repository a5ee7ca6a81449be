"""The bounded wait for a lost video packet, against aiortc's own jitter buffer."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from signaling.video_jitter_buffer import BoundedWaitJitterBuffer

PACKETS_PER_FRAME = 3


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def packet(sequence_number: int) -> RtpPacket:
    """Frame ``n`` is packets ``3n .. 3n+2``, timestamp ``3000 n``; data names the packet."""
    frame = sequence_number // PACKETS_PER_FRAME
    p = RtpPacket(
        payload_type=96,
        marker=int(sequence_number % PACKETS_PER_FRAME == PACKETS_PER_FRAME - 1),
        sequence_number=sequence_number % 65536,
        timestamp=(frame * 3000) % 2**32,
    )
    p._data = b"%d," % sequence_number  # type: ignore[attr-defined]
    return p


def frames_of(frames: list[JitterFrame]) -> list[int]:
    return [f.timestamp // 3000 for f in frames]


def feed(
    buffer: JitterBuffer, sequence_numbers: range | list[int], clock: Clock | None = None
) -> tuple[list[JitterFrame], int]:
    out: list[JitterFrame] = []
    plis = 0
    for n in sequence_numbers:
        if clock is not None:
            clock.now += 0.01
        pli, frame = buffer.add(packet(n))
        plis += pli
        if frame is not None:
            out.append(frame)
    return out, plis


def test_without_loss_it_hands_out_what_aiortcs_buffer_does() -> None:
    ours, plis = feed(BoundedWaitJitterBuffer(clock=Clock()), range(300))
    theirs, _ = feed(JitterBuffer(512, is_video=True), range(300))
    assert [(f.timestamp, f.data) for f in ours] == [(f.timestamp, f.data) for f in theirs]
    assert len(ours) == 99 and plis == 0


def test_a_retransmission_within_the_wait_loses_nothing() -> None:
    clock = Clock()
    gaps: list[int] = []
    buffer = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock, on_gap=lambda: gaps.append(1))
    sequence = [n for n in range(60) if n != 10]
    sequence.insert(30, 10)  # 20 packets (0.2 s) late
    frames, plis = feed(buffer, sequence, clock)
    assert frames_of(frames) == list(range(19))
    assert frames[3].data == b"9,10,11,"
    assert gaps == [] and plis == 0


def test_a_packet_never_recovered_costs_its_frame_not_the_next_512_packets() -> None:
    clock = Clock()
    gaps: list[int] = []
    buffer = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock, on_gap=lambda: gaps.append(1))
    frames, plis = feed(buffer, [n for n in range(300) if n != 10], clock)
    got = frames_of(frames)
    # Frame 3 (packets 9-11) lost its middle packet; after 0.5 s (50 packets) the
    # buffer gives up on it and goes on from frame 4, asking for a keyframe once.
    assert got[:3] == [0, 1, 2]
    assert 3 not in got
    assert got[3:] == list(range(4, 99))
    assert gaps == [1] and plis == 1 and buffer.gaps_skipped == 1
    # aiortc's own buffer is still stuck there.
    theirs, _ = feed(JitterBuffer(512, is_video=True), [n for n in range(300) if n != 10])
    assert frames_of(theirs) == [0, 1, 2]


def test_a_lost_first_packet_costs_its_frame_only_even_when_the_rest_arrives_late() -> None:
    clock = Clock()
    buffer = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock)
    # Packet 12 (the start of frame 4) is lost; 13 is delayed until after the give-up.
    # Frame 3 is complete (its last packet has the marker) but aiortc would only hand it
    # out on packet 12: it is handed out at the give-up.
    sequence = [*range(12), 14, *range(15, 80), 13, *range(80, 120)]
    frames, plis = feed(buffer, sequence, clock)
    assert frames_of(frames) == [0, 1, 2, 3, *range(5, 39)]
    assert frames[3].data == b"9,10,11,"
    assert all({b"13", b"14"}.isdisjoint(f.data.split(b",")) for f in frames)
    assert plis == 1


def test_a_frame_whose_start_is_lost_while_it_still_arrives_is_dropped_to_its_marker() -> None:
    """A keyframe of 100 packets loses its first one; the wait ends before its last."""
    layout = [(0, 3), (1, 100), (2, 3), (3, 3), (4, 3)]  # (frame, packets)
    packets: list[RtpPacket] = []
    for frame, count in layout:
        for index in range(count):
            p = RtpPacket(
                payload_type=96,
                marker=int(index == count - 1),
                sequence_number=len(packets),
                timestamp=frame * 3000,
            )
            p._data = b"%d," % len(packets)  # type: ignore[attr-defined]
            packets.append(p)
    clock = Clock()
    gaps: list[int] = []
    buffer = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock, on_gap=lambda: gaps.append(1))
    got: list[int] = []
    for p in packets:
        if p.sequence_number == 3:
            continue
        clock.now += 0.01
        _, frame = buffer.add(p)
        if frame is not None:
            got.append(frame.timestamp // 3000)
    assert got == [0, 2, 3]  # frame 4 waits for a next frame
    assert gaps == [1]


def test_it_gives_up_again_on_a_later_loss_and_survives_sequence_wrap() -> None:
    clock = Clock()
    buffer = BoundedWaitJitterBuffer(max_wait_s=0.3, clock=clock)
    start = 65535 - 90  # a multiple of 3 (frames of 3 packets) just before the wrap
    lost = {start + 30, start + 150}
    frames, plis = feed(buffer, [n for n in range(start, start + 300) if n not in lost], clock)
    got = [f.timestamp // 3000 - start // 3 for f in frames]
    assert 10 not in got and 50 not in got
    assert plis == 2
    assert got[-1] == 98


def test_while_it_waits_it_asks_again_for_the_holes_only() -> None:
    clock = Clock()
    asked: list[tuple[int, list[int]]] = []
    buffer = BoundedWaitJitterBuffer(
        clock=clock,
        max_wait_s=0.5,
        renack_interval_s=0.145,
        on_still_missing=lambda ssrc, lost: asked.append((ssrc, lost)),
    )
    feed(buffer, range(10), clock)
    # 10 and 14 are lost; 0.01 s per packet: 0.35 s of waiting asks twice, not more.
    feed(buffer, [11, 12, 13, *list(range(15, 47))], clock)
    assert len(asked) == 2
    assert all(lost == [10, 14] for _, lost in asked)
    # 14 comes back: only 10 is asked for after that.
    feed(buffer, [14, *list(range(47, 57))], clock)
    assert asked[-1][1] == [10] and len(asked) == 3
