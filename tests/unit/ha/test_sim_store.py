"""The simulator's replicated /etc/pve (pvemu/ha/sim_store.py): quorum, replication,
resync of a partition, and pmxcfs's lock rules (pve-model.md §14.4), on bare replicas."""

from pvemu.ha.sim_scheduler import Scheduler
from pvemu.ha.sim_store import Replica, ReplicatedStore
from pvemu.timing import Timing

ALL = frozenset({"node1", "node2", "node3"})


def three_nodes(unlock_delay: float = 0.5, offsets: dict | None = None):
    """Three powered replicas that all see each other, seeded with one file."""
    clock, logged = Scheduler(), []
    members = {name: Replica(name, i + 1, (offsets or {}).get(name, 0.0), power=True,
                             view=ALL)
               for i, name in enumerate(sorted(ALL))}
    store = ReplicatedStore(members, clock, Timing(1.0), unlock_delay=unlock_delay,
                            log=lambda *entry: logged.append(entry))
    store.seed({"vmlist": {"vm:101": "node1"}})
    return clock, store, members, logged


def split_off(members: dict, name: str) -> None:
    """`name` sees only itself, the others only each other (as corosync would say)."""
    rest = ALL - {name}
    members[name].view = frozenset({name})
    for other in rest:
        members[other].view = rest


def test_seed_gives_every_member_one_version_and_reads_are_copies():
    _, store, members, _ = three_nodes()
    assert len({m.files["vmlist"][0] for m in members.values()}) == 1
    got = store.read(members["node2"], "vmlist", {})
    got["vm:101"] = "node3"
    assert store.read(members["node2"], "vmlist", {}) == {"vm:101": "node1"}
    assert store.read(members["node2"], "missing", []) == []


def test_a_write_needs_a_majority_and_reaches_only_the_writers_partition():
    _, store, members, _ = three_nodes()
    split_off(members, "node3")
    assert not store.quorate(members["node3"])
    assert not store.write(members["node3"], "vmlist", {"vm:101": "node3"})
    assert store.write(members["node1"], "vmlist", {"vm:101": "node2"})
    assert store.read(members["node2"], "vmlist", None) == {"vm:101": "node2"}
    assert store.read(members["node3"], "vmlist", None) == {"vm:101": "node1"}


def test_a_powered_off_member_of_the_view_misses_the_write():
    _, store, members, _ = three_nodes()
    members["node3"].power = False
    assert store.write(members["node1"], "vmlist", {"vm:101": "node2"})  # 3 in view
    assert store.read(members["node3"], "vmlist", None) == {"vm:101": "node1"}
    assert store.newest("vmlist") == {"vm:101": "node2"}


def test_a_partition_takes_the_newest_version_of_each_file_when_it_forms():
    _, store, members, _ = three_nodes()
    split_off(members, "node3")
    store.write(members["node1"], "vmlist", {"vm:101": "node2"})
    store.write(members["node1"], "ha/manager_status", {"master_node": "node1"})
    for m in members.values():
        m.view = ALL
    store.resync(ALL)
    for m in members.values():
        assert store.read(m, "vmlist", None) == {"vm:101": "node2"}
        assert store.read(m, "ha/manager_status", None) == {"master_node": "node1"}
    assert len({m.files["vmlist"][0] for m in members.values()}) == 1


def test_mkdir_fails_while_the_lock_exists_and_only_the_owner_renews_or_removes():
    _, store, members, _ = three_nodes()
    n1, n2 = members["node1"], members["node2"]
    assert store.mkdir_lock(n1, "ha_manager_lock")
    assert not store.mkdir_lock(n2, "ha_manager_lock")
    assert not store.renew_lock(n2, "ha_manager_lock")
    before = store.locks["ha_manager_lock"].version
    assert store.renew_lock(n1, "ha_manager_lock")
    assert store.locks["ha_manager_lock"].version > before
    store.remove_lock(n2, "ha_manager_lock")
    assert store.locks["ha_manager_lock"].owner == "node1"
    store.remove_lock(n1, "ha_manager_lock")
    assert "ha_manager_lock" not in store.locks


def test_without_quorum_no_lock_operation_works_and_no_unlock_request_is_sent():
    clock, store, members, _ = three_nodes(unlock_delay=0.0)
    assert store.mkdir_lock(members["node3"], "ha_agent_node3_lock")
    clock.run_until(200)
    split_off(members, "node3")
    assert not store.renew_lock(members["node3"], "ha_agent_node3_lock")
    store.remove_lock(members["node3"], "ha_agent_node3_lock")
    assert "ha_agent_node3_lock" in store.locks
    members["node1"].view = frozenset({"node1"})  # node1 and node2 lose quorum too
    members["node2"].view = frozenset({"node2"})
    assert not store.mkdir_lock(members["node2"], "ha_agent_node3_lock")
    for m in members.values():  # quorum back before a queued request could run
        m.view = ALL
    clock.run_until(400)
    assert "ha_agent_node3_lock" in store.locks  # so none was queued


def test_an_unlock_request_deletes_a_lock_only_once_it_is_older_than_120s():
    clock, store, members, logged = three_nodes(unlock_delay=0.5)
    assert store.mkdir_lock(members["node2"], "ha_manager_lock")
    clock.run_until(119.5)
    assert not store.mkdir_lock(members["node3"], "ha_manager_lock")
    clock.run_until(120)  # request runs at 120: age 120, kept
    assert "ha_manager_lock" in store.locks and logged == []
    assert not store.mkdir_lock(members["node3"], "ha_manager_lock")
    clock.run_until(120.4)
    assert "ha_manager_lock" in store.locks  # the request is still on its way
    clock.run_until(120.5)
    assert "ha_manager_lock" not in store.locks
    assert logged == [("node1", "pmxcfs", "info", "lock 'ha_manager_lock' expired, removed "
                       "on unlock request from 'node3'")]  # node1: the lowest nodeid
    assert store.mkdir_lock(members["node3"], "ha_manager_lock")


def test_a_renewal_starts_the_age_again():
    clock, store, members, _ = three_nodes(unlock_delay=0.0)
    store.mkdir_lock(members["node1"], "ha_manager_lock")
    clock.run_until(100)
    store.renew_lock(members["node1"], "ha_manager_lock")
    clock.run_until(200)
    store.mkdir_lock(members["node2"], "ha_manager_lock")
    clock.run_until(200)
    assert store.locks["ha_manager_lock"].owner == "node1"


def test_the_age_counts_from_when_the_executor_first_saw_the_lock():
    """node1 (the executor, lowest nodeid) was cut off when node2 took the lock: it only
    sees the lock on rejoining, so an old lock is young to it."""
    clock, store, members, _ = three_nodes(unlock_delay=0.0)
    split_off(members, "node1")
    assert store.mkdir_lock(members["node2"], "ha_agent_node2_lock")
    clock.run_until(100)
    for m in members.values():
        m.view = ALL
    store.resync(ALL)
    clock.run_until(150)
    assert not store.mkdir_lock(members["node3"], "ha_agent_node2_lock")
    clock.run_until(150)
    assert "ha_agent_node2_lock" in store.locks  # 150 s old, but 50 s for node1
    clock.run_until(221)
    assert not store.mkdir_lock(members["node3"], "ha_agent_node2_lock")
    clock.run_until(221)
    assert "ha_agent_node2_lock" not in store.locks


def test_a_lock_version_the_executor_has_not_seen_is_only_recorded_on_its_own_clock():
    """The first request makes the executor note the version at its own time (clock
    offset included); a later request judges the age from there."""
    clock, store, members, _ = three_nodes(unlock_delay=0.0, offsets={"node1": 500.0})
    assert store.mkdir_lock(members["node2"], "ha_manager_lock")
    members["node1"].lock_seen.clear()  # as if node1 never heard of it
    clock.run_until(300)
    assert not store.mkdir_lock(members["node3"], "ha_manager_lock")
    clock.run_until(300)
    assert "ha_manager_lock" in store.locks
    assert members["node1"].lock_seen["ha_manager_lock"][1] == 800.0
    clock.run_until(421)
    assert not store.mkdir_lock(members["node3"], "ha_manager_lock")
    clock.run_until(421)
    assert "ha_manager_lock" not in store.locks
