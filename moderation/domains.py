"""Whether a written host name is an Internet domain, by the public-suffix list.

A token with dots is a domain only if it ends in a suffix under which names are actually
registered: ``marta-design.co.uk`` and ``x.dev`` are, ``config.yaml``, ``user.profile``
and ``self.attr`` are not. Counting letters after the last dot cannot tell those apart;
the public-suffix list (Mozilla's, maintained with the registries) can. The
``publicsuffixlist`` package ships a snapshot of it, read here once at import: nothing
is downloaded at run time, and a newer snapshot comes with a package upgrade.

Only the ICANN section counts: the private section (``github.io``, ``blogspot.com``)
says where sites are hosted, not whether a suffix exists.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from publicsuffixlist import PublicSuffixList

_PUBLIC_SUFFIXES: Final = PublicSuffixList(accept_unknown=False, only_icann=True)


@lru_cache(maxsize=4096)
def is_domain(host: str) -> bool:
    """True when ``host`` (lower case, dot-separated labels, no scheme) ends in a public
    suffix with at least one label before it."""
    host = host.strip(".")
    if "." not in host or ".." in host:
        return False
    suffix = _PUBLIC_SUFFIXES.publicsuffix(host)
    return suffix is not None and suffix != host


def host_of(written: str) -> str:
    """The host of a link as people type it: no scheme, no "www.", no path or port."""
    host = written.strip().lower()
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    host = host.removeprefix("www.")
    for stop in "/:?#":
        host = host.split(stop, 1)[0]
    return host
