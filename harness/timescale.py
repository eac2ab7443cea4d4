"""The timescale of a run: the one factor PVE's HA timers are multiplied by.

Labs that can scale PVE's HA timers (the embedded lab) run them at ``factor`` times their
real length; 1 means PVE's real timings, the only one real PVE (libvirt, inventory) has.
Corosync's timers are never scaled. The value is made once per run from ``--timescale``
(harness/plugin.py ``pytest_configure``, kept under its TIMESCALE) and validated
here, once; the clock, the predicted constants, the budget and the lab take it from there.

A timescale lies from ``Timescale.MIN`` (0.01) to ``Timescale.MAX`` (10). Below 0.01 PVE's
1 s watchdog tick and 10 s LRM round become 10 ms and 0.1 s, shorter than what the
emulated daemons' Python threads and SSH round trips can keep, and corosync's unscaled
~8 s membership change would outlast the 1.2 s HA lock lifetime several times over; the
suite runs at 0.1 (CI) to 1 (PVE's timings), the HA self-tests down to 0.05. Above 10 a
story that takes 25 minutes at timescale 1 takes hours, and nothing gains from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from harness.errors import ConfigError


class TimescaleError(ConfigError, ValueError):
    """A timescale that is not a number from Timescale.MIN to Timescale.MAX."""


@dataclass(frozen=True)
class Timescale:
    factor: float
    MIN: ClassVar[float] = 0.01
    MAX: ClassVar[float] = 10.0

    def __post_init__(self) -> None:
        factor = self.factor
        number = isinstance(factor, (int, float)) and not isinstance(factor, bool)
        if not number or not math.isfinite(factor) or not self.MIN <= factor <= self.MAX:
            shown = f"{factor:g}" if number else repr(factor)
            raise TimescaleError(
                f"timescale {shown} must be a finite number from {self.MIN:g} to "
                f"{self.MAX:g}", hint=f"use a number from {self.MIN:g} to {self.MAX:g}: 1 for "
                "PVE's real timings, 0.1 for ten times faster")
        object.__setattr__(self, "factor", float(factor))

    def scaled(self, seconds_at_1: float) -> float:
        """A PVE HA duration (given at timescale 1) in real seconds at this timescale."""
        return seconds_at_1 * self.factor

    @property
    def is_real_time(self) -> bool:
        return self.factor == 1.0

    def __str__(self) -> str:
        return f"{self.factor:g}"

    def __format__(self, spec: str) -> str:
        return format(self.factor, spec)


REAL_TIME = Timescale(1.0)  # PVE's own timings
