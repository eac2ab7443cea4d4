"""The whole HA story on one fresh three-node cluster, measured and checked for safety.

1. setup with the nodes' own commands: shared NFS storage, a container under HA
   (`--max_restart 1 --max_relocate 1`), running on the first node;
2. power cut of that node: the guest comes back on another node, within PVE's predicted
   window (and, as a separate item, within the budget);
3. power cut of the node now running the guest: the survivor has no quorum; HA recovers
   nothing however long you wait; the survivor does not reset itself;
4. `pvecm expected 1` on the survivor: the guest is recovered there, within its window;
5. power on the two others: the cluster is whole, and the guest stays where it is.

A probe watches the guest from outside, a watcher polls every node's `pvecm status` and
`ha-manager status`, and the safety invariants are checked all along: a step fails when
one breaks during it.
"""

from __future__ import annotations

from dataclasses import dataclass

import allure
import pytest

from harness.events import HaServiceState
from harness.expectations import detect_window, first_start_bound
from harness.metrics import time_to_heal, time_to_quorum, time_to_quorum_loss
from harness.recovery import Recovery, check_no_failback
from harness.timeline import EventKind
from harness.waits import NotYet, hold_for, wait_until

pytestmark = [pytest.mark.story, allure.severity(allure.severity_level.CRITICAL),
              allure.epic("HA story"), allure.feature("HA recovery"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

MEMBERSHIP_TIMEOUT_S = 60  # corosync's own timers (token + consensus ~ 8 s); not scaled


@dataclass
class Story:
    """What each step leaves for the next."""

    first: str = ""  # runs the guest at setup, loses power first
    second: str = ""  # where the guest came back: loses power second
    survivor: str = ""
    recovery: Recovery | None = None
    recovery_after_expected: Recovery | None = None
    survivor_boot: str = ""


@pytest.fixture(scope="module")
def story(cluster, story_nodes) -> Story:
    if len(cluster.names) != 3:  # its second cut must lose quorum: the 3-node plan
        pytest.skip(f"the HA story needs three nodes (the second cut loses quorum), the "
                    f"cluster has {len(cluster.names)}; the quorum story plans for any size")
    return Story(first=story_nodes.first)


@allure.story("Setup")
def test_setup_guest_under_ha(cluster, guest, story, constants, meter):
    first = story.first
    with allure.step(f"shared storage, pct create, ha-manager add {guest.sid} "
                     f"--max_restart 1 --max_relocate 1: started on {first}"):
        guest.set_up(first, timeout_s=first_start_bound(constants), max_restart=1, max_relocate=1)
        meter.wait_serving(f"{guest.sid} to answer from {first}", node=first, timeout_s=30)
    with allure.step("the guest's write log is readable"):
        wait_until("the guest's first writes", guest.log_exists, timeout_s=30)


@allure.story("Power cut of the guest's node")
def test_power_cut_guest_node_recovers_elsewhere(cluster, guest, story, meter,
        budget):
    first = story.first
    with allure.step(f"power cut {first}, wait for {guest.sid} to serve again elsewhere"):
        rec = meter.power_cut(first)
    story.recovery = rec
    story.second = rec.restarted_on or ""
    story.survivor = next(n for n in cluster.names if n not in (first, story.second))
    allure.dynamic.parameter("CRM master at the cut", f"{rec.master_at_fault}"
                             f" ({'the cut node' if rec.was_master else 'not the cut node'})")
    role = "CRM master" if rec.was_master else "not the CRM master"
    allure.dynamic.title(f"Power cut of {first} ({role}): {guest.sid} recovered on "
                         f"{story.second}")
    with allure.step("every figure inside PVE's predicted window"):
        rec.check_behaviour(budget)


@pytest.mark.budget
@allure.story("Recovery budget")
def test_recovery_meets_budget(story, budget):
    """time_to_recovery, as the power-cut step measured it, against --recovery-budget."""
    allure.dynamic.parameter("measured by", "test_power_cut_guest_node_recovers_elsewhere")
    allure.dynamic.severity(allure.severity_level.NORMAL)
    assert story.recovery is not None, "the power cut step did not measure a recovery"
    story.recovery.check_budget("time_to_recovery", budget)


@pytest.mark.quorum
@allure.story("Quorum loss: no recovery")
def test_power_cut_second_node_no_recovery_without_quorum(cluster, guest, story,
        faults, timeline, constants, probe, metrics):
    second, survivor = story.second, story.survivor
    node = cluster.node(survivor)
    story.survivor_boot = node.boot_id()
    with allure.step(f"power cut {second}"):
        cut = faults.power_cut(second).started
    with allure.step(f"{survivor}: not quorate"):
        wait_until(f"{survivor} to lose quorum",
                   lambda: not (s := node.quorum(timeout_s=5)).quorate or NotYet(s),
                   timeout_s=MEMBERSHIP_TIMEOUT_S)
        loss = metrics.record_observed("time_to_quorum_loss",
                                       lambda: time_to_quorum_loss(timeline, cut, survivor),
                                       window=detect_window(constants), node=second)
        assert loss.in_window, f"quorum lost after {loss.value_s:.2f} s, outside " \
            f"{loss.window_s}: {loss.data.get('window_basis')}"
    hold = constants.fence_delay + constants.lock_lifetime + constants.crm_loop \
        + constants.lrm_loop
    with allure.step(f"no recovery for {hold:.0f} s (fence delay + lock lifetime + one "
                     "CRM and one LRM round)"):
        def recovered_somewhere() -> str | None:
            if probe.up:
                return f"the guest answers from {probe.current.node}"
            moved = [(e.source, p) for e in timeline.events(EventKind.HA_SERVICE_STATE,
                                                            after=cut.t)
                     if (p := e.payload_of(HaServiceState)).sid == guest.sid
                     and p.node == survivor]
            if moved:
                source, seen = moved[0]
                return f"{source}'s HA view: {guest.sid} {seen.state} on {survivor}"
            return None
        outcome = hold_for(timeline, cut.t + hold, recovered_somewhere,
                           f"{hold:.0f} s without a recovery on the inquorate {survivor}")
        assert outcome is None, f"recovered without quorum: {outcome}"
    with allure.step(f"{survivor} did not reset itself; its LRM holds no active service"):
        assert node.boot_id() == story.survivor_boot, f"{survivor} rebooted (watchdog?)"
        status = guest.ha_status(on=survivor)
        lrm = status.lrms.get(survivor)
        assert lrm is None or lrm.status != "active", f"{survivor}'s LRM: {lrm}"
        assert not node.quorum(timeout_s=5).quorate
        placement = status.services.get(guest.sid)
        assert placement is not None and placement.node == second, placement


@pytest.mark.quorum
@allure.story("pvecm expected 1")
def test_expected_one_recovers_on_survivor(cluster, guest, story, faults, timeline,
        meter, budget, metrics):
    survivor = story.survivor
    node = cluster.node(survivor)
    with allure.step(f"pvecm expected 1 on {survivor}"):
        action = faults.action("pvecm expected 1", node=survivor)
        node.check("pvecm", "expected", "1", timeout_s=15)
    with allure.step(f"{survivor}: quorate"):
        wait_until(f"{survivor} quorate", lambda: node.quorum(timeout_s=5).quorate,
                   timeout_s=15)
        metrics.record_observed("time_to_quorum_after_expected",
                                lambda: time_to_quorum(timeline, action, survivor),
                                node=survivor)
    with allure.step(f"{guest.sid} recovered on {survivor}"):
        rec = meter.after_expected_one(action, survivor, prefix="after_expected_")
    story.recovery_after_expected = rec
    with allure.step("every figure inside PVE's predicted window"):
        rec.check_behaviour(budget)


@allure.story("Healing without failback")
def test_power_on_heals_without_failback(cluster, guest, story, faults, timeline,
        constants, probe, metrics):
    names, survivor = cluster.names, story.survivor
    with allure.step(f"power on {story.first} and {story.second}"):
        faults.power_on(story.first)
        last_on = faults.power_on(story.second).started
    for name in names:
        with allure.step(f"{name}: three members, expected votes 3, quorate"):
            cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_TIMEOUT_S)
    metrics.record_observed("time_to_heal", lambda: time_to_heal(timeline, last_on, names),
                            timeout_s=15)
    check_no_failback(guest, timeline, constants, probe, survivor)
