"""The quorum half of the HA story, on a fresh cluster of three or more nodes.

The plan comes from the cluster (the ``quorum_plan`` fixture, harness/story_plan.py: the
node names and the votes `pvecm status` lists), so the same file runs on 3, 5 or 7 nodes;
the cut order is --story-nodes' or name order. With one vote per node:

1. preflight: every PVE requirement (harness/preflight.py: one PVE version, knet links
   and UDP between every pair, latency, clocks, watchdog, shared storage), every node a
   member, quorate, expected and total votes the node count, SSH between the nodes;
2. power cuts that keep quorum (node1 of 3; node1 and node2 of 5): after each the
   survivors list each other as members and stay quorate;
3. the power cut that leaves the survivors a minority (node2 of 3, node3 of 5): every
   survivor loses quorum and its /etc/pve turns read-only;
4. `pvecm expected` with the survivors' votes (1 of 3, 2 of 5) on the last node: every
   survivor quorate again, writes work;
5. power back on: every node a member, expected votes whole, quorate everywhere.

Every assertion is made on corosync's own answer, read through `pvecm status` over SSH;
the detection windows come from the constants of the cluster's real node count.
"""

from __future__ import annotations

import allure
import pytest

from harness import preflight
from harness.errors import NodeUnreachable
from harness.metrics import (
    detect_window_seen,
    quorum_loss_window_seen,
    time_to_detect,
    time_to_heal,
    time_to_quorum,
    time_to_quorum_loss,
)
from harness.pve import parse_pvecm_status
from harness.timeline import EventKind
from harness.waits import NotYet, wait_until

# `formation`: this story's cluster is always formed afresh (never a saved ready state,
# lab/embedded/ready.py), so every run proves `pvecm create` / `pvecm add` still form one
pytestmark = [pytest.mark.story, pytest.mark.formation,
              allure.severity(allure.severity_level.CRITICAL),
              pytest.mark.quorum, allure.epic("HA story"),
              allure.feature("Quorum")]

MEMBERSHIP_TIMEOUT_S = 60  # corosync's own timers (token + consensus ~ 8 s); not scaled


def outside(metric) -> str:
    low, high = metric.window_s
    return (f"{metric.name} {metric.value_s:.2f} s lies outside [{low:.1f}, {high:.1f}] s: "
            f"corosync did not drop the node as its constants predict "
            f"({metric.data.get('window_basis')})")


def view_of(cluster, name):
    return cluster.node(name).quorum(timeout_s=5)


@allure.story("Preflight")
def test_preflight(cluster, quorum_plan, quorum_watcher):
    names, plan = cluster.names, quorum_plan
    allure.dynamic.description(f"plan: {plan.describe()}")
    with allure.step("every PVE requirement, read-only (harness/preflight.py)"):
        results = preflight.run(cluster)
        preflight.attach(results)
        broken = preflight.failed(results)
        assert not broken, "preflight failed:\n" + preflight.render(broken)
    with allure.step(f"every node: quorate, {len(names)} members, expected and total votes "
                     f"{plan.expected_votes}"):
        for name in names:
            status = view_of(cluster, name)
            assert status.quorate, f"{name} is not quorate: {status}"
            assert sorted(map(cluster.name_of, status.member_names)) == sorted(names)
            assert (status.expected_votes, status.total_votes, status.quorum) == \
                (plan.expected_votes, plan.expected_votes, plan.quorum), status
    with allure.step("SSH between every pair of nodes"):
        for name in names:
            for other in names:
                if other != name:
                    target = cluster.node(other).cluster_address
                    cluster.node(name).check("ssh", "-o", "BatchMode=yes", f"root@{target}",
                                             "true", timeout_s=15)


@allure.story("Power cuts that keep quorum")
def test_power_cuts_keep_quorum(cluster, quorum_plan, faults, timeline, quorum_watcher,
                                metrics, constants):
    plan = quorum_plan
    if not plan.keeping:
        pytest.skip(f"the first cut already loses quorum ({plan.describe()})")
    for step in plan.keeping:
        with allure.step(f"power cut {step.node}"):
            cut = faults.power_cut(step.node).started
        for name in step.survivors:
            with allure.step(f"{name}: {len(step.survivors)} members, still quorate"):
                def members_quorate(name=name, step=step):
                    status = view_of(cluster, name)
                    members = sorted(map(cluster.name_of, status.member_names))
                    if status.quorate and members == list(step.survivors):
                        return status
                    return NotYet(f"quorate={status.quorate} members={members}")
                status = wait_until(f"{name} to see {step.node} gone and keep quorum",
                                    members_quorate, timeout_s=MEMBERSHIP_TIMEOUT_S)
                assert (status.nodes, status.total_votes, status.expected_votes) == \
                    (len(step.survivors), step.survivor_votes, plan.expected_votes), status
        with allure.step(f"{step.node} is unreachable over SSH"):
            node = cluster.node(step.node)
            node.close()  # drop the session opened before the cut: dial afresh
            with pytest.raises(NodeUnreachable):
                node.run("true", timeout_s=5)
        detect = metrics.record_observed(
            "time_to_detect", lambda cut=cut, step=step: time_to_detect(
                timeline, cut, step.survivors),
            window=lambda cut=cut, step=step: detect_window_seen(
                constants, timeline, cut, step.survivors),
            node=step.node)
        assert detect.in_window, outside(detect)


@allure.story("Quorum loss")
def test_power_cut_loses_quorum(cluster, quorum_plan, faults, timeline, quorum_watcher,
                                metrics, constants):
    plan = quorum_plan
    step = plan.losing
    with allure.step(f"power cut {step.node}"):
        cut = faults.power_cut(step.node).started
    for name in step.survivors:
        with allure.step(f"{name}: not quorate, Activity blocked, exit code 2"):
            def inquorate(name=name):
                result = cluster.node(name).run("pvecm", "status", timeout_s=5)
                if result.rc == 2 and "Activity blocked" in result.stdout:
                    return result
                return NotYet(f"exit code {result.rc}")
            result = wait_until(f"{name} to lose quorum", inquorate,
                                timeout_s=MEMBERSHIP_TIMEOUT_S)
            status = parse_pvecm_status(result.stdout)
            assert not status.quorate and status.activity_blocked
            assert (status.nodes, status.expected_votes, status.total_votes,
                    status.quorum) == (len(step.survivors), plan.expected_votes,
                                       step.survivor_votes, plan.quorum), status
        with allure.step(f"{name}: /etc/pve refuses writes"):
            write = wait_until(f"{name}'s /etc/pve to refuse writes",
                               lambda name=name: (r := cluster.node(name).can_write_pve()
                                                  ).rc != 0 and r, timeout_s=10)
            assert "Permission denied" in write.stderr, write.stderr
    loss = metrics.record_observed("time_to_quorum_loss",
                                   lambda: time_to_quorum_loss(timeline, cut, plan.survivor),
                                   window=lambda: quorum_loss_window_seen(
                                       constants, timeline, cut, plan.survivor),
                                   node=step.node)
    assert loss.in_window, outside(loss)


@allure.story("pvecm expected")
def test_expected_restores_quorum_on_survivors(cluster, quorum_plan, faults, timeline,
                                               quorum_watcher, metrics):
    plan = quorum_plan
    survivor, expected = plan.survivor, str(plan.expected_after_loss)
    node = cluster.node(survivor)
    with allure.step(f"pvecm expected {expected} on {survivor}"):
        action = faults.action(f"pvecm expected {expected}", node=survivor)
        node.check("pvecm", "expected", expected, timeout_s=15)
    for name in plan.survivors:
        with allure.step(f"{name}: quorate, expected votes {expected}"):
            status = wait_until(f"{name} quorate after pvecm expected {expected}",
                                lambda name=name: (s := view_of(cluster, name)).quorate and s,
                                timeout_s=15)
            assert (status.expected_votes, status.quorum) == \
                (plan.expected_after_loss, plan.quorum_after_expected), status
        with allure.step(f"{name}: /etc/pve accepts writes"):
            write = wait_until(f"{name}'s /etc/pve to accept writes",
                               lambda name=name: (r := cluster.node(name).can_write_pve()
                                                  ).rc == 0 and r, timeout_s=10)
            assert write.rc == 0
    metrics.record_observed("time_to_quorum_after_expected",
                            lambda: time_to_quorum(timeline, action, survivor), node=survivor)


@allure.story("Healing")
def test_power_on_heals_cluster(cluster, quorum_plan, faults, timeline, quorum_watcher,
                                metrics):
    names, cut = cluster.names, quorum_plan.cut_nodes
    with allure.step(f"power on {', '.join(cut)}"):
        last_on = [faults.power_on(name).started for name in cut][-1]
    for name in names:
        with allure.step(f"{name}: {len(names)} members, expected votes "
                         f"{quorum_plan.expected_votes}, quorate"):
            cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_TIMEOUT_S)
    metrics.record_observed("time_to_heal", lambda: time_to_heal(timeline, last_on, names),
                            timeout_s=15)
    assert timeline.events(EventKind.QUORUM_LOST, source=quorum_plan.survivor)
