"""A throwaway PostgreSQL server on loopback, from Debian's postgresql package."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from tests.support.service_process import free_port


def postgres_bin_dir() -> Path:
    """Where initdb and postgres live; skipped locally without them, a failure in CI."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail("PostgreSQL (Debian package postgresql) is required in CI but not installed")
    pytest.skip("PostgreSQL server binaries are not installed")


def _as_postgres_user(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; Debian's package brings a postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="inboxcall-pg-"))
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"postgresql://inboxcall@127.0.0.1:{self.port}/postgres"

    async def start(self) -> None:
        data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        init = await asyncio.create_subprocess_exec(
            *_as_postgres_user([str(self.bin / "initdb"), "-D", str(data), "-U", "inboxcall",
                                "-A", "trust", "--no-sync"]),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await init.communicate()
        assert init.returncode == 0, err.decode()
        self.process = await asyncio.create_subprocess_exec(
            *_as_postgres_user([str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
                                "-c", "listen_addresses=127.0.0.1", "-k", str(self.root),
                                "-c", "fsync=off"]),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # Ready when it accepts a connection; bounded, and fails loudly if the server died.
        async with asyncio.timeout(30):
            while True:
                assert self.process.returncode is None, "postgres exited during start-up"
                try:
                    conn = await asyncpg.connect(self.url, timeout=1)
                except (OSError, asyncpg.CannotConnectNowError):
                    await asyncio.sleep(0.1)
                    continue
                await conn.close()
                return

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            async with asyncio.timeout(30):
                await self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
