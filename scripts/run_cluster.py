"""``make cluster``: PostgreSQL, Redis and two inboxcall nodes on loopback, with demo data.

Everything lives under ``./cluster-data`` in the checkout (git-ignored): PostgreSQL's data
directory, each node's data dir, and the recordings folder the nodes share. Ctrl-C stops
every process it started. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import glob
import os
import secrets
import shutil
import signal
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "cluster-data"
PG_PORT = int(os.environ.get("CLUSTER_PG_PORT", "55432"))
REDIS_PORT = int(os.environ.get("CLUSTER_REDIS_PORT", "56379"))
NODE_PORTS = (
    int(os.environ.get("CLUSTER_PORT_A", "8081")),
    int(os.environ.get("CLUSTER_PORT_B", "8082")),
)
DATABASE_URL = f"postgresql://inboxcall@127.0.0.1:{PG_PORT}/postgres"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; Debian's package brings a postgres user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("PostgreSQL is not installed (make cluster installs Debian's postgresql)")
    return Path(found[-1]).parent


async def _wait_port(port: int, what: str, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(60):
        while True:
            if process.returncode is not None:
                sys.exit(f"{what} exited while starting (code {process.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                await asyncio.sleep(0.2)


async def main() -> None:
    ROOT.mkdir(exist_ok=True)
    processes: list[asyncio.subprocess.Process] = []
    secret_file = ROOT / "secret-key"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
    shared = {
        "INBOXCALL_DATABASE_URL": DATABASE_URL,
        "INBOXCALL_REDIS_URL": REDIS_URL,
        "INBOXCALL_RECORDINGS_DIR": str(ROOT / "recordings"),
        "INBOXCALL_SECRET_KEY": secret_file.read_text().strip(),
        "INBOXCALL_INTEGRATION_API_KEY": "dev-cluster-key",
        "INBOXCALL_DEMO": "true",
    }
    try:
        pg_bin = _postgres_bin()
        pg_data = ROOT / "postgres"
        if not (pg_data / "PG_VERSION").exists():
            pg_data.mkdir(exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(pg_data, "postgres")
                shutil.chown(ROOT, "postgres")
            init = await asyncio.create_subprocess_exec(
                *_as_postgres([str(pg_bin / "initdb"), "-D", str(pg_data), "-U", "inboxcall",
                               "-A", "trust"]),
                stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            if await init.wait() != 0:
                sys.exit("initdb failed")
        postgres = await asyncio.create_subprocess_exec(
            *_as_postgres([str(pg_bin / "postgres"), "-D", str(pg_data), "-p", str(PG_PORT),
                           "-c", "listen_addresses=127.0.0.1", "-k", str(pg_data)]),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(postgres)
        redis = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(ROOT),
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(redis)
        await _wait_port(PG_PORT, "postgres", postgres)
        await _wait_port(REDIS_PORT, "redis-server", redis)
        await asyncio.sleep(1)  # postgres accepts TCP a moment before it takes logins
        env = {**os.environ, **shared, "INBOXCALL_DATA_DIR": str(ROOT / "node-a")}
        seed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.cli", "demo", cwd=REPO, env=env
        )
        if await seed.wait() != 0:
            sys.exit("seeding the demo data failed")
        for name, port in zip(("a", "b"), NODE_PORTS, strict=True):
            env = {
                **os.environ,
                **shared,
                "INBOXCALL_PORT": str(port),
                "INBOXCALL_DATA_DIR": str(ROOT / f"node-{name}"),
                "INBOXCALL_NODE_ID": f"node-{name}",
                "INBOXCALL_MEDIA_WORKERS": "1",
            }
            node = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.cli", "serve", cwd=REPO, env=env
            )
            processes.append(node)
            await _wait_port(port, f"node {name}", node)
        print("\ninboxcall cluster on loopback (Ctrl-C stops everything):", flush=True)
        for name, port in zip(("a", "b"), NODE_PORTS, strict=True):
            print(f"  node {name}:     http://127.0.0.1:{port}/login", flush=True)
        print(f"  PostgreSQL: {DATABASE_URL}", flush=True)
        print(f"  Redis:      {REDIS_URL}", flush=True)
        print("  Sign in as Sam Seller on one node and as Vera VID on the other.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiters = [asyncio.ensure_future(p.wait()) for p in processes]
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopper, *waiters], return_when=asyncio.FIRST_COMPLETED)
        for waiter in [stopper, *waiters]:
            waiter.cancel()
    finally:
        for process in reversed(processes):
            if process.returncode is None:
                process.terminate()
        for process in reversed(processes):
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


if __name__ == "__main__":
    asyncio.run(main())
