"""What the kernel says about a process: is it alive, its CPU time, its UDP ports."""

from __future__ import annotations

import os
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A zombie (state Z) has exited; only its parent's wait is missing.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cpu_seconds(pid: int) -> float:
    """CPU time ``pid`` has used so far, every thread, user and system (its children not)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name (which may hold spaces): state is 3, utime 14, stime 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _udp_sockets_of(pid: int) -> list[list[str]]:
    """The ``/proc/net/udp`` and ``udp6`` rows of every UDP socket ``pid`` holds."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    rows: list[list[str]] = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 12 and fields[9] in inodes:
                rows.append(fields)
    return rows


def udp_ports_of(pid: int) -> set[int]:
    """The local ports of every UDP socket ``pid`` holds (IPv4 and IPv6)."""
    return {int(fields[1].rsplit(":", 1)[1], 16) for fields in _udp_sockets_of(pid)}


def udp_drops_by_socket(pid: int) -> dict[str, int]:
    """Per open UDP socket of ``pid`` (by inode): the datagrams the kernel dropped there
    (full receive buffers, mostly) since it was opened."""
    return {fields[9]: int(fields[12]) for fields in _udp_sockets_of(pid)}
