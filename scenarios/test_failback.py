"""Failback with node priorities, with PVE's own commands (pve-model.md §9; pve-operations
§3.4): on PVE 8 an HA group (`ha-manager groupadd pref --nodes PREF:2,NEXT:1`), on PVE 9
a node-affinity rule (`ha-manager rules add node-affinity pref --nodes PREF:2,NEXT:1
--resources <sid>`); which one comes from every node's `pveversion` (a cluster of mixed
majors has neither for all its nodes: skipped, saying so).

1. setup: the guest under HA on PREF, a node that is not the CRM master; NEXT is the
   first other node by name, the third node is outside the group (priority -1, §9.1);
2. power cut PREF: the guest is recovered on NEXT, the top priority class still online,
   within PVE's predicted window (§10.1);
3. power PREF on: with failback (PVE 8 `nofailback 0`, PVE 9 `failback 1`, the defaults)
   the guest migrates back to PREF, its top class (§9.1 "failback"; figure: time to
   failback, as measured);
4. nofailback: `ha-manager groupset pref --nofailback 1` (8) or `ha-manager set <sid>
   --failback 0` (9); power cut PREF again: recovered on NEXT;
5. power PREF on: the guest stays on NEXT (§9.1: with nofailback a service on an allowed
   member stays put).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import allure
import pytest

from harness import ha_admin, policy_steps, story_plan
from harness.errors import PvechaosError
from harness.expectations import MEASURED, first_start_bound
from harness.recovery import check_no_failback

pytestmark = [pytest.mark.story, pytest.mark.upgrade, allure.epic("Policies"),
              allure.feature("Failback"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

NAME = "pvechaos-pref"  # the group's or rule's name
COMMAND_TIMEOUT_S = 30.0


@dataclass
class Failback:
    kind: str  # policy_steps.GROUPS or RULES
    why: str
    pref: str = ""
    next: str = ""


@pytest.fixture(scope="module")
def fb(cluster, guest):
    """Groups or rules, from the cluster's versions; skips when neither fits. Removes the
    group or rule at the end (on a cluster that outlives the run, before the guest)."""
    kind, why = policy_steps.placement_config(cluster)
    if kind is None:
        pytest.skip(why)
    state = Failback(kind, why)
    yield state
    if not state.pref:
        return
    node = next((n for n in cluster.nodes() if cluster.lab.is_powered(n.name)), None)
    if node is None:
        return
    try:
        if kind == policy_steps.GROUPS:
            node.check("ha-manager", "set", guest.sid, "--delete", "group",
                       timeout_s=COMMAND_TIMEOUT_S)
            node.check("ha-manager", "groupremove", NAME, timeout_s=COMMAND_TIMEOUT_S)
        else:
            node.check("ha-manager", "rules", "remove", NAME, timeout_s=COMMAND_TIMEOUT_S)
    except PvechaosError as exc:
        warnings.warn(f"pvechaos: could not remove the HA {kind[:-1]} {NAME}: {exc}",
                      stacklevel=1)


def bound(c) -> float:
    """A bound (not a prediction) on a node rejoining and HA moving the guest."""
    return 4 * c.crm_loop + 3 * c.lrm_loop + 90.0


@allure.story("Setup")
def test_setup_guest_with_priorities(cluster, guest, fb, constants, meter):
    allure.dynamic.parameter("placement config", fb.why)
    guest.set_up(cluster.names[1], timeout_s=first_start_bound(constants))
    fb.pref, master = policy_steps.away_from_master(cluster, guest,
                                                    timeout_s=first_start_bound(constants))
    fb.next = next(n for n in cluster.names if n != fb.pref)
    nodes = f"{fb.pref}:2,{fb.next}:1"
    node = cluster.node(fb.pref)
    with allure.step(f"{fb.kind}: {NAME} with nodes {nodes}"):
        if fb.kind == policy_steps.GROUPS:
            node.check("ha-manager", "groupadd", NAME, "--nodes", nodes,
                       timeout_s=COMMAND_TIMEOUT_S)
            node.check("ha-manager", "set", guest.sid, "--group", NAME,
                       timeout_s=COMMAND_TIMEOUT_S)
        else:
            node.check("ha-manager", "rules", "add", "node-affinity", NAME, "--nodes", nodes,
                       "--resources", guest.sid, timeout_s=COMMAND_TIMEOUT_S)
    meter.wait_serving(f"{guest.sid} to answer from {fb.pref}", node=fb.pref, timeout_s=30)
    guest.wait_placement(fb.pref, "started", timeout_s=bound(constants))
    allure.dynamic.parameter("CRM master", master)


def cut_and_recover(cluster, guest, fb, meter, budget, prefix: str) -> None:
    """Power cut PREF: recovered on NEXT, the top class still online (§9.1), in window."""
    others = [n for n in cluster.names if n != fb.pref]
    chosen = story_plan.recovery_node(
        others, story_plan.load_of(ha_admin.ha_current(cluster).services.values()),
        story_plan.Affinity({fb.pref: 2, fb.next: 1}))
    assert chosen == fb.next, f"the plan picks {chosen}, not {fb.next}"
    with allure.step(f"power cut {fb.pref}: {guest.sid} recovered on {fb.next}"):
        rec = meter.power_cut(fb.pref, prefix)
    assert rec.restarted_on == fb.next, f"recovered on {rec.restarted_on}, not {fb.next}"
    with allure.step("every figure inside PVE's predicted window"):
        rec.check_behaviour(budget)


@allure.story("Failback")
def test_cut_preferred_node_recovers_on_next_priority(cluster, guest, fb, meter, budget):
    cut_and_recover(cluster, guest, fb, meter, budget, "failback.")


@allure.story("Failback")
def test_power_on_preferred_node_fails_back(cluster, guest, fb, faults, constants, meter,
                                           metrics, timeline):
    on = faults.power_on(fb.pref).started
    with allure.step(f"{guest.sid} migrates back to {fb.pref} (failback, §9.1)"):
        meter.wait_serving(f"{guest.sid} to answer from {fb.pref}", node=fb.pref,
                           timeout_s=bound(constants))
    metrics.record("failback.time_to_failback", timeline.clock.now() - on.t, prediction=MEASURED,
                   node=fb.pref, since="power on")
    guest.wait_placement(fb.pref, "started", timeout_s=bound(constants))


@allure.story("No failback")
def test_nofailback_cut_recovers_on_next_priority(cluster, guest, fb, constants, meter,
                                                 budget):
    policy_steps.wait_calm(cluster, guest, timeout_s=120.0)
    node = cluster.node(fb.next)
    with allure.step("nofailback 1 (PVE 8 group) / failback 0 (PVE 9 resource)"):
        if fb.kind == policy_steps.GROUPS:
            node.check("ha-manager", "groupset", NAME, "--nofailback", "1",
                       timeout_s=COMMAND_TIMEOUT_S)
        else:
            node.check("ha-manager", "set", guest.sid, "--failback", "0",
                       timeout_s=COMMAND_TIMEOUT_S)
    cut_and_recover(cluster, guest, fb, meter, budget, "nofailback.")


@allure.story("No failback")
def test_nofailback_power_on_stays(cluster, guest, fb, faults, constants, probe, timeline):
    faults.power_on(fb.pref)
    with allure.step(f"{fb.pref} back; {guest.sid} stays on {fb.next} (nofailback, §9.1)"):
        policy_steps.wait_calm(cluster, guest, timeout_s=120.0)
        check_no_failback(guest, timeline, constants, probe, fb.next)
