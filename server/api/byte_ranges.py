"""The ``Range`` header of a download, decided in one small pure function (RFC 9110 §14).

aiohttp's ``request.http_range`` reads ``bytes=-0`` as "from 0 to the end" (it negates
the suffix length, and -0 is 0) and refuses any unit it does not know; both are wrong:
a zero-length suffix can never be satisfied (416), and an unknown unit must be ignored
(200 with the whole body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BYTE_RANGE = re.compile(r"(\d*)-(\d*)", re.ASCII)


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    stop: int
    """Exclusive."""

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


class RangeRefused(Exception):
    """Answer 416 with ``code``: the range is malformed or lies outside the body."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def requested_byte_range(header: str | None, size: int) -> ByteRange | None:
    """The part of a ``size``-byte body to send, or None for all of it (status 200).

    One range only (media players ask for one); several in one header are refused as we
    do not send multipart answers.
    """
    if header is None:
        return None
    unit, equals, spec = header.partition("=")
    if not equals:
        raise RangeRefused("bad_range", "Malformed Range header.")
    if unit.strip().lower() != "bytes":
        return None  # RFC 9110 §14.2: a range unit the server does not know is ignored
    match = _BYTE_RANGE.fullmatch(spec.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise RangeRefused("bad_range", "Malformed Range header.")
    first, last = match.groups()
    if first == "":  # suffix "bytes=-N": the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeRefused("range_not_satisfiable", "An empty range cannot be served.")
        return ByteRange(max(size - length, 0), size)
    start = int(first)
    if last != "" and int(last) < start:
        raise RangeRefused("bad_range", "Malformed Range header: the range ends before it starts.")
    if start >= size:
        raise RangeRefused("range_not_satisfiable", "The range is past the end of the recording.")
    stop = size if last == "" else min(int(last) + 1, size)
    return ByteRange(start, stop)
