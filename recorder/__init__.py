"""Call recording: encoded-packet muxing, storage, review sampling and retention.

A library: it never imports ``server`` or ``signaling``. It satisfies the bridge's
``EncodedFrameSink`` protocol structurally; ``server`` wires the two together.
"""

from recorder.call_recorder import (
    CallRecorder,
    ParticipantRecordingStats,
    RecorderStats,
    RecordingFailureListener,
    participant_stem,
)
from recorder.finalise import (
    FinalisedRecording,
    RecordingError,
    find_unfinished_recordings,
    recover_recording,
    recoverable_manifests,
)
from recorder.frames import MediaKind, RecordableFrame

__all__ = [
    "CallRecorder",
    "FinalisedRecording",
    "MediaKind",
    "ParticipantRecordingStats",
    "RecordableFrame",
    "RecorderStats",
    "RecordingError",
    "RecordingFailureListener",
    "find_unfinished_recordings",
    "participant_stem",
    "recover_recording",
    "recoverable_manifests",
]
