"""The simulator's fake clock (pvemu/ha/sim_scheduler.py), driven by hand-made daemons."""

import pytest

from pvemu.ha.sim_scheduler import Scheduler


def recorder(clock: Scheduler, log: list, name: str, sleeps):
    """A daemon that notes (time, name) at each step and sleeps as told, then exits."""
    for sleep in sleeps:
        log.append((clock.t, name))
        yield sleep
    log.append((clock.t, f"{name} exits"))


def test_each_daemon_sleeps_exactly_what_it_yields():
    clock, log = Scheduler(), []
    clock.spawn("node1", "lrm", recorder(clock, log, "lrm", [10, 5, 0.5]))
    clock.run_until(100)
    assert log == [(0, "lrm"), (10, "lrm"), (15, "lrm"), (15.5, "lrm exits")]
    assert clock.t == 100


def test_one_instant_runs_callbacks_first_then_daemons_by_node_then_crm_lrm_watchdog():
    clock, log = Scheduler(), []
    for node, daemon in [("node2", "watchdog"), ("node2", "crm"), ("node1", "lrm"),
                         ("node1", "watchdog"), ("node1", "crm")]:
        clock.spawn(node, daemon, recorder(clock, log, f"{node}/{daemon}", [5]))
    clock.call_at(0, lambda: log.append((clock.t, "first callback")))
    clock.call_at(0, lambda: log.append((clock.t, "second callback")))
    clock.run_until(0)
    assert [what for _, what in log] == [
        "first callback", "second callback", "node1/crm", "node1/lrm", "node1/watchdog",
        "node2/crm", "node2/watchdog"]


def test_run_until_stops_at_the_bound_and_run_for_is_relative():
    clock, log = Scheduler(), []
    clock.call_at(30, lambda: log.append(clock.t))
    clock.call_at(30.5, lambda: log.append(clock.t))
    clock.run_until(30)
    assert log == [30]
    clock.run_for(0.25)
    assert (log, clock.t) == ([30], 30.25)
    clock.run_for(0.25)
    assert log == [30, 30.5]


def test_time_never_goes_back_for_a_callback_queued_in_the_past():
    clock, log = Scheduler(), []
    clock.run_until(50)
    clock.call_at(10, lambda: log.append(clock.t))
    clock.run_until(60)
    assert log == [50]


def test_wake_interrupts_a_sleep_and_drops_the_old_wake_up():
    clock, log = Scheduler(), []
    task = clock.spawn("node1", "lrm", recorder(clock, log, "lrm", [100, 100, 100]))
    clock.call_at(3, lambda: clock.wake(task))
    clock.run_until(150)
    assert log == [(0, "lrm"), (3, "lrm"), (103, "lrm")]


def test_on_exit_runs_when_the_daemon_returns_but_not_when_it_was_killed():
    clock, log, exits = Scheduler(), [], []
    clock.spawn("node1", "crm", recorder(clock, log, "crm", [1]), lambda: exits.append("crm"))
    lrm = clock.spawn("node1", "lrm", recorder(clock, log, "lrm", [1, 1, 1]),
                      lambda: exits.append("lrm"))
    clock.call_at(1.5, lambda: setattr(lrm, "alive", False))  # what a power cut does
    clock.call_at(1.6, lambda: clock.wake(lrm))  # a dead task cannot be woken
    clock.run_until(10)
    assert exits == ["crm"]
    assert log == [(0, "crm"), (0, "lrm"), (1, "crm exits"), (1, "lrm")]


def test_negative_sleeps_count_as_zero():
    clock, log = Scheduler(), []
    clock.spawn("node1", "lrm", recorder(clock, log, "lrm", [5, -3, 1]))
    clock.run_until(10)
    assert log == [(0, "lrm"), (5, "lrm"), (5, "lrm"), (6, "lrm exits")]


def test_a_daemon_that_never_sleeps_stops_the_run():
    def busy():
        while True:
            yield 0

    clock = Scheduler()
    clock.spawn("node3", "crm", busy())
    with pytest.raises(RuntimeError, match="node3/crm loops without sleeping"):
        clock.run_until(1)


def test_a_thousand_zero_sleeps_in_a_row_are_still_allowed():
    def bursts():
        for _ in range(3):
            for _ in range(1000):
                yield 0
            yield 1

    clock = Scheduler()
    task = clock.spawn("node1", "lrm", bursts())
    clock.run_until(10)
    assert not task.alive and clock.t == 10
