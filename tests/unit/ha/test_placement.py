"""Node selection (pve-model.md §9)."""

from pvemu.ha.placement import parse_nodes, select_service_node

USAGE = {"node1": 1, "node2": 0, "node3": 0}


def pick(usage=USAGE, flavour=8, groups=None, rules=None, conf=None, current="node1", **kw):
    return select_service_node(flavour=flavour, groups=groups or {}, rules=rules or {},
                               usage=usage, sid="vm:101", service_conf=conf or {},
                               current_node=current, **kw)


def test_parse_nodes():
    assert parse_nodes("node2:2,node3") == {"node2": 2, "node3": 0}
    assert parse_nodes({"node1": 1}) == {"node1": 1}


def test_stay_put_without_group():
    assert pick() == "node1"


def test_recovery_takes_least_loaded_ties_alphabetical():
    assert pick(current="node4", preference="best-score") == "node2"
    assert pick(usage={"node1": 2, "node2": 1, "node3": 0}, preference="best-score") == "node3"


def test_try_next_skips_failed_nodes():
    usage = {"node1": 0, "node2": 0, "node3": 0}
    assert pick(usage, current="node2", preference="try-next", tried_nodes=["node2"]) == \
        "node1"
    assert pick(usage, current="node1", preference="try-next",
                tried_nodes=["node2", "node1"]) == "node3"
    assert pick(usage, current="node3", preference="try-next",
                tried_nodes=["node1", "node2", "node3"]) is None


def test_group_priority_and_failback():
    groups = {"g": {"nodes": "node1:2,node2:1"}}
    conf = {"group": "g"}
    # node1 is top priority: the service fails back to it
    assert pick(groups=groups, conf=conf, current="node2") == "node1"
    # top node offline: the next class
    assert pick(usage={"node2": 5, "node3": 0}, groups=groups, conf=conf,
                current="node3") == "node2"


def test_unrestricted_group_falls_back_to_other_nodes():
    groups = {"g": {"nodes": "node1"}}
    assert pick(usage={"node2": 0, "node3": 0}, groups=groups, conf={"group": "g"},
                current="node1", preference="best-score") == "node2"


def test_restricted_group_has_no_candidate():
    groups = {"g": {"nodes": "node1", "restricted": 1}}
    assert pick(usage={"node2": 0, "node3": 0}, groups=groups, conf={"group": "g"},
                preference="best-score") is None


def test_nofailback_stays():
    groups = {"g": {"nodes": "node1:2,node2:1", "nofailback": 1}}
    assert pick(groups=groups, conf={"group": "g"}, current="node2") == "node2"


def test_maintenance_fallback_wins_in_top_class():
    assert pick(usage={"node1": 3, "node2": 0, "node3": 0}, current="node2",
                maintenance_fallback="node1") == "node1"


def test_pve9_rules_strict_and_failback():
    rules = {"r": {"type": "node-affinity", "resources": ["vm:101"], "nodes": "node2:2,node3:1",
                   "strict": 1}}
    assert pick(flavour=9, rules=rules, conf={"failback": 1}, current="node3") == "node2"
    assert pick(flavour=9, rules=rules, conf={"failback": 0}, current="node3") == "node3"
    assert pick(usage={"node1": 0}, flavour=9, rules=rules, conf={},
                preference="best-score") is None
    # groups are ignored in flavour 9
    assert pick(flavour=9, groups={"g": {"nodes": "node3", "restricted": 1}},
                conf={"group": "g"}, current="node2") == "node2"
