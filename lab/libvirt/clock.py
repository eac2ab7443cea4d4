"""A guest's wall clock against this host's, and the step that sets it after a revert.

Reverted guests resume with the snapshot's time (real-lab.md §3.4); the guest's write log
and the timeline compare wall clocks, so each node is stepped to this host's time.

One sample is a `date` round trip on a session already up: the guest's reading minus the
round trip's midpoint, wrong by at most half the round trip (NTP's estimate). On a 2-core
host whose TCG guests share it, one round trip can take seconds and be lopsided, so the
offset is the sample with the shortest round trip of a few, and a step is checked the same
way and made again (a bounded number of times) when it missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from harness.errors import LabError

SAMPLES = 3
# a step is good when the measured offset is within this (ours: well inside the 1 s the
# qemu test bed allows, and above what a short round trip's own error gives)
TOLERANCE_S = 0.3
STEPS = 3
COMMAND_TIMEOUT_S = 15.0


class Session(Protocol):
    """harness.ssh.SshSession, on a connection already up."""

    def run(self, command: str, *, timeout_s: float): ...


@dataclass(frozen=True)
class Offset:
    seconds: float  # the guest's wall clock minus this host's
    error_s: float  # half the round trip of the sample it came from


def clock_script(now: float) -> str:
    """Shell that sets a node's clock to ``now`` (this host's time, sent over SSH).
    `date` first: chrony's makestep alone does nothing without a reachable source (an
    isolated lab has none), and the gateway it could ask was reverted too. Then chrony
    is asked to step, in case it has a source that knows better."""
    return (f"date -u -s @{now:.3f} >/dev/null && "
            "{ chronyc -a makestep >/dev/null 2>&1 || true; }")


def measure(session: Session, name: str, *, samples: int = SAMPLES,
            now: Callable[[], float] = time.time) -> Offset:
    """The guest's offset from the best (shortest round trip) of ``samples`` readings."""
    best: Offset | None = None
    for _ in range(samples):
        t0 = now()
        result = session.run("date +%s.%N", timeout_s=COMMAND_TIMEOUT_S)
        t1 = now()
        if result.rc != 0:
            raise LabError(f"{name}: reading the clock failed: {result.stderr.strip()[-300:]}")
        sample = Offset(float(result.stdout) - (t0 + t1) / 2, (t1 - t0) / 2)
        if best is None or sample.error_s < best.error_s:
            best = sample
    assert best is not None
    return best


def step(session: Session, name: str, *, now: Callable[[], float] = time.time) -> Offset:
    """Set the guest's clock to this host's and return the offset measured afterwards.
    Each step sends the time ahead by half the shortest round trip just measured; a step
    that missed by more than ``TOLERANCE_S`` is made again, at most ``STEPS`` in all. A
    guest still off after that is left as it is, said on the terminal."""
    offset = measure(session, name, now=now)
    for _ in range(STEPS):
        if abs(offset.seconds) <= TOLERANCE_S:
            return offset
        result = session.run(clock_script(now() + offset.error_s), timeout_s=COMMAND_TIMEOUT_S)
        if result.rc != 0:
            raise LabError(f"{name}: setting the clock after the revert failed: "
                           f"{result.stderr.strip()[-300:]}")
        offset = measure(session, name, now=now)
    if abs(offset.seconds) > TOLERANCE_S:
        print(f"pvechaos: {name}'s clock is {offset.seconds:+.2f} s (± {offset.error_s:.2f}) "
              f"from this host's after {STEPS} steps; its log times are off by as much")
    return offset
