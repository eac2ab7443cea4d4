"""harness.waits: bounded waits and what a timeout reports."""

from __future__ import annotations

import itertools
import time

import pytest

from harness.errors import NodeUnreachable, PvechaosError, WaitTimeout
from harness.waits import NotYet, wait_until


def test_returns_the_first_truthy_value():
    answers = iter([None, 0, "", {"quorate": True}])
    assert wait_until("quorum", lambda: next(answers), timeout_s=2,
                      interval_s=0.01) == {"quorate": True}


def test_not_yet_is_falsy_and_prints_what_was_seen():
    seen = NotYet("node2 quorate=False")
    assert not seen
    assert str(seen) == repr(seen) == "node2 quorate=False"


def test_timeout_reports_the_last_not_yet_reason():
    counter = itertools.count(1)
    with pytest.raises(WaitTimeout) as info:
        wait_until("node2 to lose quorum", lambda: NotYet(f"poll {next(counter)} quorate"),
                   timeout_s=0.3, interval_s=0.05)
    message = str(info.value)
    assert "node2 to lose quorum" in message
    last = next(counter) - 1
    assert f"poll {last} quorate" in message
    assert f"after {last} checks" in message
    assert info.value.what == "node2 to lose quorum"
    assert info.value.timeout_s >= 0.3


def test_a_pvechaos_error_counts_as_not_yet_and_is_reported():
    calls = []

    def condition():
        calls.append(1)
        if len(calls) < 3:
            raise NodeUnreachable("node2", "198.18.0.12", "connection refused")
        return "up"

    assert wait_until("node2", condition, timeout_s=2, interval_s=0.01) == "up"


def test_a_pvechaos_error_until_the_end_is_what_the_timeout_reports():
    def unreachable():
        raise NodeUnreachable("node3", "198.18.0.13", "connection refused")

    with pytest.raises(WaitTimeout, match="node3 .* connection refused"):
        wait_until("node3", unreachable, timeout_s=0.3, interval_s=0.05)


def test_other_exceptions_are_not_swallowed():
    def broken():
        raise KeyError("bug in the condition")

    with pytest.raises(KeyError):
        wait_until("x", broken, timeout_s=1, interval_s=0.01)


@pytest.mark.parametrize("interval_s", [0.05, 10.0])
def test_the_wait_is_bounded_by_its_timeout(interval_s):
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        wait_until("never", lambda: False, timeout_s=0.3, interval_s=interval_s)
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + 0.5


def test_the_condition_is_checked_at_least_once_even_with_zero_timeout():
    assert wait_until("now", lambda: 42, timeout_s=0, interval_s=0.01) == 42
    with pytest.raises(WaitTimeout, match="after 1 checks"):
        wait_until("now", lambda: NotYet("no"), timeout_s=0, interval_s=0.01)


def test_long_waits_print_progress(capsys):
    with pytest.raises(WaitTimeout):
        wait_until("slow thing", lambda: False, timeout_s=0.3, interval_s=0.05,
                   progress_every_s=0.1)
    assert "waiting for slow thing" in capsys.readouterr().err


def test_wait_timeout_is_a_pvechaos_error():
    assert issubclass(WaitTimeout, PvechaosError)
