"""A node's wall clock stepped (pve-faults §7; harness/expectations ``clock_step``).

1. setup: a container under HA on the first node;
2. the node running the guest steps back by Δ = the status freshness limit (30 s) plus
   one LRM loop, scaled: its HA loops wait in ``sleep_until`` for Δ (§7.3), so the others
   show its LRM "old timestamp - dead?", but it is a member, nobody fences it, it does
   not reset (mux ages go negative) and the guest keeps running there; stepping forward
   again (the undo) is within watchdog - LRM loop, so no reset either;
3. the CRM master steps forward by the lock lifetime plus one LRM loop: its
   own renewal cannot pass and mux sees its client past the watchdog timeout at the next
   tick: it resets within the device timeout (§7.2, Derived); another node becomes
   master; the guest answers again (where: measured).

corosync and softdog run on the monotonic clock and do not notice (§7.1). The whole
story is ``extended`` (--all-faults).
"""

from __future__ import annotations

import allure
import pytest

from harness.events import HaNodeState, HaServiceState
from harness.expectations import NO_RESET, RESET, clock_step, first_start_bound, widen
from harness.recovery import WATCHER_SLACK
from harness.timeline import EventKind
from harness.waits import NotYet, hold_for, wait_until

pytestmark = [pytest.mark.story, pytest.mark.extended, allure.epic("Faults"),
              allure.feature("Clock faults"),
              allure.severity(allure.severity_level.NORMAL),
              pytest.mark.needs_verbs("clock_step"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

STATUS_FRESHNESS_S = 30.0  # `ha-manager status`: older is "old timestamp - dead?" (§7.1)
DEAD = "old timestamp - dead?"
BOOT_BOUND_S = 120.0  # a bound for the wait after a reset, not a prediction


@allure.story("Setup")
def test_setup_guest_under_ha(guest, story_nodes, constants, meter):
    guest.set_up(story_nodes.first, timeout_s=first_start_bound(constants))
    meter.wait_serving(f"{guest.sid} to answer", node=story_nodes.first, timeout_s=30)
    wait_until("the guest's first writes", guest.log_exists, timeout_s=30)


@allure.story("Clock stepped back on the guest's node")
def test_clock_back_on_the_guest_node(cluster, guest, faults, resets, constants, timeline,
                                     metrics, meter, settle, probe):
    c = constants
    node = settle()
    delta = c.s(STATUS_FRESHNESS_S) + c.lrm_loop
    assert clock_step(c, -delta, watchdog_open=True).outcome == NO_RESET
    assert clock_step(c, delta, watchdog_open=True).outcome == NO_RESET, \
        "the undo would be a forward step past the watchdog: choose a smaller step"
    boot = resets.boot(node)
    fault = faults.clock_step(node, -delta)
    t0 = fault.started.t
    until = t0 + delta + 2 * c.lrm_loop

    def dead_seen() -> bool:
        return any(p.node == node and p.status == DEAD and e.source != node
                   for e in timeline.events(EventKind.HA_NODE_STATE, after=t0)
                   if isinstance(p := e.payload, HaNodeState))

    def broke() -> str | None:
        seen = resets.changed(node, boot)
        if seen:
            return f"{node} reset: {seen}"
        moved = [p for e in timeline.events(EventKind.HA_SERVICE_STATE, after=t0)
                 if (p := e.payload_of(HaServiceState)).sid == guest.sid
                 and p.node not in (None, node)]
        return f"{guest.sid} moved: {moved[0]}" if moved else None
    try:
        with allure.step(f"{node} -{delta:.1f} s: no reset, {guest.sid} stays, for "
                         f"{until - t0:.1f} s"):
            outcome = hold_for(timeline, until, broke, f"{node}'s clock behind")
            assert outcome is None, f"after stepping {node} back: {outcome} (PVE: no " \
                "reset, nothing moves, §7.3)"
        with allure.step(f"another node's `ha-manager status` showed {node}'s LRM "
                         f"'{DEAD}'"):
            assert dead_seen(), f"no node showed lrm {node} '{DEAD}' during the step"
    finally:
        faults.end(fault)
    back = timeline.clock.now()
    with allure.step(f"stepped forward again: no reset for {2 * c.lrm_loop:.1f} s"):
        outcome = hold_for(timeline, back + 2 * c.lrm_loop + c.watchdog_device, broke,
                           f"{node}'s clock restored")
        assert outcome is None, f"after the step forward: {outcome}"
    metrics.record("clock_back.downtime", probe.downtime(t0, timeline.clock.now()),
                   node=node, step_s=-round(delta, 3))


@allure.story("Clock stepped forward on the CRM master")
def test_clock_forward_on_the_master(cluster, guest, faults, resets, constants, timeline,
                                    metrics, meter, settle):
    c = constants
    settle()
    master = meter.master()
    assert master is not None, "no CRM master"
    delta = c.lock_lifetime + c.lrm_loop
    prediction = clock_step(c, delta, watchdog_open=True)  # an active master holds one
    assert prediction.outcome == RESET and prediction.window is not None
    window = widen(prediction.window, WATCHER_SLACK)
    boot = resets.boot(master)
    fault = faults.clock_step(master, delta)
    t0 = fault.started.t
    try:
        with allure.step(f"{master} +{delta:.1f} s: it resets (predicted {window})"):
            t = resets.wait(master, boot, what=f"{master} to reset",
                            timeout_s=window.high_s + 30)
            m = metrics.record("clock_forward.time_to_reset", t - t0, window=window,
                               node=master, step_s=round(delta, 3))
            assert m.in_window, f"{master} reset {m.value_s:.2f} s after the step, " \
                f"outside {window}: {window.basis}"
        with allure.step(f"{master} boots again"):
            cluster.node(master).wait_reachable(timeout_s=BOOT_BOUND_S)
    finally:
        faults.end(fault)  # a node that reset has lost its offset: nothing to undo
    with allure.step("a master again, and the guest answers"):
        wait_until("an active master", lambda: (m := guest.ha_status().master) is not None
                   and m.status == "active" or NotYet(m),
                   timeout_s=c.lock_lifetime + c.fence_delay + 4 * c.crm_loop + 60)
        back = meter.wait_serving(f"{guest.sid} to answer", timeout_s=c.lock_lifetime
                                  + c.fence_delay + 4 * c.crm_loop + 60)
        allure.dynamic.parameter("answers from", back)
