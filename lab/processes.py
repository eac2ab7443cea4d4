"""Is that process still the one we started? Pids are reused, so a process is known by
its pid and its start time (clock ticks since boot, /proc/<pid>/stat field 22). The one
place the labs and their guardians ask."""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

FALLBACK_POLL_S = 0.2  # /proc polling without a pidfd: the end is seen this soon


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (field 3 on), None: no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start_time(pid: int) -> int | None:
    """The start time of a process (clock ticks since boot), to tell a pid reused."""
    fields = _stat(pid)
    return None if fields is None else int(fields[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    """The process runs: it exists, is no zombie, and (when ``start_time`` is given) is
    the same process, not a later one given the same pid."""
    fields = _stat(pid)
    if fields is None or fields[0] in ("Z", "X"):  # Z/X: ended, not reaped yet
        return False
    return start_time is None or int(fields[19]) == start_time


def owner_runs(pid: int, start: int | None) -> bool:
    """The owner runs: that pid exists, is no zombie, and started at ``start``; a pid
    reused by another process does not count. Without a recorded start time nothing can
    be told apart: dead, to be safe from a reused pid keeping a lab forever."""
    return start is not None and process_alive(pid, start)


def watch(pid: int, start: int | None, still_wanted=lambda: True,
          poll_s: float = 1.0) -> str:
    """Block until the owner is gone ("owner gone") or ``still_wanted()`` turns false
    ("not wanted"). The owner's end is seen at once through a pidfd (readable when the
    process has ended); without pidfds /proc is polled every FALLBACK_POLL_S;
    ``still_wanted`` is asked every ``poll_s``."""
    fd = None
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # gone already (ESRCH), or no pidfds: poll /proc
        fd = None
    try:
        poller = select.poll()
        if fd is not None:
            poller.register(fd, select.POLLIN)
        while True:
            # checked after the open: a pid reused before it is not the owner's pidfd
            if not owner_runs(pid, start):
                return "owner gone"
            if not still_wanted():
                return "not wanted"
            if fd is not None:
                poller.poll(poll_s * 1000)
            else:
                time.sleep(FALLBACK_POLL_S)
    finally:
        if fd is not None:
            os.close(fd)
