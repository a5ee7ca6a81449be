"""Log lines of a real call: JSON lines naming call, connection and node, and nothing
personal (display names, chat text, SDP) anywhere in them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.connection_limits import PathOnlyAccessLogger
from server.log_context import (
    LOGGER_FLOORS,
    apply_logger_floors,
    make_handler,
)
from tests.support.rtc_client import CallHarness

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(app: web.Application) -> AsyncIterator[TestServer]:
    """Served with the access log ``inboxcall serve`` uses."""
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server(access_log_class=PathOnlyAccessLogger)
    yield test_server
    await test_server.close()


SELLER_NAME = "Zebulon Quartermaine"
BUYER_NAME = "Ophelia Brightwater"
CHAT_TEXTS = ("the pelican flies at midnight", "ring me on +1 415 555 0134 tonight")
# Lines that only SDP has (session, media, ICE credentials, DTLS fingerprint, candidates).
SDP_MARKERS = ("v=0", "o=-", "m=audio", "m=video", "a=ice-ufrag", "a=ice-pwd", "a=fingerprint")
NODE = "node-under-test"


class CapturedLog:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def captured_log() -> Iterator[CapturedLog]:
    """The service's own JSON handler on the root logger, everything at DEBUG but what
    the service itself holds higher (``LOGGER_FLOORS``)."""
    captured = CapturedLog()
    handler = make_handler("json", NODE, captured.stream)
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", *LOGGER_FLOORS)}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    apply_logger_floors()
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


async def test_a_call_logs_ids_as_json_and_nothing_personal(
    calls: CallHarness, captured_log: CapturedLog
) -> None:
    call_id, seller, buyer = await calls.connected_call(
        "-logs", seller_name=SELLER_NAME, buyer_name=BUYER_NAME
    )
    incoming = [m for m in buyer.ws.log if m["type"] == "incoming_call"]
    assert incoming[-1]["caller"]["display_name"] == SELLER_NAME  # the name was in play
    for text in CHAT_TEXTS:
        reply = await buyer.ws.ok("chat", call_id=call_id, text=text)
        assert reply["message"]["text"] == text
    await seller.ws.ok("hang_up", call_id=call_id)
    await calls.ended(call_id, seller.ws, buyer.ws)

    text = captured_log.text
    assert text, "the call wrote no log lines"
    for secret in (SELLER_NAME, BUYER_NAME, *CHAT_TEXTS, "415 555 0134"):
        assert secret not in text
    for marker in SDP_MARKERS:
        assert marker not in text
    # Sign-in links' single-use tokens stay out of the access log.
    assert "/login" in text
    assert "token=" not in text

    records = captured_log.records()  # every line is one JSON object
    assert {r["node"] for r in records} == {NODE}
    assert {"time", "level", "logger", "message", "call_id", "connection_id"} <= set(records[0])
    seller_conn = seller.ws.hello["connection_id"]
    buyer_conn = buyer.ws.hello["connection_id"]
    # The hang-up's own lines carry the call and the seller's socket, from contextvars.
    assert any(
        r["call_id"] == call_id and r["connection_id"] == seller_conn and "ended" in r["message"]
        for r in records
    )
    assert any(r["call_id"] == call_id and r["connection_id"] == buyer_conn for r in records)
    # The recording service names the call while it stores the recordings.
    assert any(
        r["call_id"] == call_id and r["logger"] == "server.recording_service" for r in records
    )
