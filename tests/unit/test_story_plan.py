"""The stories' plan from the cluster (harness/story_plan.py): the power cuts of the quorum
story on 3, 4, 5 and 7 nodes with votequorum's arithmetic (quorum = floor(votes/2)+1),
the `pvecm expected` value, the cut order with and without --story-nodes, and HA's
recovery node by pve-model.md §9.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import PvechaosError
from harness.pve import ServiceLine, parse_pvecm_status
from harness.story_plan import (
    Affinity,
    PlanUnsupported,
    after_recovery,
    cut_order,
    load_of,
    plan_from_status,
    plan_quorum,
    quorum_of,
    recovery_node,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def names(n: int) -> list[str]:
    return [f"node{i}" for i in range(1, n + 1)]


def plan_of(n: int, chosen=None):
    votes = dict.fromkeys(names(n), 1)
    return plan_quorum(votes, n, cut_order(votes, chosen))


@pytest.mark.parametrize("votes, quorum", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4),
                                           (7, 4), (8, 5), (16, 9), (32, 17)])
def test_quorum_is_half_the_votes_plus_one(votes, quorum):  # pve-operations.md §2.1's table
    assert quorum_of(votes) == quorum


def test_quorum_follows_the_total_when_it_exceeds_the_expected_votes():
    assert quorum_of(3, total_votes=5) == 3
    with pytest.raises(ValueError):
        quorum_of(0)


# nodes -> (quorum, cut nodes, the cut that loses quorum leaves, pvecm expected)
SIZES = {
    3: (2, ("node1", "node2"), ("node3",), 1),
    4: (3, ("node1", "node2"), ("node3", "node4"), 2),
    5: (3, ("node1", "node2", "node3"), ("node4", "node5"), 2),
    7: (4, ("node1", "node2", "node3", "node4"), ("node5", "node6", "node7"), 3),
}


@pytest.mark.parametrize("n", sorted(SIZES))
def test_cuts_go_on_until_the_survivors_are_a_minority(n):
    quorum, cut, survivors, expected = SIZES[n]
    plan = plan_of(n)
    assert plan.quorum == quorum and plan.expected_votes == n
    assert plan.cut_nodes == cut
    assert plan.survivors == survivors and plan.survivor == f"node{n}"
    assert [c.quorate for c in plan.cuts] == [True] * (len(cut) - 1) + [False]
    assert [c.survivor_votes for c in plan.cuts] == list(range(n - 1, n - 1 - len(cut), -1))
    assert plan.losing.survivor_votes < quorum <= plan.keeping[-1].survivor_votes
    assert plan.expected_after_loss == expected
    assert plan.quorum_after_expected <= len(survivors)  # the survivors are quorate again


def test_five_nodes_in_words():
    assert plan_of(5).describe() == (
        "cut node1: node2, node3, node4, node5 hold 4 of 5 votes, quorum 3: quorate; "
        "cut node2: node3, node4, node5 hold 3 of 5 votes, quorum 3: quorate; "
        "cut node3: node4, node5 hold 2 of 5 votes, quorum 3: quorum lost; "
        "pvecm expected 2 on node5")


def test_story_nodes_choose_the_first_two_cuts_and_the_survivor():
    assert cut_order(names(3), ("node2", "node3", "node1")) == ("node2", "node3", "node1")
    order = cut_order(names(5), ("node4", "node2", "node1"))
    assert order == ("node4", "node2", "node3", "node5", "node1")
    plan = plan_quorum(dict.fromkeys(names(5), 1), 5, order)
    assert plan.cut_nodes == ("node4", "node2", "node3")
    assert plan.survivors == ("node1", "node5") and plan.survivor == "node1"


def test_without_story_nodes_the_nodes_are_cut_in_name_order():
    assert cut_order(["node3", "node1", "node2", "node1"]) == ("node1", "node2", "node3")


def test_a_cluster_of_fewer_than_three_nodes_has_no_story_shape():
    with pytest.raises(PlanUnsupported, match=r"has 2 node\(s\) \(node1, node2\); the "
                                              r"stories need at least 3"):
        cut_order(names(2))


def test_story_nodes_the_cluster_lacks_are_named():
    with pytest.raises(PlanUnsupported, match="node9, not a node of this cluster"):
        cut_order(names(3), ("node1", "node9", "node3"))


def test_uneven_votes_move_the_quorum_loss():
    # node1 holds 3 of 6 votes (pvecm add --votes 3): losing it alone leaves 3 < quorum 4
    plan = plan_quorum({"node1": 3, "node2": 1, "node3": 1, "node4": 1}, 6,
                       cut_order(names(4)))
    assert plan.quorum == 4 and plan.cut_nodes == ("node1",) and plan.keeping == ()
    assert plan.expected_after_loss == 3 and plan.quorum_after_expected == 2


def test_a_survivor_that_holds_quorum_alone_leaves_no_loss_to_test():
    with pytest.raises(PlanUnsupported, match="node3 alone holds 5 of 7 votes"):
        plan_quorum({"node1": 1, "node2": 1, "node3": 5}, 7, cut_order(names(3)))


def test_a_qdevice_vote_is_a_shape_the_quorum_story_lacks():
    with pytest.raises(PlanUnsupported, match="expected votes 4 are not the nodes' 3: a "
                                              "QDevice"):
        plan_quorum(dict.fromkeys(names(3), 1), 4, cut_order(names(3)))


def test_the_order_must_name_the_clusters_nodes():
    with pytest.raises(ValueError, match="does not name"):
        plan_quorum(dict.fromkeys(names(3), 1), 3, ("node1", "node2"))


def test_the_plan_reads_the_votes_from_pvecm_status():
    text = (DATA / "pve9" / "pvecm_status_quorate.txt").read_text().split("\n", 1)[1]
    status = parse_pvecm_status(text)
    address = {f"198.18.60.1{i}": f"node{i}" for i in (1, 2, 3)}
    plan = plan_from_status(status, cut_order(names(3)), name_of=address.get)
    assert plan.votes == (("node1", 1), ("node2", 1), ("node3", 1))
    assert plan.cut_nodes == ("node1", "node2") and plan.expected_after_loss == 1


def test_a_status_that_lacks_a_node_cannot_be_planned_from():
    text = (DATA / "pve9" / "pvecm_status_two_of_three.txt").read_text().split("\n", 1)[1]
    status = parse_pvecm_status(text)
    address = {m.name: f"node{i}" for i, m in enumerate(status.members, start=1)}
    with pytest.raises(PvechaosError, match="lists no votes for node3: not members now"):
        plan_from_status(status, cut_order(names(3)), name_of=address.get)


# -- HA's recovery node -------------------------------------------------------------------
def test_recovery_goes_to_the_least_loaded_online_node():
    assert recovery_node(["node2", "node3"], {"node2": 2, "node3": 1}) == "node3"


def test_ties_go_to_the_first_name():  # two empty survivors of a 3-node cut: node2
    assert recovery_node(["node3", "node2"], {}) == "node2"


def test_a_group_keeps_to_its_highest_priority_class():
    group = Affinity({"node2": 1, "node3": 2, "node4": 2})
    assert recovery_node(names(5)[1:], {"node3": 4}, group) == "node4"
    assert recovery_node(["node2", "node5"], {}, group) == "node2"


def test_an_unrestricted_group_falls_back_to_any_online_node():
    assert recovery_node(["node4", "node5"], {"node4": 1}, Affinity({"node1": 0})) == "node5"


def test_a_restricted_group_without_an_online_member_leaves_the_service_in_recovery():
    assert recovery_node(["node4", "node5"], {}, Affinity({"node1": 0}, strict=True)) is None


def test_the_load_counts_the_states_the_basic_scheduler_counts():
    services = [ServiceLine("vm:100", "node1", "started"),
                ServiceLine("vm:101", "node1", "error"),
                ServiceLine("vm:102", "node2", "stopped"),
                ServiceLine("vm:103", "node2", "starting", crm_state="started"),
                ServiceLine("vm:104", "node3", "starting", crm_state="stopped"),
                ServiceLine("vm:105", None, "queued")]
    assert load_of(services) == {"node1": 2, "node2": 1}


@pytest.mark.parametrize("line, problem", [
    (ServiceLine("vm:100", "node1", "migrate"), "in migrate: its target counts too"),
    (ServiceLine("vm:100", "node1", "starting"), "either CRM state stopped"),
])
def test_a_load_that_status_cannot_tell_is_refused(line, problem):
    with pytest.raises(PvechaosError, match=problem):
        load_of([line])


def test_the_ha_story_cuts_the_node_ha_recovered_to_second():
    order = cut_order(names(5))
    assert after_recovery(order, "node2") == order  # HA chose the planned second
    assert after_recovery(order, "node4") == ("node1", "node4", "node2", "node3", "node5")
    plan = plan_quorum(dict.fromkeys(names(5), 1), 5, after_recovery(order, "node4"))
    assert plan.cut_nodes == ("node1", "node4", "node2")
    assert plan.survivors == ("node3", "node5") and plan.expected_after_loss == 2


def test_when_ha_recovers_to_the_planned_survivor_another_node_survives():
    assert after_recovery(("node1", "node2", "node3"), "node3") == ("node1", "node3", "node2")
    assert after_recovery(cut_order(names(5)), "node5") == \
        ("node1", "node5", "node2", "node3", "node4")


@pytest.mark.parametrize("second", ["node1", "node9"])
def test_the_guest_cannot_come_back_on_the_cut_node_or_outside_the_cluster(second):
    with pytest.raises(ValueError, match="not a node the guest can come back on"):
        after_recovery(cut_order(names(3)), second)
