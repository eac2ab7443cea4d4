"""Timing of single CRM and LRM transitions with PVE's real intervals (pve-model.md §2,
§3, §7), in the simulator's fake time."""

from pvemu.ha.sim import SimCluster

from .conftest import settled


def first_time(c: SimCluster, pattern: str, **kw) -> float:
    event = c.first(pattern, **kw)
    assert event is not None, f"no event {pattern!r}"
    return event.time


def test_wait_for_quorum_to_master_within_one_5s_loop():
    c = SimCluster(power_on=False)
    for n in c.nodes:
        c.power(n, True)  # quorum forms when membership settles, 8 s later
    c.run_until(60)
    assert not c.find("status change wait_for_quorum => master", before=7.9)
    became = first_time(c, "status change wait_for_quorum => master")
    assert 8 <= became <= 8 + 5
    assert c.master() == "node1"
    assert {c.crm_state(n) for n in ("node2", "node3")} == {"slave"}


def test_slave_takes_over_within_a_poll_of_the_lock_expiring():
    c = settled(services={"vm:101": {"node": "node2"}})
    renewed = c.nodes["node2"].files["ha/manager_status"][1]["timestamp"]
    assert c.master() == "node1"
    c.power("node1", False)
    c.run_until(600)
    took = first_time(c, "status change slave => master")
    # expiry is age > 120 s; the slave's burst of 6 tries, 1 s apart, catches it
    assert renewed + 120 < took <= renewed + 127


def test_master_losing_quorum_closes_its_watchdog_gracefully():
    c = settled(services={"vm:102": {"node": "node2"}})
    c.network("node1", False)
    c.run_until(600)
    lost = first_time(c, "status change master => lost_manager_lock", node="node1")
    assert 300 + 8 < lost <= 300 + 8 + 10 + 5
    closed = first_time(c, "watchdog closed", node="node1", daemon="crm")
    assert closed == lost
    assert c.crm_state("node1") == "wait_for_quorum"
    assert c.watchdog_resets("node1") == []  # a CRM never resets its node


def test_lrm_active_loop_is_10s():
    c = settled()
    stamps = []
    for t in range(300, 400):
        c.run_until(t)
        ts = c.nodes["node2"].files["nodes/node2/lrm_status"][1]["timestamp"]
        if not stamps or stamps[-1] != ts:
            stamps.append(ts)
    gaps = {round(b - a, 3) for a, b in zip(stamps, stamps[1:], strict=False)}
    assert gaps == {10.0}


def test_lost_agent_lock_resets_60_plus_10_after_the_last_update():
    c = settled()
    lrm_env = c.nodes["node3"].lrm.env
    c.network("node3", False)
    c.run_until(600)
    assert c.lrm_state("node3") is None  # powered off by its watchdog
    lost = first_time(c, "status change active => lost_agent_lock", node="node3")
    last_update = lrm_env.lock_success["ha_agent_node3_lock"]  # renewal = watchdog update
    assert last_update < lost
    (reset,) = c.watchdog_resets("node3")
    assert last_update + 70 <= reset <= last_update + 71


def test_lost_agent_lock_recovers_when_quorum_returns_in_time():
    c = settled()
    c.network("node3", False)
    c.run_until(330)
    assert c.lrm_state("node3") == "lost_agent_lock"
    c.network("node3", True)
    c.run_until(600)
    assert c.lrm_state("node3") == "active"
    assert c.watchdog_resets() == []
    assert c.service_status("vm:103")["state"] == "started"


def test_fence_in_the_first_round_60s_after_last_online():
    c = settled()
    c.power("node3", False)
    c.run_until(600)
    unknown = first_time(c, "node 'node3': state changed from 'online' => 'unknown'")
    last_online = unknown - 10  # the master's previous round
    fence = c.service_state_time("vm:103", "fence")
    assert fence - last_online == 60


def test_max_restart_attempts_on_one_node():
    c = SimCluster(services={"vm:101": {"node": "node1"},
                             "vm:102": {"node": "node2", "max_restart": 2}})
    c.set_fail_start("vm:102", {"node2"})
    c.run_until(200)
    starts = [e.time for e in c.find(r"^starting service vm:102$", node="node2")]
    assert len(starts) == 3  # max_restart + 1
    assert [round(b - a) for a, b in zip(starts, starts[1:], strict=False)] == [10, 10]
    assert len(c.find("restart policy: retry number", node="node2")) == 2
    assert c.first("unable to start service vm:102 on local node after 2 retries")
    assert c.running_on("vm:102") == ["node3"]  # relocated, started elsewhere


def test_lrm_goes_idle_after_60_rounds_without_services():
    c = settled()
    c.set_service_state("vm:103", "ignored")
    c.run_until(1100)
    idle = first_time(c, "going idle", node="node3", daemon="lrm")
    assert 300 + 600 < idle <= 300 + 630
    assert c.lrm_state("node3") == "wait_for_agent_lock"
    assert "ha_agent_node3_lock" not in c.locks
    assert c.nodes["node3"].mux is not None and not c.nodes["node3"].mux.armed


def test_crm_goes_idle_after_90_rounds_without_services():
    c = settled(services={"vm:101": {"node": "node1"}})
    c.remove_service("vm:101")
    c.run_until(1300)
    idle = first_time(c, "going idle", node="node1", daemon="crm")
    assert 300 + 900 < idle <= 300 + 930
    assert c.master() is None
    assert "ha_manager_lock" not in c.locks
