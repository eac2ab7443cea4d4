"""The whole HA story on one fresh cluster, measured and checked for safety.

The plan comes from the cluster (harness/story_plan.py: the node names, the votes
`pvecm status` lists, HA's own choice of recovery node), so the same file runs on 3, 5 or
7 nodes. The steps, with three nodes (and five):

1. setup with the nodes' own commands: shared NFS storage, a container under HA
   (`--max_restart 1 --max_relocate 1`), running on the first node;
2. power cut of that node: the guest comes back on the node HA's basic scheduler picks
   (the least loaded online node, ties by name: node2), within PVE's predicted window
   (and, as a separate item, within the budget);
3. power cut of the node now running the guest and, right after it, of further nodes
   until the survivors are a minority (node2 of 3; node2 and node3 of 5): the survivors
   have no quorum; HA recovers nothing however long you wait; no survivor resets itself;
4. `pvecm expected` with the survivors' votes (1 of 3; 2 of 5) on the last node: the
   guest is recovered on the survivor HA picks (node3 of 3; node4 of 5), within its
   window;
5. power on the others: the cluster is whole, and the guest stays where it is.

The cuts of step 3 follow each other within seconds, well inside corosync's token
timeout, so the survivors see one membership change that takes their quorum (with five
nodes there is no quorate moment without the guest's node in which HA could recover).

A probe watches the guest from outside, a watcher polls every node's `pvecm status` and
`ha-manager status`, and the safety invariants are checked all along: a step fails when
one breaks during it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import allure
import pytest

from harness import story_plan
from harness.events import HaServiceState
from harness.expectations import first_start_bound
from harness.metrics import (
    quorum_loss_window_seen,
    time_to_heal,
    time_to_quorum,
    time_to_quorum_loss,
)
from harness.recovery import Recovery, check_no_failback
from harness.report import node_logs
from harness.timeline import EventKind
from harness.waits import NotYet, hold_for, wait_until

pytestmark = [pytest.mark.story, allure.severity(allure.severity_level.CRITICAL),
              allure.epic("HA story"), allure.feature("HA recovery"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

MEMBERSHIP_TIMEOUT_S = 60  # corosync's own timers (token + consensus ~ 8 s); not scaled


@dataclass
class Story:
    """What each step leaves for the next."""

    first: str  # runs the guest at setup, loses power first
    order: tuple[str, ...]  # the planned cut order (story_nodes): first, ..., survivor
    votes: dict[str, int]  # node -> votes, from `pvecm status` of the whole cluster
    expected_votes: int
    plan: story_plan.QuorumPlan | None = None  # once HA chose where the guest came back
    recovery: Recovery | None = None
    recovery_after_expected: Recovery | None = None
    target: str = ""  # the survivor HA recovers the guest to after `pvecm expected`
    survivor_boots: dict[str, str] = field(default_factory=dict)

    @property
    def second(self) -> str:
        """Where the guest came back after the first cut: cut first in step 3."""
        return self.plan.cuts[1].node if self.plan else ""

    @property
    def survivor(self) -> str:
        """Where `pvecm expected` runs."""
        return self.plan.survivor if self.plan else ""


def fail_if_rebooted(cluster, timeline, story: Story, name: str, since, around: str, *,
                     why: str = "") -> None:
    """Fail with the node's watchdog trail when ``name`` booted again since the cuts."""
    before = story.survivor_boots.get(name)
    if before is None or cluster.node(name).boot_id() == before:
        return
    trail = node_logs.watchdog_trail(
        cluster, name, timeline.clock.wall(since.t - node_logs.LEAD_S))
    pytest.fail(f"{why}{name} rebooted (watchdog?); its logs around {around}:\n{trail}")


@pytest.fixture(scope="module")
def story(cluster, story_nodes) -> Story:
    status = cluster.node(story_nodes.survivor).quorum(timeout_s=10)
    votes = story_plan.votes_from_status(status, cluster.names, cluster.name_of)
    try:
        plan = story_plan.plan_quorum(votes, status.expected_votes, story_nodes.order)
    except story_plan.PlanUnsupported as exc:
        pytest.skip(f"the cluster lacks the HA story's shape: {exc}")
    if not plan.cuts[0].quorate:
        pytest.skip(f"cutting {plan.cuts[0].node} alone loses quorum ({plan.describe()}): "
                    "HA could not recover its guest")
    return Story(first=story_nodes.first, order=story_nodes.order, votes=votes,
                 expected_votes=status.expected_votes)


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
    online = [n for n in cluster.names if n != first]
    chosen = story_plan.recovery_node(
        online, story_plan.load_of(guest.ha_status().services.values()))
    with allure.step(f"power cut {first}, wait for {guest.sid} to serve again elsewhere"):
        rec = meter.power_cut(first)
    story.recovery = rec
    assert rec.restarted_on is not None, f"{guest.sid} was not restarted anywhere"
    story.plan = story_plan.plan_quorum(
        story.votes, story.expected_votes,
        story_plan.after_recovery(story.order, rec.restarted_on))
    allure.dynamic.description(f"plan after the recovery: {story.plan.describe()}")
    allure.dynamic.parameter("CRM master at the cut", f"{rec.master_at_fault}"
                             f" ({'the cut node' if rec.was_master else 'not the cut node'})")
    role = "CRM master" if rec.was_master else "not the CRM master"
    allure.dynamic.title(f"Power cut of {first} ({role}): {guest.sid} recovered on "
                         f"{story.second}")
    with allure.step(f"HA chose {chosen}, as its basic scheduler does (least loaded "
                     f"online node, ties by name; pve-model.md §9.1)"):
        assert rec.restarted_on == chosen, \
            f"{guest.sid} came back on {rec.restarted_on}, not on {chosen}"
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
    assert story.plan is not None, "the first power cut did not leave a plan"
    losing = story.plan.losing
    cuts, survivors, second = story.plan.cut_nodes[1:], losing.survivors, story.second
    story.survivor_boots = {n: cluster.node(n).boot_id() for n in survivors}
    with allure.step(f"power cut {', '.join(cuts)}: {', '.join(survivors)} keep "
                     f"{losing.survivor_votes} of {story.expected_votes} votes"):
        cut = faults.power_cut(second).started
        for node in cuts[1:]:  # back to back: one membership change takes the quorum
            faults.power_cut(node)
    for name in survivors:
        node = cluster.node(name)
        with allure.step(f"{name}: not quorate"):
            wait_until(f"{name} to lose quorum",
                       lambda node=node: not (s := node.quorum(timeout_s=5)).quorate
                       or NotYet(s), timeout_s=MEMBERSHIP_TIMEOUT_S)
    loss = metrics.record_observed("time_to_quorum_loss",
                                   lambda: time_to_quorum_loss(timeline, cut, story.survivor),
                                   window=lambda: quorum_loss_window_seen(
                                       constants, timeline, cut, story.survivor),
                                   node=second)
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
                     and p.node in survivors]
            if moved:
                source, seen = moved[0]
                return f"{source}'s HA view: {guest.sid} {seen.state} on {seen.node}"
            return None
        outcome = hold_for(timeline, cut.t + hold, recovered_somewhere,
                           f"{hold:.0f} s without a recovery on the inquorate "
                           f"{', '.join(survivors)}")
        assert outcome is None, f"recovered without quorum: {outcome}"
    for name in survivors:
        node = cluster.node(name)
        with allure.step(f"{name} did not reset itself; its LRM holds no active service"):
            fail_if_rebooted(cluster, timeline, story, name, cut, "the cut")
            status = guest.ha_status(on=name)
            lrm = status.lrms.get(name)
            assert lrm is None or lrm.status != "active", f"{name}'s LRM: {lrm}"
            assert not node.quorum(timeout_s=5).quorate
            placement = status.services.get(guest.sid)
            assert placement is not None and placement.node == second, placement


@pytest.mark.quorum
@allure.story("pvecm expected 1")
def test_expected_one_recovers_on_survivor(cluster, guest, story, faults, timeline,
        meter, budget, metrics):
    """`pvecm expected` with the survivors' votes: 1 on three nodes (the seed's
    `pvecm expected 1`), 2 on five."""
    assert story.plan is not None, "the first power cut did not leave a plan"
    survivor, survivors = story.survivor, story.plan.survivors
    expected = story.plan.expected_after_loss
    node = cluster.node(survivor)
    with allure.step(f"pvecm expected {expected} on {survivor}"):
        action = faults.action(f"pvecm expected {expected}", node=survivor)
        node.check("pvecm", "expected", str(expected), timeout_s=15)
    for name in survivors:
        with allure.step(f"{name}: quorate"):
            wait_until(f"{name} quorate", lambda n=name: cluster.node(n).quorum(
                timeout_s=5).quorate, timeout_s=15)
    metrics.record_observed("time_to_quorum_after_expected",
                            lambda: time_to_quorum(timeline, action, survivor),
                            node=survivor)
    # the only HA service is the guest, on a dead node: every survivor carries none
    story.target = story_plan.recovery_node(survivors, {})
    with allure.step(f"{guest.sid} recovered on {story.target} (HA's pick among "
                     f"{', '.join(survivors)})"):
        rec = meter.after_expected_one(action, story.target, prefix="after_expected_")
    story.recovery_after_expected = rec
    with allure.step("every figure inside PVE's predicted window"):
        rec.check_behaviour(budget)


@allure.story("Healing without failback")
def test_power_on_heals_without_failback(cluster, guest, story, faults, timeline,
        constants, probe, metrics):
    assert story.plan is not None, "the first power cut did not leave a plan"
    names, cut = cluster.names, story.plan.cut_nodes
    with allure.step(f"power on {', '.join(cut)}"):
        for node in cut:
            last_on = faults.power_on(node).started
    for name in names:
        with allure.step(f"{name}: {len(names)} members, expected votes "
                         f"{story.expected_votes}, quorate"):
            cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_TIMEOUT_S)
    metrics.record_observed("time_to_heal", lambda: time_to_heal(timeline, last_on, names),
                            timeout_s=15)
    try:
        check_no_failback(guest, timeline, constants, probe, story.target)
    except AssertionError as exc:  # the guest's node reset while the others came back?
        fail_if_rebooted(cluster, timeline, story, story.target, last_on, "the power-on",
                         why=f"{exc}: ")
        raise
