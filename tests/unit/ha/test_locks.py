"""pmxcfs lock semantics in the simulator (pve-model.md §14.4, §10.1)."""

from pvemu.ha.sim import SimCluster, SimEnv


def idle_cluster(**kw) -> tuple[SimCluster, SimEnv, SimEnv]:
    c = SimCluster(services={}, **kw)
    for node in c.nodes.values():  # no daemons: drive the locks by hand
        for task in node.tasks.values():
            task.alive = False
    return c, SimEnv(c, c.nodes["node1"], "t"), SimEnv(c, c.nodes["node2"], "t")


def test_mkdir_fails_while_held_and_only_owner_renews():
    c, a, b = idle_cluster()
    assert a.get_ha_manager_lock()
    assert not b.get_ha_manager_lock()
    c.run_for(10)
    assert a.get_ha_manager_lock()  # renewal by the owner
    assert c.locks["ha_manager_lock"].owner == "node1"


def test_expiry_is_strictly_more_than_120s_and_needs_an_unlock_request():
    c, a, b = idle_cluster(unlock_delay=0.0)
    assert a.get_ha_manager_lock()
    c.run_until(120)
    assert not b.get_ha_manager_lock()  # age 120: not expired
    c.run_until(120)  # the unlock request runs: age exactly 120, kept
    assert "ha_manager_lock" in c.locks
    c.run_until(120.5)
    assert not b.get_ha_manager_lock()  # this try only sends the unlock request...
    c.run_until(120.5)
    assert "ha_manager_lock" not in c.locks  # ...which deletes it asynchronously
    assert b.get_ha_manager_lock()  # the next mkdir succeeds
    assert c.locks["ha_manager_lock"].owner == "node2"


def test_unlock_two_step_default_delay():
    c, a, b = idle_cluster()
    assert a.get_ha_manager_lock()
    c.run_until(200)
    assert not b.get_ha_manager_lock()
    assert not b.get_ha_manager_lock()  # same instant: the request has not landed
    c.run_until(200.5)
    assert b.get_ha_manager_lock()


def test_renewal_resets_the_age():
    c, a, b = idle_cluster()
    assert a.get_ha_manager_lock()
    for t in range(10, 400, 10):
        c.run_until(t)
        assert a.get_ha_manager_lock()
        assert not b.get_ha_manager_lock()
    c.run_until(401)
    assert c.locks["ha_manager_lock"].owner == "node1"


def test_age_counts_from_when_the_judge_first_saw_the_version():
    c, a, b = idle_cluster(unlock_delay=0.0)
    c3 = SimEnv(c, c.nodes["node3"], "t")
    c.network("node1", False)  # node1, the unlock executor, is away (from t=8)
    c.run_until(10)
    assert b.get_ha_manager_lock()  # node2 and node3 see it at 10
    c.network("node1", True)
    c.run_until(30)  # node1 rejoins at 18 and first sees the lock then
    c.run_until(137)  # 127 s after creation, but only 119 s for node1
    assert not c3.get_ha_manager_lock()
    c.run_until(137)
    assert "ha_manager_lock" in c.locks  # node1 executes the request: not expired yet
    c.run_until(139)
    assert not c3.get_ha_manager_lock()
    c.run_until(139)
    assert c3.get_ha_manager_lock()


def test_no_lock_operations_without_quorum():
    c, a, b = idle_cluster()
    c.network("node1", False)
    c.run_for(10)
    assert not a.get_ha_manager_lock()
    assert b.get_ha_manager_lock()


def test_clock_offset_does_not_change_the_age():
    c, a, b = idle_cluster(clock_offsets={"node1": 1000.0, "node2": -50.0},
                           unlock_delay=0.0)
    assert b.get_ha_manager_lock()
    c.run_until(120)
    assert not a.get_ha_manager_lock()
    c.run_until(120)
    assert "ha_manager_lock" in c.locks
    c.run_until(121)
    assert not a.get_ha_manager_lock()
    c.run_until(121)
    assert a.get_ha_manager_lock()
