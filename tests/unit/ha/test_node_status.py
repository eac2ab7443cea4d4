"""NodeStatus (pve-model.md §5, §6)."""

from pvemu.ha.node_status import NodeStatus

ALL = {"node1": True, "node2": True, "node3": True}


def test_unlisted_nodes_become_online(fake_env):
    ns = NodeStatus(fake_env)
    ns.update(ALL, {})
    assert ns.status == {"node1": "online", "node2": "online", "node3": "online"}
    assert "node 'node2': state changed from 'unknown' => 'online'" in fake_env.logs


def test_offline_node_goes_unknown_and_fence_delay_is_60s(fake_env):
    ns = NodeStatus(fake_env)
    ns.update(ALL, {})
    fake_env.t += 10
    ns.update({**ALL, "node3": False}, {})
    assert ns.get_node_state("node3") == "unknown"
    assert "node 'node3': state changed from 'online' => 'unknown'" in fake_env.logs
    fake_env.t += 49.9  # 59.9 s since the last round that saw it online
    assert not ns.node_is_offline_delayed("node3")
    fake_env.t += 0.1  # exactly 60 s
    assert ns.node_is_offline_delayed("node3")
    assert not ns.node_is_offline_delayed("node1")


def test_new_master_starts_a_fresh_countdown(fake_env):
    ns = NodeStatus(fake_env, {"node1": "online", "node2": "online", "node3": "unknown"})
    ns.update({**ALL, "node3": False}, {})
    assert not ns.node_is_offline_delayed("node3")  # first look: remember now
    fake_env.t += 59
    assert not ns.node_is_offline_delayed("node3")
    fake_env.t += 1
    assert ns.node_is_offline_delayed("node3")


def test_maintenance_rules(fake_env):
    ns = NodeStatus(fake_env)
    ns.update(ALL, {})
    ns.update(ALL, {"node3": "maintenance"})
    assert ns.get_node_state("node3") == "maintenance"
    assert not ns.node_is_online("node3") and ns.node_is_operational("node3")
    # powered off while in maintenance: stays maintenance (not fenced)
    ns.update({**ALL, "node3": False}, {"node3": "maintenance"})
    assert ns.get_node_state("node3") == "maintenance"
    # but a node whose LRM left maintenance goes unknown when offline
    ns.update({**ALL, "node3": False}, {"node3": "active"})
    assert ns.get_node_state("node3") == "unknown"
    ns.update(ALL, {"node3": "active"})
    assert ns.get_node_state("node3") == "online"


def test_fence_stays_until_lock_then_unknown(fake_env):
    ns = NodeStatus(fake_env)
    ns.update(ALL, {})
    assert not ns.fence_node("node3")
    assert ns.get_node_state("node3") == "fence"
    assert "Try to fence node 'node3'" in fake_env.logs
    assert fake_env.notes == ["FENCE: Try to fence node 'node3'"]
    ns.update(ALL, {})  # even back online it stays fence
    assert ns.get_node_state("node3") == "fence"
    fake_env.agent_locks["node3"] = True
    assert ns.fence_node("node3")
    assert ns.get_node_state("node3") == "unknown"
    assert "fencing: acknowledged - got agent lock for node 'node3'" in fake_env.logs


def test_gone_and_deleted_after_an_hour(fake_env):
    ns = NodeStatus(fake_env)
    ns.update(ALL, {})
    ns.update({"node1": True, "node2": True}, {})
    assert ns.get_node_state("node3") == "gone"
    fake_env.t += 3600
    ns.update({"node1": True, "node2": True}, {})
    assert "node3" in ns.status
    fake_env.t += 1
    ns.update({"node1": True, "node2": True}, {})
    assert "node3" not in ns.status


def test_double_start_fences_a_node_not_online_in_the_first_round_without_its_lock(fake_env):
    """The emulation bug: no fence delay and no agent lock (deliberately unsafe)."""
    fake_env.bugs = frozenset({"double-start"})
    ns = NodeStatus(fake_env)
    ns.update(ALL, {})
    ns.update({**ALL, "node3": False}, {})  # the first round without node3
    assert ns.node_is_offline_delayed("node3")  # at once: no 60 s delay
    assert not ns.node_is_offline_delayed("node1")
    assert not fake_env.agent_locks  # node3's lock is nobody's to take
    assert ns.fence_node("node3")
    assert ns.get_node_state("node3") == "unknown"
    assert "Try to fence node 'node3'" in fake_env.logs
    assert "fencing: acknowledged - node 'node3' (emulation bug double-start: not fenced)" \
        in fake_env.logs
    assert not any("got agent lock" in line for line in fake_env.logs)


def test_double_start_keeps_the_delay_for_a_node_in_maintenance(fake_env):
    fake_env.bugs = frozenset({"double-start"})
    ns = NodeStatus(fake_env)
    ns.update(ALL, {"node3": "maintenance"})
    ns.update(ALL, {"node3": "maintenance"})
    assert ns.get_node_state("node3") == "maintenance"
    assert not ns.node_is_offline_delayed("node3")


def test_without_the_bug_the_first_round_neither_delays_nor_fences(fake_env):
    ns = NodeStatus(fake_env)
    ns.update(ALL, {})
    ns.update({**ALL, "node3": False}, {})
    assert not ns.node_is_offline_delayed("node3")
    assert not ns.fence_node("node3")
    assert ns.get_node_state("node3") == "fence"
    assert not any("acknowledged" in line for line in fake_env.logs)
