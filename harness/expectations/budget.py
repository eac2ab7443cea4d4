"""A user's recovery budget and the verdict on a measured figure: inside the predicted
window, and within the budget."""

from __future__ import annotations

from dataclasses import dataclass

from harness.expectations.windows import Window
from harness.timescale import Timescale


@dataclass(frozen=True)
class Budget:
    """A user's limit, given at timescale 1 and scaled like PVE's HA timers."""

    seconds_at_timescale_1: float
    timescale: Timescale

    def __post_init__(self) -> None:
        if not self.seconds_at_timescale_1 > 0:
            raise ValueError(f"budget must be > 0 s, got {self.seconds_at_timescale_1}")

    @property
    def seconds(self) -> float:
        return self.timescale.scaled(self.seconds_at_timescale_1)


@dataclass(frozen=True)
class Verdict:
    in_window: bool
    within_budget: bool
    message: str

    @property
    def ok(self) -> bool:
        return self.in_window and self.within_budget


def verdict(measured_s: float, window: Window, budget: Budget) -> Verdict:
    """Whether a measured figure lies in the predicted window and within the budget."""
    in_window = measured_s in window
    within_budget = measured_s <= budget.seconds
    parts = [f"measured {measured_s:.1f} s"]
    if in_window:
        parts.append(f"inside the predicted window {window}")
    elif measured_s < window.low_s:
        parts.append(f"EARLIER than the predicted window {window}: the constants or the "
                     "clock may be wrong, or PVE does not behave as modelled")
    else:
        parts.append(f"LATER than the predicted window {window}")
    parts.append(f"{'within' if within_budget else 'OVER'} the budget {budget.seconds:.1f} s"
                 + (f" ({budget.seconds_at_timescale_1:g} s at timescale 1)"
                    if not budget.timescale.is_real_time else ""))
    message = "; ".join(parts)
    if window.low_s > budget.seconds:
        message += (f"; this budget cannot be met by stock PVE with these constants "
                    f"(earliest predicted restart {window.low_s:.1f} s > budget "
                    f"{budget.seconds:.1f} s)")
    message += f"\n  basis: {window.basis}"
    return Verdict(in_window, within_budget, message)
