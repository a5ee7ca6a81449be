"""What the recorder reads from a forwarded frame.

Structurally the same as ``signaling.media_sink.EncodedFrame``: the recorder never imports
``signaling`` (DESIGN.md section 3), so it names only the attributes it reads. Read-only
properties let a frozen dataclass satisfy the protocol.
"""

from __future__ import annotations

from typing import Literal, Protocol

MediaKind = Literal["audio", "video"]


class RecordableFrame(Protocol):
    """One encoded media frame as it crossed the bridge (never decoded).

    ``rtp_timestamp`` grows monotonically in units of ``clock_rate``; ``arrival`` is
    ``time.monotonic()`` at reception, shared by every participant of the call.
    """

    @property
    def participant_id(self) -> str: ...

    @property
    def kind(self) -> MediaKind: ...

    @property
    def codec(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def rtp_timestamp(self) -> int: ...

    @property
    def clock_rate(self) -> int: ...

    @property
    def keyframe(self) -> bool: ...

    @property
    def arrival(self) -> float: ...
