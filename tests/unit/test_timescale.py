"""harness.timescale: the run's one timescale, validated once where it is made, and the
one place that multiplies a PVE duration by it."""

from __future__ import annotations

import math

import pytest

from harness.errors import ConfigError
from harness.timescale import REAL_TIME, Timescale


@pytest.mark.parametrize("factor", [0, -1, 0.0, float("nan"), math.inf, -math.inf, 0.009,
                                    10.5, 1e300])
def test_a_timescale_is_a_finite_number_from_a_hundredth_to_ten(factor):
    with pytest.raises(ConfigError,
                       match="timescale .* must be a finite number from 0.01 to 10") as info:
        Timescale(factor)
    assert isinstance(info.value, ValueError)  # also what a bad number is to Python
    assert "0.1" in (info.value.hint or "")


@pytest.mark.parametrize("factor", ["0.1", None, True])
def test_a_timescale_is_a_number(factor):
    with pytest.raises(ConfigError, match="timescale"):
        Timescale(factor)  # type: ignore[arg-type]


@pytest.mark.parametrize("factor", [0.01, 0.05, 1, 10])
def test_the_ends_of_the_range_are_timescales(factor):
    assert Timescale(factor).factor == factor


def test_scaled_multiplies_a_pve_duration_by_the_factor():
    assert Timescale(0.1).scaled(120) == pytest.approx(12.0)
    assert Timescale(2).scaled(60) == 120.0 and Timescale(2).factor == 2.0
    assert REAL_TIME.scaled(120) == 120 and REAL_TIME.is_real_time
    assert not Timescale(0.1).is_real_time


def test_it_prints_and_formats_as_its_factor():
    assert str(Timescale(0.1)) == "0.1" and f"{Timescale(0.05):g}" == "0.05"
    assert Timescale(0.1) == Timescale(0.1)
