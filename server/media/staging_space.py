"""Free space in the recording staging folder, against the floor a new call needs.

Every call is recorded into ``<data dir>/recording-staging`` while it runs, and finalising
copies each file once more before it is stored. A node whose staging disk is nearly full
would start calls it cannot record: it stops taking new ones (``/readyz`` 503, new calls
``unavailable``) while the live calls finish and their recordings drain to storage.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from server.media.call_media import MediaUnavailableError

STAGING_LOW_WORDS = (
    "Calls are paused: the call server is low on space for recordings, and every call "
    "must be recorded. Try again later."
)


class StagingBelowFreeSpaceFloor(MediaUnavailableError):
    """The staging folder has less free space than ``INBOXCALL_STAGING_MIN_FREE_BYTES``.

    The class name is what ``/readyz`` shows under ``checks.recording_staging``.
    """


class StagingSpace:
    def __init__(self, directory: Path, min_free_bytes: int) -> None:
        self.directory = directory
        self.min_free_bytes = min_free_bytes

    def free_bytes(self) -> int:
        """Free bytes for an unprivileged writer on the staging folder's file system
        (blocking: one statvfs)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.directory).free

    async def check(self) -> None:
        """Raise ``StagingBelowFreeSpaceFloor`` when a new call could not be recorded."""
        if self.min_free_bytes <= 0:
            return
        free = await asyncio.to_thread(self.free_bytes)
        if free < self.min_free_bytes:
            raise StagingBelowFreeSpaceFloor(
                f"recording staging has {free} bytes free, below the floor of "
                f"{self.min_free_bytes} (INBOXCALL_STAGING_MIN_FREE_BYTES)",
                words=STAGING_LOW_WORDS,
            )
