"""``inboxcall serve`` refuses to start on an aiortc or aioice the patches were not checked
on: a clear message and a non-zero exit before anything starts (no database, no port).

The real command in a child process; only the installed version is faked, by setting the
package's ``__version__`` before the command runs (what a different install would show).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from signaling import aiortc_patches

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]

RUN_SERVE = """
import sys
import aiortc, aioice
aiortc.__version__ = sys.argv[1] or aiortc.__version__
aioice.__version__ = sys.argv[2] or aioice.__version__
from server.cli import main
sys.exit(main(["serve"]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(tmp_path: Path, aiortc_version: str, aioice_version: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "INBOXCALL_HOST": "127.0.0.1",
        "INBOXCALL_PORT": str(free_port()),
        "INBOXCALL_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.Popen(
        [sys.executable, "-c", RUN_SERVE, aiortc_version, aioice_version],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def port_is_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    ("aiortc_version", "aioice_version", "named"),
    [("1.17.0", "", "aiortc 1.17.0"), ("", "0.14.0", "aioice 0.14.0")],
)
def test_serve_refuses_an_unchecked_media_stack(
    tmp_path: Path, aiortc_version: str, aioice_version: str, named: str
) -> None:
    process = serve(tmp_path, aiortc_version, aioice_version)
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2, (stdout, stderr)
    assert "is serving on" not in stdout
    assert "inboxcall: refusing to start:" in stderr
    assert f"{named} is installed" in stderr
    assert "README.md" in stderr
    assert not (tmp_path / "data").exists()  # nothing was started, not even the database


def test_serve_starts_on_the_checked_media_stack(tmp_path: Path) -> None:
    """The control: the same command on the installed (checked) versions serves."""
    assert aiortc_patches.media_stack_problems() == []
    process = serve(tmp_path, "", "")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "is serving on" in line, line
        port = int(line.rsplit(":", 1)[1])
        assert port_is_open(port)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0
