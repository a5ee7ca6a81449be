"""The ``inboxcall`` command: serve, demo, migrate."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from pydantic import ValidationError

from server.log_context import configure_logging
from server.settings import Settings


def _serve(settings: Settings) -> None:
    asyncio.run(_serve_until_stopped(settings))


async def _serve_until_stopped(settings: Settings) -> None:
    from server.app import create_app
    from server.connection_limits import serve_http

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = await serve_http(create_app(settings))
    port = runner.addresses[0][1] if runner.addresses else settings.port
    base = f"http://{settings.host}:{port}"
    # Printed once the socket is bound, so whoever waits for this line can connect.
    print(f"inboxcall is serving on {base}", flush=True)
    if settings.demo:
        print(f"  Sign in (demo users): {base}/login", flush=True)
        print(f"  Inbox:                {base}/inbox", flush=True)
        print(f"  Reviewer console:     {base}/review", flush=True)
    print(f"  API description:      {base}/api/openapi.json", flush=True)
    if settings.metrics_port:
        metrics = f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"
        print(f"  Metrics (Prometheus): {metrics}", flush=True)
    try:
        await stop.wait()
    finally:
        # Ends live calls (server_shutdown) and finalises their recordings.
        await runner.cleanup()


def _demo(settings: Settings) -> None:
    from server.demo import seed_demo

    report = asyncio.run(seed_demo(settings))
    print(report)


def _migrate(settings: Settings) -> None:
    from server.db.migrate import upgrade_to_head

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.resolved_database_url)
    print("database is at the latest schema")


def _purge(settings: Settings) -> None:
    from server.db.migrate import upgrade_to_head_async
    from server.db.session import make_engine, make_session_factory
    from server.recording_service import make_store
    from server.retention_job import RetentionJob

    async def run() -> list[str]:
        await upgrade_to_head_async(settings.resolved_database_url)
        engine = make_engine(settings.resolved_database_url)
        try:
            job = RetentionJob(settings, make_session_factory(engine), make_store(settings))
            return await job.run_once()
        finally:
            await engine.dispose()

    deleted = asyncio.run(run())
    print(f"retention purge deleted {len(deleted)} recording(s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inboxcall", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service")
    serve.add_argument("--demo", action="store_true", help="enable demo sign-in (demo data)")
    sub.add_parser("demo", help="seed demo data showing every eligibility outcome")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("purge", help="delete recordings the retention policy no longer keeps")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as exc:
        # One line per bad setting, named as the operator spells it, instead of a traceback.
        for error in exc.errors():
            name = "INBOXCALL_" + "_".join(str(part) for part in error["loc"]).upper()
            where = f"{name}: " if error["loc"] else ""
            print(f"inboxcall: bad setting: {where}{error['msg']}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from signaling import aiortc_patches

        try:
            # Before anything touches the data dir: a refused start leaves nothing behind.
            aiortc_patches.require_checked_versions()
        except aiortc_patches.UnsupportedMediaStackError as exc:
            print(f"inboxcall: refusing to start: {exc}", file=sys.stderr)
            return 2
    configure_logging(settings.log_format, settings.resolved_node_name)
    if args.command == "serve":
        if args.demo:
            settings = settings.model_copy(update={"demo": True})
        _serve(settings)
    elif args.command == "demo":
        _demo(settings)
    elif args.command == "migrate":
        _migrate(settings)
    elif args.command == "purge":
        _purge(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
