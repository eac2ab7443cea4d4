"""The quorum half of the HA story, on a fresh three-node cluster.

1. preflight: every PVE requirement (harness/preflight.py: one PVE version, knet links
   and UDP between every pair, latency, clocks, watchdog, shared storage), three
   members, quorate, votes 3/3, SSH between the nodes;
2. power cut of the first node: the other two keep quorum with two members;
3. power cut of the second node: the survivor loses quorum and /etc/pve turns read-only;
4. `pvecm expected 1` on the survivor: quorate again, writes work;
5. power back on: three members, expected votes 3, quorate everywhere.

Every assertion is made on corosync's own answer, read through `pvecm status` over SSH.
"""

from __future__ import annotations

import allure
import pytest

from harness import preflight
from harness.errors import NodeUnreachable
from harness.expectations import detect_window
from harness.metrics import time_to_detect, time_to_heal, time_to_quorum, time_to_quorum_loss
from harness.pve import parse_pvecm_status
from harness.timeline import EventKind
from harness.waits import NotYet, wait_until

pytestmark = [pytest.mark.story, allure.severity(allure.severity_level.CRITICAL),
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
def test_preflight(cluster, story_nodes, quorum_watcher):
    names = cluster.names
    with allure.step("every PVE requirement, read-only (harness/preflight.py)"):
        results = preflight.run(cluster)
        preflight.attach(results)
        broken = preflight.failed(results)
        assert not broken, "preflight failed:\n" + preflight.render(broken)
    with allure.step("every node: quorate, three members, expected and total votes 3"):
        for name in names:
            status = view_of(cluster, name)
            assert status.quorate, f"{name} is not quorate: {status}"
            assert sorted(map(cluster.name_of, status.member_names)) == sorted(names)
            assert (status.expected_votes, status.total_votes) == (3, 3), status
    with allure.step("SSH between every pair of nodes"):
        for name in names:
            for other in names:
                if other != name:
                    target = cluster.node(other).cluster_address
                    cluster.node(name).check("ssh", "-o", "BatchMode=yes", f"root@{target}",
                                             "true", timeout_s=15)


@allure.story("Power cut of one node")
def test_power_cut_first_node_keeps_quorum(cluster, story_nodes, faults, timeline,
                                           quorum_watcher, metrics, constants):
    first = story_nodes.first
    survivors = (story_nodes.second, story_nodes.survivor)
    with allure.step(f"power cut {first}"):
        cut = faults.power_cut(first).started
    for name in survivors:
        with allure.step(f"{name}: two members, still quorate"):
            def two_members(name=name):
                status = view_of(cluster, name)
                members = sorted(map(cluster.name_of, status.member_names))
                if status.quorate and members == sorted(survivors):
                    return status
                return NotYet(f"quorate={status.quorate} members={members}")
            status = wait_until(f"{name} to see {first} gone and keep quorum", two_members,
                                timeout_s=MEMBERSHIP_TIMEOUT_S)
            assert status.nodes == 2 and status.total_votes == 2
    with allure.step(f"{first} is unreachable over SSH"):
        node = cluster.node(first)
        node.close()  # drop the session opened before the cut: dial afresh
        with pytest.raises(NodeUnreachable):
            node.run("true", timeout_s=5)
    detect = metrics.record_observed(
        "time_to_detect", lambda: time_to_detect(timeline, cut, survivors),
        window=detect_window(constants), node=first)
    assert detect.in_window, outside(detect)


@allure.story("Quorum loss")
def test_power_cut_second_node_loses_quorum(cluster, story_nodes, faults, timeline,
                                            quorum_watcher, metrics, constants):
    second, survivor = story_nodes.second, story_nodes.survivor
    with allure.step(f"power cut {second}"):
        cut = faults.power_cut(second).started
    with allure.step(f"{survivor}: not quorate, Activity blocked, exit code 2"):
        def inquorate():
            result = cluster.node(survivor).run("pvecm", "status", timeout_s=5)
            if result.rc == 2 and "Activity blocked" in result.stdout:
                return result
            return NotYet(f"exit code {result.rc}")
        result = wait_until(f"{survivor} to lose quorum", inquorate,
                            timeout_s=MEMBERSHIP_TIMEOUT_S)
        status = parse_pvecm_status(result.stdout)
        assert not status.quorate and status.activity_blocked
        assert (status.nodes, status.expected_votes, status.total_votes, status.quorum) == \
            (1, 3, 1, 2), status
    with allure.step(f"{survivor}: /etc/pve refuses writes"):
        write = wait_until(f"{survivor}'s /etc/pve to refuse writes",
                           lambda: (r := cluster.node(survivor).can_write_pve()).rc != 0 and r,
                           timeout_s=10)
        assert "Permission denied" in write.stderr, write.stderr
    loss = metrics.record_observed("time_to_quorum_loss",
                                   lambda: time_to_quorum_loss(timeline, cut, survivor),
                                   window=detect_window(constants), node=second)
    assert loss.in_window, outside(loss)


@allure.story("pvecm expected 1")
def test_expected_one_restores_quorum_on_survivor(cluster, story_nodes, faults, timeline,
                                                  quorum_watcher, metrics):
    survivor = story_nodes.survivor
    node = cluster.node(survivor)
    with allure.step(f"pvecm expected 1 on {survivor}"):
        action = faults.action("pvecm expected 1", node=survivor)
        node.check("pvecm", "expected", "1", timeout_s=15)
    with allure.step(f"{survivor}: quorate, expected votes 1"):
        status = wait_until(f"{survivor} quorate after pvecm expected 1",
                            lambda: (s := view_of(cluster, survivor)).quorate and s,
                            timeout_s=15)
        assert status.expected_votes == 1 and status.quorum == 1, status
    with allure.step(f"{survivor}: /etc/pve accepts writes"):
        write = wait_until(f"{survivor}'s /etc/pve to accept writes",
                           lambda: (r := node.can_write_pve()).rc == 0 and r, timeout_s=10)
        assert write.rc == 0
    metrics.record_observed("time_to_quorum_after_expected",
                            lambda: time_to_quorum(timeline, action, survivor), node=survivor)


@allure.story("Healing")
def test_power_on_heals_cluster(cluster, story_nodes, faults, timeline, quorum_watcher,
                                metrics):
    names = cluster.names
    with allure.step(f"power on {story_nodes.first} and {story_nodes.second}"):
        faults.power_on(story_nodes.first)
        last_on = faults.power_on(story_nodes.second).started
    for name in names:
        with allure.step(f"{name}: three members, expected votes 3, quorate"):
            cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_TIMEOUT_S)
    metrics.record_observed("time_to_heal", lambda: time_to_heal(timeline, last_on, names),
                            timeout_s=15)
    assert timeline.events(EventKind.QUORUM_LOST, source=story_nodes.survivor)
