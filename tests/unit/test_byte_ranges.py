"""The Range decision of downloads (server/api/byte_ranges.py), one case per rule."""

from __future__ import annotations

import pytest

from server.api.byte_ranges import ByteRange, RangeRefused, requested_byte_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("items=0-1", None),  # an unknown unit is ignored: the whole body
        ("pages = 3-4", None),
        ("bytes=0-0", ByteRange(0, 1)),
        ("bytes=100-199", ByteRange(100, 200)),
        ("bytes=990-", ByteRange(990, 1000)),
        ("bytes=10-5000", ByteRange(10, 1000)),  # clipped to the body
        ("bytes=-10", ByteRange(990, 1000)),
        ("bytes=-5000", ByteRange(0, 1000)),
        ("Bytes= 5-6 ", ByteRange(5, 7)),
    ],
)
def test_ranges_served(header: str | None, expected: ByteRange | None) -> None:
    assert requested_byte_range(header, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("bytes=-0", "range_not_satisfiable"),
        ("bytes=1000-", "range_not_satisfiable"),
        ("bytes=1000-1100", "range_not_satisfiable"),
        ("bytes=5-3", "bad_range"),
        ("bytes=-", "bad_range"),
        ("bytes=a-b", "bad_range"),
        ("bytes=0-1,5-6", "bad_range"),
        ("garbage", "bad_range"),
    ],
)
def test_ranges_refused(header: str, code: str) -> None:
    with pytest.raises(RangeRefused) as refused:
        requested_byte_range(header, SIZE)
    assert refused.value.code == code


def test_nothing_can_be_cut_from_an_empty_body() -> None:
    with pytest.raises(RangeRefused):
        requested_byte_range("bytes=0-", 0)
    with pytest.raises(RangeRefused):
        requested_byte_range("bytes=-1", 0)
    assert requested_byte_range("items=0-1", 0) is None
    assert ByteRange(5, 7).content_range(SIZE) == "bytes 5-6/1000"
