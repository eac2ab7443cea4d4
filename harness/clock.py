"""One monotonic clock for a run, with the timescale that shrinks PVE's HA timers."""

from __future__ import annotations

import threading
import time

from harness.timescale import REAL_TIME, Timescale


class Clock:
    """Monotonic seconds since the clock was made.

    ``timescale`` (the run's one Timescale, harness/timescale.py; PVE's real timings
    unless given) multiplies PVE's HA timers on labs that can scale them (the embedded
    lab); budgets and bounds derived from those timers scale with it through ``scaled``.
    Corosync's own timers are never scaled.
    """

    def __init__(self, timescale: Timescale = REAL_TIME) -> None:
        if not isinstance(timescale, Timescale):  # a bare number skipped the one validation
            raise TypeError(f"Clock takes a Timescale, not {timescale!r}")
        self.timescale = timescale
        self._origin = time.monotonic()
        self._wall_origin = time.time()  # the same instant on the wall clock

    def now(self) -> float:
        return time.monotonic() - self._origin

    def wall(self, t: float) -> float:
        """A time of this clock as wall-clock epoch seconds (to ask nodes' logs for it)."""
        return self._wall_origin + t

    def scaled(self, seconds: float) -> float:
        return self.timescale.scaled(seconds)

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Pause up to ``seconds``; returns True early when ``stop`` is set."""
        if stop is None:
            time.sleep(max(0.0, seconds))
            return False
        return stop.wait(max(0.0, seconds))
