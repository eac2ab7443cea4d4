"""One recovery, measured: cut a node, wait (bounded) for the guest to serve again, and put
every figure on record with the window PVE's design predicts and the budget.

Figures, each from the timeline (the HA watcher's views, the probe's transitions, the
quorum watcher's views), in seconds from the fault:

| figure | until | judged against |
|---|---|---|
| time_to_detect | every survivor's membership dropped the node | detect_window |
| time_to_fence | a node's HA view shows the service in `fence` | fence_window |
| time_to_fence_ack | the service is taken from the dead node (lock acquired) | fence_ack_window |
| time_to_restart | the service is `started` on another node | recovery_window without LRM pickup |
| time_to_recovery | the probe hears the guest from another node | recovery_window, and the budget |
| downtime | time in between with no answer from the guest | (measured only) |

The behaviour check (``check_behaviour``) fails on any figure outside its window; the
budget check (``check_budget``) is separate, so a report tells "HA behaved as designed"
apart from "recovery met the budget".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.expectations import (
    Budget,
    ClusterConstants,
    Slack,
    Window,
    expected_one_window,
    fence_ack_window,
    fence_window,
    recovery_window,
    verdict,
)
from harness.faults import FaultInjector
from harness.ha_guest import HaGuest
from harness.metrics import (
    Metric,
    detect_window_seen,
    time_to_detect,
    time_to_fence,
    time_to_fence_ack,
    time_to_recovery,
    time_to_restart,
)
from harness.probes import Probe
from harness.steps import step
from harness.timeline import Event, Timeline
from harness.verdicts import BudgetExceeded, OutsideWindow
from harness.waits import NotYet, hold_for, wait_until

# What an observation lags behind what it observes (unscaled, real-world latencies).
# A watcher poll is stamped at its start: up to one command early; late by one poll
# interval plus one slow command on a busy machine.
WATCHER_SLACK = Slack(1.0, 2.5, "HA watcher: poll 0.5 s + command latency")
# The guest's own start comes on top of HA's restart: a guess for a small container on
# nested PVE (the embedded lab's guest starts in well under a second).
GUEST_START_S = 5.0


def probe_slack(probe: Probe) -> Slack:
    return Slack(0.5, probe.interval_s + probe.connect_timeout_s + GUEST_START_S,
                 f"probe: interval {probe.interval_s:g} s + attempt timeout "
                 f"{probe.connect_timeout_s:g} s + guest start {GUEST_START_S:g} s")


@dataclass
class Recovery:
    """What one measured recovery left: the fault, where the guest came back, figures."""

    fault: Event
    node: str  # the node cut (or, after `pvecm expected 1`, the node recovered on)
    master_at_fault: str | None
    restarted_on: str | None = None
    figures: dict[str, tuple[Metric, Window | None]] = field(default_factory=dict)
    judged: bool = True  # False: no window applies, every figure is measured

    @property
    def was_master(self) -> bool:
        return self.master_at_fault == self.node

    def check_behaviour(self, budget: Budget) -> None:
        """Fail when any windowed figure lies outside PVE's window (all named at once)."""
        findings = [verdict(m.value_s, w, budget).message for m, w in self.figures.values()
                    if m.in_window is False]
        if findings:
            raise OutsideWindow("HA did not behave as PVE designs it:\n" +
                                "\n".join(f"- {f}" for f in findings))

    def check_budget(self, name: str, budget: Budget) -> None:
        metric, window = self.figures[name]
        v = verdict(metric.value_s, window, budget)
        if not v.within_budget:
            raise BudgetExceeded(f"{name}: recovery budget missed: {v.message}")


class RecoveryMeter:
    """Measures recoveries of one guest; ``metrics`` is the plugin's MetricsRecorder."""

    def __init__(self, *, guest: HaGuest, probe: Probe, faults: FaultInjector,
                 timeline: Timeline, constants: ClusterConstants, budget: Budget,
                 metrics) -> None:
        self.guest, self.probe, self.faults = guest, probe, faults
        self.timeline, self.constants, self.budget = timeline, constants, budget
        self.metrics = metrics

    def master(self) -> str | None:
        status = self.guest.ha_status()
        return status.master.node if status.master else None

    def wait_serving(self, what: str, *, node: str | None = None,
                     away_from: str | None = None, timeout_s: float) -> str:
        """Wait until the probe hears the guest from ``node`` (or any node but
        ``away_from``); returns the node that answers."""
        def serving() -> str | NotYet:
            answer = self.probe.current
            if answer is None:
                return NotYet(f"no answer ({self.probe.last_error})")
            if (node and answer.node != node) or answer.node == away_from:
                return NotYet(f"answered from {answer.node}")
            return answer.node
        return wait_until(what, serving, timeout_s=timeout_s, interval_s=0.1)

    def power_cut(self, node: str, prefix: str = "") -> Recovery:
        """Cut ``node`` (which runs the guest) and measure the guest's recovery."""
        master = self.master()
        cut = self.faults.power_cut(node).started
        return self.measure(cut, node, master, prefix)

    def measure(self, cut: Event, node: str, master: str | None, prefix: str = "", *,
                judged: bool = True) -> Recovery:
        """Measure the guest's recovery away from ``node`` after ``cut`` (a power cut, or
        a corosync cut of a powered node, whose guest the majority recovers the same way:
        pve-faults §6.1); ``master``: the CRM master just before the cut. ``judged``
        False: PVE's design gives no window here, every figure is recorded as measured."""
        c = self.constants
        rec = Recovery(cut, node, master, judged=judged)
        master_died = rec.was_master
        window = recovery_window(c, master_died=master_died, slack=probe_slack(self.probe))
        rec.restarted_on = self.wait_serving(
            f"{self.guest.sid} to serve again away from {node} (predicted {window})",
            away_from=node, timeout_s=window.high_s + max(30.0, window.high_s / 2))
        survivors = [n for n in self.guest.cluster.names if n != node
                     and self.guest.cluster.lab.is_powered(n)]
        tags = {"node": node, "master_at_cut": master, "master_died": master_died,
                "since_t": round(cut.t, 3)}
        record = self._recorder(rec, prefix, tags)
        record("time_to_detect", lambda: time_to_detect(self.timeline, cut, survivors),
               lambda: detect_window_seen(c, self.timeline, cut, survivors))
        # once the acknowledgement is on the timeline, so is whatever `fence` was seen
        wait_until("the HA watcher to observe the fence acknowledgement",
                   lambda: time_to_fence_ack(self.timeline, cut, self.guest.sid) is not None,
                   timeout_s=10.0)
        fence = time_to_fence(self.timeline, cut, self.guest.sid)
        record("time_to_fence", lambda: _first(fence),
               fence_window(c, master_died=master_died, slack=WATCHER_SLACK),
               fence_state_seen=bool(fence and fence[1]))
        record("time_to_fence_ack", lambda: time_to_fence_ack(self.timeline, cut,
                                                               self.guest.sid),
               fence_ack_window(c, master_died=master_died, slack=WATCHER_SLACK))
        record("time_to_restart", lambda: _first(time_to_restart(
            self.timeline, cut, self.guest.sid, away_from=node)),
            recovery_window(c, master_died=master_died, lrm_pickup=False,
                            slack=WATCHER_SLACK))
        self._record_recovery(rec, prefix, tags, cut, window, away_from=node)
        return rec

    def after_expected_one(self, action: Event, survivor: str, prefix: str = "") -> Recovery:
        """After `pvecm expected` gave the survivors quorum back (`pvecm expected 1` on a
        lone survivor of three nodes): measure the guest's recovery on ``survivor``, the
        one HA picks among them (expected_one_window: every survivor's CRM waits for
        quorum alike, so the window does not depend on how many there are)."""
        c = self.constants
        rec = Recovery(action, survivor, None)
        window = expected_one_window(c, slack=probe_slack(self.probe))
        rec.restarted_on = self.wait_serving(
            f"{self.guest.sid} to serve again on {survivor} (predicted {window})",
            node=survivor, timeout_s=window.high_s + max(30.0, window.high_s / 2))
        rec.master_at_fault = self.master()
        tags = {"node": survivor, "master_after": rec.master_at_fault,
                "since_t": round(action.t, 3)}
        record = self._recorder(rec, prefix, tags)
        record("time_to_restart", lambda: _first(time_to_restart(
            self.timeline, action, self.guest.sid, on=survivor)),
            expected_one_window(c, lrm_pickup=False, slack=WATCHER_SLACK))
        # a recovery an operator started by hand: judged by its window, not the budget
        self._record_recovery(rec, prefix, tags, action, window, node=survivor,
                              budgeted=False)
        return rec

    # -- recording -------------------------------------------------------------------
    def _recorder(self, rec: Recovery, prefix: str, tags: dict):
        def record(name: str, measure, window: Window | Callable[[], Window] | None,
                   budget: Budget | None = None, **extra: object) -> None:
            full = prefix + name
            if not rec.judged:
                window = budget = None
            if callable(window):  # asked once: the metric and the figures keep one answer
                window = functools.cache(window)
            metric = self.metrics.record_observed(full, measure, window=window,
                                                  budget=budget, **tags, **extra)
            rec.figures[full] = (metric, window() if callable(window) else window)
        return record

    def _record_recovery(self, rec: Recovery, prefix: str, tags: dict, since: Event,
                         window: Window, *, away_from: str | None = None,
                         node: str | None = None, budgeted: bool = True) -> None:
        record = self._recorder(rec, prefix, tags)

        def recovered() -> float | None:
            found = time_to_recovery(self.timeline, since, self.guest.sid,
                                     away_from=away_from)
            if found is None or (node and found[1] != node):
                return None
            return found[0]
        record("time_to_recovery", recovered, window, self.budget if budgeted else None)
        value = rec.figures[prefix + "time_to_recovery"][0].value_s
        downtime = self.probe.downtime(since.t, since.t + value)
        self.metrics.record(prefix + "downtime", downtime, **tags,
                            restarted_on=rec.restarted_on)


def _first(found: tuple | None) -> float | None:
    return None if found is None else found[0]


def check_no_failback(guest: HaGuest, timeline: Timeline, constants: ClusterConstants,
                      probe: Probe, where: str) -> None:
    """After the cluster healed: every LRM reports again, then the guest stays on
    ``where`` for three CRM rounds and an LRM round and answers from there (no failback
    without group priorities, pve-model.md §9)."""
    with step("every LRM reports again"):
        guest.wait_lrms_reporting(on=where,
                                  timeout_s=constants.lrm_loop + constants.crm_loop + 60)
    hold = 3 * constants.crm_loop + constants.lrm_loop
    with step(f"{guest.sid} stays on {where} for {hold:.0f} s (no failback)"):
        def moved() -> str | None:
            placement = guest.placement(on=where)
            return None if placement == (where, "started") else f"HA shows {placement}"
        outcome = hold_for(timeline, timeline.clock.now() + hold, moved,
                           f"{hold:.0f} s of {guest.sid} staying on {where}")
        assert outcome is None, f"{guest.sid} moved after the heal: {outcome}"
        assert probe.current is not None and probe.current.node == where, \
            f"the guest answers from {probe.current} (the probe's last error: " \
            f"{probe.last_error})"
