"""The node's own wall clock: the host's time plus this node's offset.

The nodes of the embedded lab share the host kernel, whose CLOCK_REALTIME no namespace
can change (Linux time namespaces offset only the monotonic and boot-time clocks). So a
node's wall clock is emulated: ``now()`` is ``time.time()`` plus the offset in
``OFFSET_FILE``, which the node's `date -s` writes. Every emulated daemon that PVE drives
from the wall clock (pve-faults.md §7.1: the HA loops, watchdog-mux client ages, pmxcfs
lock ages, status timestamps) reads ``now()``; what PVE drives from the monotonic clock
(corosync, knet, softdog) stays on ``time.monotonic()``, which is real and shared.
"""

from __future__ import annotations

import os
import time

# Under /run: a reset or reboot forgets the step, as a node whose RTC and NTP give it the
# true time again at boot (a guess: a real node may keep a stepped RTC until chrony slews).
OFFSET_FILE = "/run/pvechaos/clock_offset"

_cache: tuple[float, float] = (-1.0, 0.0)  # (file mtime, offset)


def offset() -> float:
    """Seconds this node's wall clock is ahead of the host's (negative: behind)."""
    global _cache
    try:
        mtime = os.stat(OFFSET_FILE).st_mtime
    except FileNotFoundError:
        return 0.0
    if mtime != _cache[0]:
        try:
            _cache = (mtime, float(open(OFFSET_FILE).read().strip() or 0.0))
        except (OSError, ValueError):
            return _cache[1]
    return _cache[1]


def now() -> float:
    """The node's wall-clock time (seconds since the epoch), as `time()` gives PVE."""
    return time.time() + offset()


def set_offset(seconds: float) -> None:
    """Step the node's clock so that it runs ``seconds`` ahead of the host's."""
    tmp = OFFSET_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{seconds:.6f}\n")
    os.replace(tmp, OFFSET_FILE)
