"""Log lines that name their call, connection and node, as text or JSON lines.

The ids travel in ``contextvars``: the WebSocket handler sets ``connection_id`` for the
life of its socket, the dispatcher and the recording service set ``call_id`` around the
work they do for one call. Tasks started meanwhile copy the context, so a bridge's or a
teardown's log lines keep the ids of whoever started them. ``ContextFilter`` sits on the
handler (not on a logger), so every library's records get the fields too.

Only ids go into records this way. Names, SDP and chat text are never logged: messages
say what happened and name the ids (see ``tests/integration/test_logs.py``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

call_id_var: ContextVar[str | None] = ContextVar("inboxcall_call_id", default=None)
connection_id_var: ContextVar[str | None] = ContextVar("inboxcall_connection_id", default=None)

CONTEXT_FIELDS = ("call_id", "connection_id", "node", "media_worker")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "message", "call_id", "connection_id", "node")

LogFormat = Literal["text", "json"]

# Loggers whose lower levels print personal data, and the lowest level they may log at:
# aiosqlite's DEBUG lines carry every query's parameters (names, chat text), aiortc's
# peer connection logs whole SDPs at DEBUG. Alembic's step-by-step INFO lines at every
# start are only noise.
LOGGER_FLOORS: dict[str, int] = {
    "aiosqlite": logging.INFO,
    "aiortc.rtcpeerconnection": logging.INFO,
    "alembic": logging.WARNING,
}


@contextlib.contextmanager
def log_context(*, call_id: str | None = None) -> Iterator[None]:
    """Name ``call_id`` in the log lines written inside the block (None: leave as is)."""
    if call_id is None:
        yield
        return
    token = call_id_var.set(call_id)
    try:
        yield
    finally:
        call_id_var.reset(token)


def set_connection_id(connection_id: str) -> None:
    """For the rest of the current task (a socket's handler): its connection id."""
    connection_id_var.set(connection_id)


class ContextFilter(logging.Filter):
    """Copies the context's ids and the node name (and, in a media worker process, its
    index) onto every record it sees."""

    def __init__(self, node: str, media_worker: str | None = None) -> None:
        super().__init__()
        self.node = node
        self.media_worker = media_worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = call_id_var.get()
        record.connection_id = connection_id_var.get()
        record.node = self.node
        if self.media_worker is not None:
            # Only in workers; the JSON formatter adds any extra attribute as a field.
            record.media_worker = self.media_worker
        return True


class ContextTextFormatter(logging.Formatter):
    """The plain format, followed by whichever ids the record carries."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [
            f"{field}={value}"
            for field in CONTEXT_FIELDS
            if (value := getattr(record, field, None)) is not None
        ]
        if not ids:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{' '.join(ids)}]{newline}{rest}"


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            list(JSON_FIELDS),
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return ContextTextFormatter(TEXT_FORMAT)


def make_handler(
    log_format: LogFormat,
    node: str,
    stream: TextIO | None = None,
    *,
    media_worker: str | None = None,
) -> logging.StreamHandler[TextIO]:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(ContextFilter(node, media_worker))
    return handler


def apply_logger_floors() -> None:
    for name, floor in LOGGER_FLOORS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, floor))


def configure_logging(
    log_format: LogFormat,
    node: str,
    level: int | str = logging.INFO,
    *,
    media_worker: str | None = None,
) -> None:
    """The process's one log handler (on the root logger), replacing any set before."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(log_format, node, media_worker=media_worker))
    root.setLevel(level)
    apply_logger_floors()
