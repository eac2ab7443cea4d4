"""Manual maintenance with PVE's own commands, as an administrator does it before working
on a node (pve-operations.md §4.1-§4.3; pve-model.md §8.2, §9):

1. setup: the HA guest runs on a node that is not the CRM master (HOME);
2. `ha-manager crm-command node-maintenance enable HOME`: the guest leaves HOME for the
   node HA's basic scheduler picks (least loaded online node, ties by name; a node in
   maintenance is not online, §9.1), HOME's LRM shows `maintenance mode` (figure: time
   to empty);
3. `systemctl poweroff` of HOME while in maintenance: the shutdown policy is ignored,
   the node is not fenced and the guest, elsewhere, is not touched (§8.2, §4.3), for
   the fence delay plus a whole lock lifetime;
4. power HOME on: it comes back still in maintenance (the request lives in the
   manager status, §4.3), the guest stays where it is;
5. `... node-maintenance disable HOME`: the guest returns to HOME, which is in its top
   priority class (no group: every node is; §4.2) (figure: time to return).

Runs unchanged on real PVE: only SSH with ha-manager, pvesh, systemctl, and the lab's
power switch to turn the node back on.
"""

from __future__ import annotations

from dataclasses import dataclass

import allure
import pytest

from harness import ha_admin, policy_steps, story_plan
from harness.events import EventKind, HaServiceState
from harness.expectations import MEASURED, first_start_bound
from harness.waits import NotYet, hold_for, wait_until

pytestmark = [pytest.mark.story, pytest.mark.upgrade, allure.epic("Policies"),
              allure.feature("Manual maintenance"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]


@dataclass
class Maintenance:
    home: str = ""
    master: str = ""
    target: str = ""  # where HA moves the guest during maintenance


@pytest.fixture(scope="module")
def plan() -> Maintenance:
    return Maintenance()


def move_timeout(constants) -> float:
    """A bound (not a prediction) on a request queued -> the guest moved: a CRM round to
    take it, an LRM round to pick it up, a CRM round to move, the move itself."""
    return 3 * constants.crm_loop + 2 * constants.lrm_loop + 60.0


@allure.story("Setup")
def test_setup_guest_on_a_node_that_is_not_the_master(cluster, guest, plan, constants,
                                                        meter):
    first = cluster.names[1]
    guest.set_up(first, timeout_s=first_start_bound(constants))
    plan.home, plan.master = policy_steps.away_from_master(
        cluster, guest, timeout_s=first_start_bound(constants))
    meter.wait_serving(f"{guest.sid} to answer from {plan.home}", node=plan.home,
                       timeout_s=30)
    allure.dynamic.parameter("home", plan.home)
    allure.dynamic.parameter("CRM master", plan.master)


@allure.story("Maintenance on: the node empties")
def test_enable_moves_the_guest_away(cluster, guest, plan, faults, constants, meter,
                                     metrics, timeline):
    online = [n for n in cluster.names if n != plan.home]
    plan.target = story_plan.recovery_node(
        online, story_plan.load_of(ha_admin.ha_current(cluster).services.values()))
    start = faults.action(f"ha-manager crm-command node-maintenance enable {plan.home}")
    with allure.step(f"node-maintenance enable {plan.home}"):
        ha_admin.maintenance_on(cluster, plan.home)
    with allure.step(f"{plan.home} empty, its LRM in maintenance mode (pve-operations §4.1)"):
        status = ha_admin.wait_node_empty(cluster, plan.home,
                                          timeout_s=move_timeout(constants))
    empty_t = timeline.clock.now()
    with allure.step(f"{guest.sid} serves from {plan.target}, HA's choice (§9.1)"):
        meter.wait_serving(f"{guest.sid} to answer from {plan.target}", node=plan.target,
                           timeout_s=move_timeout(constants))
    line = status.services.get(guest.sid)
    assert line is not None and line.node == plan.target, \
        f"HA moved {guest.sid} to {line and line.node}, not to {plan.target}"
    metrics.record("time_to_empty", empty_t - start.t, node=plan.home, prediction=MEASURED)


@allure.story("Poweroff in maintenance: not fenced")
def test_poweroff_in_maintenance_is_not_fenced(cluster, guest, plan, faults, probe,
                                               constants, timeline):
    survivors = [n for n in cluster.names if n != plan.home]
    action = faults.action(f"systemctl poweroff {plan.home} (in maintenance)", plan.home)
    with allure.step(f"systemctl poweroff {plan.home}"):
        ha_admin.poweroff(cluster, plan.home, timeout_s=move_timeout(constants))
    left = policy_steps.wait_seen(
        f"{plan.home} to leave the membership",
        lambda: policy_steps.left_membership(timeline, plan.home, action, survivors))
    hold = constants.fence_delay + constants.lock_lifetime + 2 * constants.crm_loop
    with allure.step(f"{hold:.0f} s (fence delay + lock lifetime + 2 CRM rounds): no fence, "
                     f"{guest.sid} keeps serving from {plan.target}"):
        def touched() -> str | None:
            fenced = [e for e in timeline.events(EventKind.HA_SERVICE_STATE, after=action.t)
                      if e.payload_of(HaServiceState).state in ("fence", "recovery")]
            if fenced:
                p = fenced[0].payload_of(HaServiceState)
                return f"{fenced[0].source}'s view: {p.sid} {p.state} on {p.node}"
            current = probe.current
            if current is None or current.node != plan.target:
                return f"the guest answers {current}"
            return None
        outcome = hold_for(timeline, left.t + hold, touched,
                           f"{hold:.0f} s without fencing {plan.home}")
        assert outcome is None, f"the node in maintenance was fenced or its guest moved: " \
            f"{outcome}"
    assert probe.downtime(action.t) == 0.0, \
        f"the guest was down {probe.downtime(action.t):.2f} s while {plan.home} went off"


@allure.story("Power on: still in maintenance")
def test_power_on_comes_back_in_maintenance(cluster, guest, plan, faults, constants, probe):
    faults.power_on(plan.home)
    with allure.step(f"{plan.home} rejoins, its LRM reports maintenance mode again"):
        policy_steps.wait_calm(cluster, guest, timeout_s=120.0)

        def in_maintenance() -> bool | NotYet:
            lrm = ha_admin.ha_current(cluster).lrms.get(plan.home)
            return (lrm is not None and lrm.status == ha_admin.MAINTENANCE_MODE) \
                or NotYet(lrm)
        wait_until(f"{plan.home}'s LRM in maintenance mode", in_maintenance,
                   timeout_s=move_timeout(constants))
    assert probe.current is not None and probe.current.node == plan.target, \
        f"the guest answers {probe.current}, not from {plan.target}"
    assert ha_admin.node_occupancy(ha_admin.ha_current(cluster), plan.home) is None


@allure.story("Maintenance off: the guest returns")
def test_disable_brings_the_guest_back(cluster, guest, plan, faults, constants, meter,
                                       metrics, timeline):
    start = faults.action(f"ha-manager crm-command node-maintenance disable {plan.home}")
    with allure.step(f"node-maintenance disable {plan.home}"):
        ha_admin.maintenance_off(cluster, plan.home)
    with allure.step(f"{guest.sid} back on {plan.home} (pve-operations §4.2)"):
        meter.wait_serving(f"{guest.sid} to answer from {plan.home}", node=plan.home,
                           timeout_s=move_timeout(constants))
    back_t = timeline.clock.now()
    guest.wait_placement(plan.home, "started", timeout_s=move_timeout(constants))
    lrm = ha_admin.ha_current(cluster).lrms[plan.home]
    assert lrm.status != ha_admin.MAINTENANCE_MODE, f"{plan.home}'s LRM: {lrm.status}"
    metrics.record("time_to_return", back_t - start.t, node=plan.home, prediction=MEASURED)
