"""The media network settings: the port range split between workers, announced addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.media.worker_pool import split_port_range
from tests.support.service import make_settings


def test_the_range_is_split_into_disjoint_slices_covering_it() -> None:
    assert split_port_range((40000, 40009), 3) == [(40000, 40003), (40004, 40006), (40007, 40009)]
    assert split_port_range((5000, 5000), 1) == [(5000, 5000)]
    slices = split_port_range((10000, 59999), 7)
    ports = [p for low, high in slices for p in range(low, high + 1)]
    assert ports == list(range(10000, 60000))
    with pytest.raises(ValueError, match="between 3 workers"):
        split_port_range((5000, 5001), 3)


def test_media_network_settings_are_checked(tmp_path: Path) -> None:
    ok = make_settings(
        tmp_path,
        media_workers=2,
        ice_host_addresses="10.0.0.5, 10.0.1.5",
        ice_announced_addresses="203.0.113.7,203.0.113.8",
        media_port_min=40000,
        media_port_max=40001,
    )
    assert ok.media_port_range == (40000, 40001)
    assert ok.announced_address_map == {"10.0.0.5": "203.0.113.7", "10.0.1.5": "203.0.113.8"}
    assert make_settings(tmp_path).announced_address_map == {}
    assert make_settings(tmp_path).media_port_range is None

    refused = {
        "MAX, or neither": {"media_port_min": 40000},
        "above": {"media_port_min": 40010, "media_port_max": 40000},
        "one port per media worker": {
            "media_workers": 3,
            "media_port_min": 40000,
            "media_port_max": 40001,
        },
        "one address per": {"ice_announced_addresses": "203.0.113.7,203.0.113.8"},
        "must be IP addresses": {"ice_announced_addresses": "media.example.com"},
        "same IP version": {"ice_announced_addresses": "2001:db8::7"},
        "TURN_SECRET is required": {"turn_urls": "turn:turn.example.com:443?transport=tcp"},
        "not a turn: or turns: URL": {"turn_urls": "https://x", "turn_secret": "s"},
    }
    for words, overrides in refused.items():
        with pytest.raises(ValidationError, match=words):
            make_settings(tmp_path, **overrides)
