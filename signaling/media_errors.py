"""Errors the media bridge raises: domain errors with a stable code, no web framework types.

The WebSocket layer translates them into ``{"code", "message"}`` error replies; the codes
below are part of that contract.
"""

from __future__ import annotations


class MediaBridgeError(Exception):
    """Base class: ``code`` is stable and machine-readable, ``message`` is for people.

    ``retryable`` tells the caller whether sending the same request again later can
    succeed (for example after the other leg has gone away), as opposed to input that
    will never be accepted.
    """

    def __init__(self, code: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


class MediaNegotiationError(MediaBridgeError):
    """An offer was refused.

    Codes: ``bridge_closed``, ``invalid_participant``, ``call_full``, ``sdp_too_large``,
    ``sdp_invalid``, ``offer_media_sections``, ``no_supported_audio_codec``,
    ``no_supported_video_codec``, ``video_codec_mismatch``, ``negotiation_failed``.
    """


class InvalidCandidateError(MediaBridgeError):
    """A trickled ICE candidate was malformed (code ``invalid_candidate``)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_candidate", message)


class UnknownParticipantError(MediaBridgeError):
    """A request named a participant that has no leg in this call (code ``unknown_participant``)."""

    def __init__(self, message: str) -> None:
        super().__init__("unknown_participant", message, retryable=True)
