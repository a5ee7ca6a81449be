"""The README's signature check for hosts works against what the sender signs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from server.webhooks.signing import signature_header

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_check() -> Callable[..., bool]:
    text = README.read_text()
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "inboxcall_signature_ok" in b
    ]
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    check = namespace["inboxcall_signature_ok"]
    assert callable(check)
    return check


def test_the_readme_check_accepts_a_real_signature_and_refuses_forgeries() -> None:
    check = readme_check()
    body = (
        b'{"id":"evt_1","type":"call.ended","created_at":"2026-11-23T10:00:00.000+00:00","data":{}}'
    )
    now = int(time.time())
    header = signature_header("s3cret", now, body)
    assert check("s3cret", header, body)
    assert not check("other-secret", header, body)
    assert not check("s3cret", header, body.replace(b"evt_1", b"evt_2"))
    assert not check("s3cret", signature_header("s3cret", now - 3600, body), body)  # replayed
    assert not check("s3cret", "v1=deadbeef", body)
    assert not check("s3cret", "", body)
