"""harness.clock: one monotonic clock and the timescale."""

from __future__ import annotations

import threading
import time

import pytest

from harness.clock import Clock
from harness.timescale import REAL_TIME, Timescale


def test_now_starts_near_zero_and_grows():
    clock = Clock()
    first = clock.now()
    time.sleep(0.01)
    assert 0 <= first < clock.now()


def test_scaled_multiplies_by_the_timescale():
    # (the timescale's own validation: tests/unit/test_timescale.py)
    assert Clock(Timescale(0.1)).scaled(120) == pytest.approx(12.0)
    assert Clock().scaled(120) == 120
    assert Clock().timescale is REAL_TIME


def test_wait_returns_early_when_stopped():
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert Clock().wait(5, stop) is True
    assert time.monotonic() - started < 1


def test_wait_without_stop_sleeps_and_reports_not_stopped():
    started = time.monotonic()
    assert Clock().wait(0.02) is False
    assert time.monotonic() - started >= 0.02
    assert Clock().wait(-1) is False  # a negative pause is no pause


def test_a_bare_number_is_refused_it_skipped_the_one_validation():
    with pytest.raises(TypeError, match="Timescale"):
        Clock(0.1)  # type: ignore[arg-type]
