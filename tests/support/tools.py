"""External tools the tests use: present, skipped locally, or a failure in CI."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def require_tool(name: str) -> str:
    """Path of the command-line tool ``name`` (e.g. Debian's ``ffprobe``).

    A developer machine without the tool skips the test; in CI (``CI=true``) a missing
    tool is a broken environment and fails the test instead of hiding it as a skip.
    """
    path = shutil.which(name) or (
        f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
    )
    if path is not None:
        return path
    if _in_ci():
        pytest.fail(f"{name} is required in CI but is not installed (looked on PATH and /usr/bin)")
    pytest.skip(f"{name} is not installed")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@contextlib.contextmanager
def small_tmpfs(path: Path, size_bytes: int) -> Iterator[Path]:
    """A real, size-limited file system mounted at ``path`` (a full disk, for real: writes
    past ``size_bytes`` fail with ENOSPC). Needs root (the CI runs tests as root); without
    the right to mount, a developer machine skips and CI fails."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs ({mounted.stderr.strip() or mounted.returncode})"
        if _in_ci():
            pytest.fail(f"{reason}: the tests must run as root in CI")
        pytest.skip(reason)
    try:
        yield path
    finally:
        # Lazy: a file a failed test left open must not keep the mount (and the test) alive.
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill_file_system(directory: Path, *, leave_bytes: int = 0) -> Path:
    """Fill the file system holding ``directory`` until ``leave_bytes`` or less are free;
    answers the filler file (delete it to free the space again)."""
    filler = directory / "filler.bin"
    chunk = b"\0" * (1 << 16)
    with filler.open("wb", buffering=0) as fh:
        while (free := shutil.disk_usage(directory).free) > leave_bytes:
            try:
                fh.write(chunk[: max(1, min(len(chunk), free - leave_bytes))])
            except OSError:
                break  # ENOSPC: full
    return filler
