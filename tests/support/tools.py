"""External tools the tests use: present, skipped locally, or a failure in CI."""

from __future__ import annotations

import os
import shutil

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
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{name} is required in CI but is not installed (looked on PATH and /usr/bin)")
    pytest.skip(f"{name} is not installed")
