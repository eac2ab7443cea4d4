"""The node's own wall clock: the host's time plus this node's offset.

The nodes of the embedded lab share the host kernel, whose CLOCK_REALTIME no namespace
can change (Linux time namespaces offset only the monotonic and boot-time clocks). So a
node's wall clock is emulated: ``now()`` is ``time.time()`` plus the offset in
``OFFSET_FILE``, which the node's `date -s` writes (pvemu/cli/date.py). Every emulated
daemon that PVE drives from the wall clock (pve-faults.md §7.1: the HA loops, watchdog-mux
client ages, pmxcfs lock ages, status timestamps) reads ``now()``; what PVE drives from
the monotonic clock (corosync, knet, softdog) stays on ``time.monotonic()``, which is real
and shared. What stays real: the real binaries (corosync, sshd) and the kernel (file
times set without an explicit time, log stamps written by real daemons) see the host's
clock, not the node's.

The offset lives under /run, a tmpfs each node mounts for itself (lab/embedded/pid1.py):
a reset or reboot forgets the step. Guess: a real node whose clock was stepped gets the
true time back at boot from its RTC and chrony's `makestep` (pve-faults.md §7.4), unless
the step also reached the RTC.
"""

from __future__ import annotations

import os
import time

OFFSET_FILE = "/run/pvechaos/clock_offset"

# (inode, mtime ns, ctime ns) of the file last read -> its offset: a step writes a new
# file (os.replace), so a new inode, and no reader keeps a stale offset
_cache: tuple[tuple[int, int, int], float] = ((-1, -1, -1), 0.0)


def offset() -> float:
    """Seconds this node's wall clock is ahead of the host's (negative: behind)."""
    global _cache
    try:
        st = os.stat(OFFSET_FILE)
    except FileNotFoundError:
        return 0.0
    key = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    if key != _cache[0]:
        try:
            with open(OFFSET_FILE) as f:
                _cache = (key, float(f.read().strip() or 0.0))
        except (OSError, ValueError):
            return _cache[1]  # a torn or vanished file: the last offset read
    return _cache[1]


def now() -> float:
    """The node's wall-clock time (seconds since the epoch), as `time()` gives PVE."""
    return time.time() + offset()


def set_offset(seconds: float) -> None:
    """Step the node's clock so that it runs ``seconds`` ahead of the host's."""
    os.makedirs(os.path.dirname(OFFSET_FILE), exist_ok=True)
    tmp = f"{OFFSET_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{seconds:.6f}\n")
    os.replace(tmp, OFFSET_FILE)


def set_time(epoch: float) -> float:
    """Step the node's clock to ``epoch`` (what settimeofday does); returns the offset."""
    new = epoch - time.time()
    set_offset(new)
    return new
