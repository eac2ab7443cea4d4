"""harness.waits: bounded waits and what a timeout reports."""

from __future__ import annotations

import itertools
import time

import pytest

import harness.waits
from harness.clock import Clock
from harness.errors import NodeUnreachable, PvechaosError, WaitTimeout
from harness.timeline import Timeline
from harness.waits import NotYet, hold_for, hold_for_s, set_progress, wait_until


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


def test_progress_goes_to_the_sink_and_is_cleared_when_the_wait_ends():
    lines = []
    set_progress(lines.append, every_s=0.05)
    try:
        ticks = iter(range(100))
        wait_until("node2 to answer", lambda: next(ticks) >= 6, timeout_s=5, interval_s=0.03)
    finally:
        set_progress(None)
    assert lines and lines[-1] is None
    assert all(line.startswith("waiting for node2 to answer: ") and " s of 5 s" in line
               for line in lines[:-1])
    wait_until("a quick thing", lambda: True, timeout_s=5)  # default sink: nothing shown


def test_wait_timeout_is_a_pvechaos_error():
    assert issubclass(WaitTimeout, PvechaosError)


# -- hold_for: an absence over a period ---------------------------------------------------
def test_hold_for_returns_none_when_the_whole_period_held():
    tl = Timeline(Clock())
    calls = []

    def broken():
        calls.append(tl.clock.now())
        return None

    started = time.monotonic()  # before `until` is read: the hold ends 0.3 s after that
    until = tl.clock.now() + 0.3
    assert hold_for(tl, until, broken, "no failback", interval_s=0.02) is None
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + 0.5  # not before the end, and not long after it
    assert len(calls) >= 5  # watched all along, not a single look at the end
    assert calls[-1] >= until


def test_hold_for_ends_early_with_the_first_thing_that_broke_it():
    tl = Timeline(Clock())
    answers = iter([None, None, "vm:100 started on node1", "vm:100 started on node2"])
    started = time.monotonic()
    outcome = hold_for(tl, tl.clock.now() + 30.0, lambda: next(answers), "no recovery",
                       interval_s=0.01)
    assert outcome == "vm:100 started on node1"
    assert time.monotonic() - started < 5.0
    assert next(answers) == "vm:100 started on node2"  # no further look after the break


def test_hold_for_a_period_already_over_looks_once():
    tl = Timeline(Clock())
    calls = []
    assert hold_for(tl, tl.clock.now() - 1.0, lambda: calls.append(1), "x",
                    interval_s=0.01) is None
    assert calls == [1]
    assert hold_for(tl, tl.clock.now() - 1.0, lambda: "moved", "x") == "moved"


class FakeTime:
    """Stands in for the time module of harness.waits: sleeping advances the time."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class StoppedClock(Clock):
    def now(self) -> float:
        return 0.0


def test_hold_for_is_bounded_even_if_the_period_never_ends(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(harness.waits, "time", fake)
    tl = Timeline(StoppedClock())  # the timeline's clock never reaches the end
    with pytest.raises(WaitTimeout, match="no failback"):
        hold_for(tl, 10.0, lambda: None, "no failback", interval_s=0.5)
    assert 10.0 + 30.0 <= fake.t - 1000.0 < 10.0 + 30.0 + 1.0


# -- hold_for_s: the same over real seconds, without a timeline -------------------------
def test_hold_for_s_watches_the_whole_period_when_nothing_breaks():
    calls = []
    started = time.monotonic()
    assert hold_for_s(0.3, lambda: calls.append(time.monotonic()), "log unchanged",
                      interval_s=0.02) is None
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + 0.5
    assert len(calls) >= 5 and calls[-1] - started >= 0.3


def test_hold_for_s_ends_early_with_what_broke_it():
    answers = iter([None, None, "ct:100 answers from node2", "later"])
    started = time.monotonic()
    assert hold_for_s(30.0, lambda: next(answers), "the guest stays off",
                      interval_s=0.01) == "ct:100 answers from node2"
    assert time.monotonic() - started < 5.0
    assert next(answers) == "later"


def test_hold_for_s_of_no_time_looks_once():
    calls = []
    assert hold_for_s(0.0, lambda: calls.append(1), "x", interval_s=0.01) is None
    assert calls == [1]


def test_hold_for_s_counts_from_its_call_on_the_monotonic_clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(harness.waits, "time", fake)
    assert hold_for_s(10.0, lambda: None, "quiet", interval_s=0.5) is None
    assert 10.0 <= fake.t - 1000.0 < 10.0 + 0.5 + 1e-9


def test_a_wait_shows_no_secret_in_its_progress_or_its_timeout(capsys):
    with pytest.raises(WaitTimeout) as caught:
        wait_until("curl -H 'Authorization: PVEAPIToken=root@pam!ci=0b1c9c6e-5f11' to answer",
                   lambda: False, timeout_s=0.3, interval_s=0.05, progress_every_s=0.1)
    shown = capsys.readouterr().err
    assert "PVEAPIToken=root@pam!ci=[REDACTED]" in shown and "0b1c9c6e" not in shown
    assert "0b1c9c6e" not in str(caught.value)
