"""Finding the processes a test's own Ray head or cluster left behind (never `ray stop`)."""

from __future__ import annotations

import os
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
