"""harness.expectations.budget: a user's budget, scaled like PVE's HA timers, and the
verdict on a measured figure."""

from __future__ import annotations

import pytest

from harness.expectations import (
    Budget,
    ClusterConstants,
    Window,
    recovery_window,
    verdict,
)
from harness.timescale import REAL_TIME, Timescale

STOCK = ClusterConstants.stock(3, REAL_TIME)
TENTH = ClusterConstants.stock(3, Timescale(0.1))


# -- budgets and verdicts --------------------------------------------------------------
def test_budget_scales_with_the_timescale():
    assert Budget(150, Timescale(0.1)).seconds == pytest.approx(15.0)
    assert Budget(150, REAL_TIME).seconds == 150
    with pytest.raises(ValueError):
        Budget(0, REAL_TIME)


def test_verdict_inside_the_window_and_the_budget():
    v = verdict(130.1, recovery_window(STOCK, master_died=False), Budget(180, REAL_TIME))
    assert v.in_window and v.within_budget and v.ok
    assert "inside the predicted window [120.0, 151.0] s" in v.message
    assert "cannot be met" not in v.message


def test_verdict_over_budget_but_in_window():
    v = verdict(145.0, recovery_window(STOCK, master_died=False), Budget(140, REAL_TIME))
    assert v.in_window and not v.within_budget and not v.ok
    assert "OVER the budget 140.0 s" in v.message
    assert "cannot be met" not in v.message  # 120 s would meet it


def test_verdict_says_plainly_when_stock_pve_cannot_meet_the_budget():
    v = verdict(130.1, recovery_window(STOCK, master_died=False), Budget(60, REAL_TIME))
    assert not v.within_budget
    assert ("this budget cannot be met by stock PVE with these constants "
            "(earliest predicted restart 120.0 s > budget 60.0 s)") in v.message


def test_verdict_outside_the_window_both_ways():
    w = Window(10.0, 20.0, "test")
    early, late = verdict(5.0, w, Budget(30, REAL_TIME)), verdict(25.0, w, Budget(30, REAL_TIME))
    assert not early.in_window and "EARLIER" in early.message and early.within_budget
    assert not late.in_window and "LATER" in late.message and late.within_budget
    assert "basis: test" in late.message


def test_verdict_budget_at_a_timescale():
    v = verdict(14.0, recovery_window(TENTH, master_died=False), Budget(150, Timescale(0.1)))
    assert v.in_window and v.within_budget
    assert "15.0 s (150 s at timescale 1)" in v.message
