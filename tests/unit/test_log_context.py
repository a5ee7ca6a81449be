"""The log handler: ids from contextvars on every record, text or JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from pydantic import ValidationError

from server.log_context import LogFormat, log_context, make_handler, set_connection_id
from server.settings import Settings


def capture(log_format: LogFormat) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.log_context.{log_format}")
    logger.propagate = False
    logger.handlers = [make_handler(log_format, "node-7", stream)]
    logger.setLevel(logging.INFO)
    return logger, stream


async def test_json_lines_carry_the_ids_of_their_context() -> None:
    logger, stream = capture("json")

    async def one_socket() -> None:
        set_connection_id("ws-abc")
        logger.info("opened")
        with log_context(call_id="call-1"):
            logger.info("call message")
        logger.info("after the call message")

    await asyncio.get_running_loop().create_task(one_socket())
    logger.info("outside any socket")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["message"], r["call_id"], r["connection_id"]) for r in lines] == [
        ("opened", None, "ws-abc"),
        ("call message", "call-1", "ws-abc"),
        ("after the call message", None, "ws-abc"),
        ("outside any socket", None, None),
    ]
    assert {r["node"] for r in lines} == {"node-7"}
    assert {r["level"] for r in lines} == {"INFO"}
    assert all(r["logger"] == logger.name and r["time"] for r in lines)


def test_text_lines_end_with_the_ids_they_have() -> None:
    logger, stream = capture("text")
    with log_context(call_id="call-2"):
        logger.info("hello")
    line = stream.getvalue().strip()
    assert line.endswith("hello [call_id=call-2 node=node-7]")


def test_the_log_format_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOXCALL_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()
    monkeypatch.setenv("INBOXCALL_LOG_FORMAT", "json")
    monkeypatch.setenv("INBOXCALL_NODE_NAME", "edge-1")
    settings = Settings()
    assert (settings.log_format, settings.node_name) == ("json", "edge-1")


def test_message_validation_errors_do_not_repeat_personal_data() -> None:
    from signaling.ws_protocol import Caller, ClientChatMessage

    with pytest.raises(ValidationError) as refused_name:
        Caller(id="u1", display_name="Ophelia Brightwater " * 20)
    with pytest.raises(ValidationError) as refused_chat:
        ClientChatMessage(call_id="c1", text=["the pelican flies at midnight"])  # type: ignore[arg-type]
    assert "Ophelia" not in str(refused_name.value)
    assert "pelican" not in str(refused_chat.value)
