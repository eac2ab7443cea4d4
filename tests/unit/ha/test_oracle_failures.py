"""Oracle scenarios (pve-model.md §13.6, §10): node, master and quorum loss, with the
timing windows PVE's real intervals give. The cut happens at t=300 on a settled cluster."""

from .conftest import settled, transitions

CUT = 300


def order(c, patterns: list[str], after: float = CUT) -> list[float]:
    """The time of each pattern's first event after `after`; asserts they are in order."""
    times = []
    for p in patterns:
        e = c.first(p, after=after)
        assert e is not None, f"missing {p!r}"
        times.append(e.time)
    assert times == sorted(times), list(zip(patterns, times, strict=True))
    return times


def test_single_node_loss_recovers_on_least_loaded_node():
    """test-basic1: node3 (not master, one active service) loses power."""
    c = settled(services={"vm:101": {"node": "node1"}, "vm:102": {"node": "node1"},
                          "vm:103": {"node": "node3"}})
    assert c.master() == "node1"
    c.power("node3", False)
    c.run_until(CUT + 400)
    order(c, ["node 'node3': state changed from 'online' => 'unknown'",
              "service 'vm:103': state changed from 'started' to 'fence'",
              "Try to fence node 'node3'",
              "fencing: acknowledged - got agent lock for node 'node3'",
              "service 'vm:103': state changed from 'fence' to 'recovery'",
              "recover service 'vm:103' from fenced node 'node3' to node 'node2'",
              "service 'vm:103': state changed from 'recovery' to 'started'",
              "^starting service vm:103$"])
    restart = c.service_state_time("vm:103", "started", after=CUT)
    assert 121 <= restart - CUT <= 150
    assert c.running_on("vm:103") == ["node2"]
    assert c.locks["ha_agent_node3_lock"].owner == "node1"  # the master keeps it
    assert c.node_state("node3") == "unknown"


def test_total_quorum_loss_resets_active_nodes_only():
    """test-basic3: every node isolated. The master (no local service) is not reset."""
    c = settled(services={"vm:102": {"node": "node2"}, "vm:103": {"node": "node3"}})
    assert c.master() == "node1"
    for n in c.nodes:
        c.network(n, False)
    c.run_until(CUT + 600)
    assert c.first("status change master => lost_manager_lock", node="node1")
    assert c.first("status change lost_manager_lock => wait_for_quorum", node="node1")
    resets = {n: c.watchdog_resets(n) for n in c.nodes}
    assert resets["node1"] == []
    for n in ("node2", "node3"):
        (t,) = resets[n]
        assert 60 <= t - CUT <= 80
    for sid in ("vm:102", "vm:103"):
        assert not [s for s in transitions(c, sid, CUT) if s[1] in ("fence", "recovery")]


def test_start_without_quorum_does_nothing_until_quorum():
    """test-basic4: only node1 is up; nothing happens until a second node joins."""
    from pvemu.ha.sim import SimCluster

    c = SimCluster(power_on=False)
    c.power("node1", True)
    c.run_until(CUT)
    assert c.master() is None and c.crm_state("node1") == "wait_for_quorum"
    assert not c.find("adding new service")
    assert c.running_on("vm:101") == []
    c.power("node2", True)
    c.run_until(CUT + 100)
    became = c.first("status change wait_for_quorum => master").time
    assert CUT + 8 <= became <= CUT + 8 + 5
    assert c.running_on("vm:101") == ["node1"] and c.running_on("vm:102") == ["node2"]
    assert c.service_status("vm:103")["state"] == "started"  # node3 is simply not up yet


def test_master_loss_new_master_then_fresh_fence_delay():
    """test-basic5 without failback: node1 is master and runs vm:101."""
    c = settled()
    c.power("node1", False)
    c.run_until(CUT + 400)
    took = c.first("status change slave => master", after=CUT)
    assert took is not None and 120 < took.time - CUT <= 130
    new_master = took.node
    t_fence, _, t_started = order(c, [
        "service 'vm:101': state changed from 'started' to 'fence'",
        "fencing: acknowledged - got agent lock for node 'node1'",
        "service 'vm:101': state changed from 'recovery' to 'started'"])
    assert 60 <= t_fence - took.time < 70  # a new master counts the 60 s afresh
    assert 170 <= t_started - CUT <= 210
    assert c.first("Try to fence node 'node1'").node == new_master
    assert c.running_on("vm:101") in (["node2"], ["node3"])


def test_two_of_three_down_survivor_with_service_resets():
    c = settled(services={"vm:101": {"node": "node1"}})
    c.power("node2", False)
    c.power("node3", False)
    c.run_until(CUT + 300)
    (reset,) = c.watchdog_resets("node1")
    assert 60 <= reset - (CUT + 8) <= 80  # quorum is lost 8 s after the cut
    assert not transitions(c, "vm:101", CUT)


def test_two_of_three_down_idle_survivor_does_not_reset():
    c = settled(services={"vm:102": {"node": "node2"}})
    assert c.master() == "node1"
    c.power("node2", False)
    c.power("node3", False)
    c.run_until(CUT + 600)
    assert c.watchdog_resets() == []
    assert c.crm_state("node1") == "wait_for_quorum"
    assert c.lrm_state("node1") == "wait_for_agent_lock"


def test_node_with_only_an_error_service_is_not_fenced():
    """test-erroneous-service1."""
    c = settled(services={"vm:101": {"node": "node1"},
                          "vm:103": {"node": "node3", "max_restart": 0, "max_relocate": 0}},
                )
    c.set_fail_start("vm:103", {"node3"})
    c.set_service_state("vm:103", "disabled")
    c.run_until(CUT + 30)
    c.set_service_state("vm:103", "started")  # fails at once: error on node3
    c.run_until(CUT + 100)
    assert c.service_status("vm:103")["state"] == "error"
    assert c.service_status("vm:103")["node"] == "node3"
    cut = c.t
    c.power("node3", False)
    c.run_until(cut + 400)
    assert c.node_state("node3") == "unknown"
    assert not c.find("Try to fence node 'node3'")
    assert c.service_status("vm:103")["state"] == "error"


def test_recovery_impossible_restricted_group_pve8():
    c = settled(services={"vm:101": {"node": "node1"},
                          "vm:102": {"node": "node2", "group": "only2"}},
                groups={"only2": {"nodes": "node2", "restricted": 1}})
    _recovery_impossible(c)


def test_recovery_impossible_strict_rule_pve9():
    c = settled(flavour=9, services={"vm:101": {"node": "node1"},
                                     "vm:102": {"node": "node2"}},
                rules={"only2": {"type": "node-affinity", "resources": ["vm:102"],
                                 "nodes": "node2", "strict": 1}})
    _recovery_impossible(c)


def _recovery_impossible(c):
    """test-recovery1/4: every round logs the failure; migrate is ignored; disabled ->
    stopped (not through request_stop)."""
    c.power("node2", False)
    c.run_until(CUT + 300)
    fails = c.find("recovering service 'vm:102' from fenced node 'node2' failed, no recovery "
                   "node found")
    assert len(fails) >= 5
    gaps = {round(b.time - a.time) for a, b in zip(fails, fails[1:], strict=False)}
    assert gaps == {10}  # every CRM round, forever
    assert c.service_status("vm:102")["state"] == "recovery"
    c.migrate("vm:102", "node3")
    c.run_for(60)
    assert c.service_status("vm:102")["state"] == "recovery"
    c.set_service_state("vm:102", "disabled")
    c.run_for(30)
    assert transitions(c, "vm:102", CUT)[-1] == ("recovery", "stopped")
    assert c.running_on("vm:102") == []
