"""Domains by the public-suffix list, and the detector's use of it."""

from __future__ import annotations

import pytest

from moderation.contact_details import find_contact_details
from moderation.domains import host_of, is_domain


@pytest.mark.parametrize(
    "host", ["example.com", "marta-design.co.uk", "jo.dev", "shop.example.com.mx", "jo.studio"]
)
def test_hosts_under_a_public_suffix_are_domains(host: str) -> None:
    assert is_domain(host)


@pytest.mark.parametrize(
    "host",
    [
        "config.yaml",  # a file
        "user.profile",  # an attribute path
        "db.internal",  # a private name
        "co.uk",  # a suffix alone, with nothing registered under it
        "localhost",
        "a..com",
    ],
)
def test_other_dotted_names_are_not(host: str) -> None:
    assert not is_domain(host)


def test_host_of_strips_scheme_www_path_and_port() -> None:
    assert host_of("https://www.Marta-Design.co.uk:8443/contact?x=1") == "marta-design.co.uk"


@pytest.mark.parametrize(
    "text",
    [
        "the ORM filters on obj.owner@team.lead",  # e-mail shape, no public suffix
        "my website: index.tsx renders the header",  # "my website" then a file
        "my shop is at sell.items, book there directly",
    ],
)
def test_the_detector_reads_no_site_or_mailbox_without_a_public_suffix(text: str) -> None:
    assert find_contact_details(text) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to ana.ruiz@estudio.es", "email"),
        ("my site: jo.dev", "link"),
        ("book a call at www.jo-design.studio", "link"),
    ],
)
def test_the_detector_reads_sites_and_mailboxes_under_one(text: str, kind: str) -> None:
    assert [hit.kind for hit in find_contact_details(text)] == [kind]
