"""Helpers for tests that start their own Ray head or cluster: free loopback ports, and the
processes such a head left behind (found by path, never `ray stop`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def our_pids(base: Path) -> list[int]:
    """Processes whose command line or working dir is under ``base`` (this process excluded)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(base) in cmd or cwd.startswith(str(base)):
            found.append(int(entry.name))
    return found


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 (held open together while they are picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
