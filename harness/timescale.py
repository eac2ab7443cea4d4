"""The timescale of a run: the one factor PVE's HA timers are multiplied by.

Labs that can scale PVE's HA timers (the embedded lab) run them at ``factor`` times their
real length; 1 means PVE's real timings, the only one real PVE (libvirt, inventory) has.
Corosync's timers are never scaled. The value is made once per run from ``--timescale``
(conftest.py ``pytest_configure``, kept under harness.plugin.TIMESCALE) and validated
here, once; the clock, the predicted constants, the budget and the lab take it from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import ConfigError


class TimescaleError(ConfigError, ValueError):
    """A timescale that is not a finite number > 0."""


@dataclass(frozen=True)
class Timescale:
    factor: float

    def __post_init__(self) -> None:
        factor = self.factor
        number = isinstance(factor, (int, float)) and not isinstance(factor, bool)
        if not number or not math.isfinite(factor) or not factor > 0:
            shown = f"{factor:g}" if number else repr(factor)
            raise TimescaleError(f"timescale {shown} must be a finite number > 0",
                                 hint="use 1 for PVE's real timings, 0.1 for ten times faster")
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
