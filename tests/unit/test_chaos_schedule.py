"""Chaos schedules: seeded, replayable files, holds and gaps from PVE's windows, the
quorum-loss budget, roles resolved on the cluster's state, and bad files refused."""

from __future__ import annotations

import json

import pytest

from harness.chaos import roles
from harness.chaos.generate import generate, group_size, holds, parse_mix, tolerance
from harness.chaos.schedule import (
    NODE_LOSING,
    ScheduleError,
    check_fits,
    loads,
)
from harness.expectations import ClusterConstants, recovery_window
from harness.timescale import Timescale

NODES3 = ["node1", "node2", "node3"]
NODES5 = [f"node{n}" for n in range(1, 6)]


def constants(nodes: int = 3, factor: float = 0.1) -> ClusterConstants:
    return ClusterConstants.stock(nodes, Timescale(factor))


def test_the_same_seed_gives_the_same_file_and_another_seed_another():
    c = constants()
    one = generate(7, NODES3, c, duration_s=600).dumps()
    assert generate(7, list(reversed(NODES3)), c, duration_s=600).dumps() == one
    assert generate(8, NODES3, c, duration_s=600).dumps() != one


def test_a_schedule_survives_its_file_and_fills_its_duration_with_four_kinds():
    s = generate(1, NODES3, constants(), duration_s=600)
    assert loads(s.dumps()) == s
    longest = max(h for _, h in holds(constants()).values())
    assert 600 - 2 * longest < s.length_s <= 600
    assert len({i.kind for i in s.items}) >= 4


def test_node_losing_faults_hold_past_the_slowest_recovery_the_design_allows():
    c = constants()
    s = generate(2, NODES3, c, duration_s=900)
    slowest = recovery_window(c, master_died=True).high_s
    for item in s.items:
        if item.kind in NODE_LOSING:
            assert item.hold_s >= slowest
            assert item.gap_s >= c.detection  # the membership re-forms before the next


def test_three_nodes_never_lose_two_at_once_five_nodes_never_three():
    for names, seed in ((NODES3, 3), (NODES5, 4)):
        c = constants(len(names), 1.0)
        s = generate(seed, names, c, duration_s=7200, concurrency=len(names))
        budget = tolerance(len(names))
        losing = [i for i in s.items if i.kind in NODE_LOSING]
        for i in losing:
            t = i.at_s + 0.01
            at_once = [j for j in losing if j.at_s <= t < j.at_s + j.hold_s + j.gap_s]
            size = sum(group_size(j.role, len(names)) for j in at_once)
            assert size <= budget, (i, at_once)
    two = generate(5, ["node1", "node2"], constants(2), duration_s=600)
    assert two.items and not [i for i in two.items if i.kind in NODE_LOSING]


def test_mix_and_roles_are_checked():
    assert parse_mix("power_cut=3,degrade") == {"power_cut": 3.0, "degrade": 1.0}
    with pytest.raises(ScheduleError, match="unknown fault kind 'meteor'"):
        parse_mix("meteor=1")
    with pytest.raises(ScheduleError, match="not a number"):
        parse_mix("power_cut=x")
    with pytest.raises(ScheduleError, match="unknown role"):
        generate(1, NODES3, constants(), duration_s=60, roles=["leader"])
    only = generate(1, NODES3, constants(), duration_s=600, mix={"degrade": 1},
                    roles=["master"])
    assert {(i.kind, i.role) for i in only.items} == {("degrade", "master")}


@pytest.mark.parametrize("text, message", [
    ("{", "is not JSON"),
    ('{"items": []}', "is not a pvechaos schedule"),
    ('{"pvechaos_schedule": 1, "nodes": ["node1"]}', "missing or malformed field"),
])
def test_a_bad_file_is_refused_with_what_is_wrong(text, message):
    with pytest.raises(ScheduleError, match=message):
        loads(text)


def edited(**change) -> str:
    data = generate(1, NODES3, constants(), duration_s=300).to_json()
    data["items"][0].update(change)
    return json.dumps(data)


def test_an_edited_item_is_checked():
    with pytest.raises(ScheduleError, match="unknown fault kind 'flood'"):
        loads(edited(kind="flood"))
    with pytest.raises(ScheduleError, match="unknown role 'leader'"):
        loads(edited(role="leader"))
    with pytest.raises(ScheduleError, match="node9 not among"):
        loads(edited(nodes=["node9"]))
    with pytest.raises(ScheduleError, match="times must be positive"):
        loads(edited(hold_s=0))
    data = json.loads(edited(at_s=5.0))
    data["items"][1]["at_s"] = 1.0
    with pytest.raises(ScheduleError, match="before the item ahead"):
        loads(json.dumps(data))


def test_a_schedule_runs_only_on_its_cluster_and_timescale():
    s = generate(1, NODES3, constants(), duration_s=300)
    check_fits(s, NODES3, 0.1)
    with pytest.raises(ScheduleError, match="--timescale 0.1"):
        check_fits(s, NODES3, 1.0)
    with pytest.raises(ScheduleError, match="this cluster has node1, node2"):
        check_fits(s, ["node1", "node2"], 0.1)


def test_roles_name_the_nodes_the_cluster_state_gives_them():
    placements = {"ct:100": "node2", "ct:101": "node3"}
    assert roles.resolve("master", 5, NODES3, "node1", placements) == ("node1",)
    assert roles.resolve("master", 5, NODES3, "node1", placements, busy={"node1"}) is None
    assert roles.resolve("guest-node", 0, NODES3, "node1", placements) == ("node2",)
    assert roles.resolve("guest-node", 1, NODES3, "node1", placements) == ("node3",)
    assert roles.resolve("non-master", 7, NODES3, "node2", {}) in (("node1",), ("node3",))
    assert roles.resolve("minority", 3, NODES5, None, {}) == \
        roles.resolve("minority", 3, NODES5, None, {})
    assert len(roles.resolve("minority", 3, NODES5, None, {})) == 2
