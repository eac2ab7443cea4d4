"""pmxcfs's replication (pvemu/dcdb.py, dcdb_sync.py) on a fake CPG bus that partitions:
pve-faults.md §4.2, §4.4, §4.5, §4.6."""

from __future__ import annotations

import errno
import threading

import pytest

from pvemu.dcdb import Database
from pvemu.dcdb_sync import Replica
from pvemu.pmxcfs_locks import LockTable
from tests.unit.dcdb_bus import Bus, Clock

LOCK = "/priv/lock/ha_manager_lock"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def bus(tmp_path, clock):
    bus = Bus()
    for n in (1, 2, 3):
        bus.add(n, tmp_path / f"node{n}", clock)
    bus.partition({1, 2, 3})
    bus.settle()
    yield bus
    bus.close()


def write(replica: Replica, path: str, text: str) -> int:
    replica.submit({"op": "create", "path": path})  # EEXIST when it is there: fine
    return replica.submit({"op": "truncate", "path": path, "length": 0}) or \
        replica.submit(replica.write_op(path, text.encode(), 0))


def read(replica: Replica, path: str) -> str | None:
    try:
        with open(replica.db.real(path)) as f:
            return f.read()
    except FileNotFoundError:
        return None


def test_a_write_is_applied_by_every_member_and_bumps_every_version(bus):
    r1, r2, r3 = (bus.replicas[n] for n in (1, 2, 3))
    assert write(r2, "/a.cfg", "hello") == 0
    bus.settle()
    assert [read(r, "/a.cfg") for r in (r1, r2, r3)] == ["hello"] * 3
    assert r1.db.version == r2.db.version == r3.db.version > 0
    assert r1.db.digest() == r3.db.digest()


def test_errors_come_from_applying_the_delivered_message(bus):
    r1, r2 = bus.replicas[1], bus.replicas[2]
    assert r1.submit({"op": "mkdir", "path": "/d"}) == 0
    assert r2.submit({"op": "mkdir", "path": "/d"}) == errno.EEXIST
    assert r2.submit({"op": "unlink", "path": "/nothing"}) == errno.ENOENT
    assert r1.submit({"op": "mkdir", "path": "/d/sub"}) == 0
    assert r2.submit({"op": "rename", "path": "/d", "new": "/e"}) == errno.ENOTEMPTY


def test_the_side_with_more_changes_wins_whole(bus):
    r1, r3 = bus.replicas[1], bus.replicas[3]
    bus.partition({1, 2}, {3}, quorate=True)  # both sides writable (pvecm expected 1)
    bus.settle()
    write(r1, "/f", "majority")
    write(r3, "/f", "minority")
    write(r3, "/g", "more")
    bus.partition({1, 2, 3})
    bus.settle()
    assert read(r1, "/f") == "minority" and read(r1, "/g") == "more"  # §4.5: no merge


def test_concurrent_writes_apply_in_the_same_order_everywhere(bus):
    assert bus.replicas[1].submit({"op": "create", "path": "/x"}) == 0
    threads = [threading.Thread(target=lambda r=r, i=i: [
        r.submit(r.write_op("/x", f"{r.node}-{k}".encode().ljust(12), 0)) for k in range(10)])
        for i, r in enumerate(bus.replicas.values())]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    bus.settle()
    digests = {r.db.digest() for r in bus.replicas.values()}
    assert len(digests) == 1
    assert len({r.db.version for r in bus.replicas.values()}) == 1


def test_a_cut_members_writes_reach_nobody_and_the_majority_wins_on_rejoin(bus):
    r1, r2, r3 = (bus.replicas[n] for n in (1, 2, 3))
    write(r1, "/shared.cfg", "old")
    bus.settle()
    # node3 is cut but its corosync has not noticed yet: it still believes it is quorate
    bus.partition({1, 2}, {3}, quorate=True)
    bus.settle()
    assert write(r3, "/cut.cfg", "from node3") == 0  # applied on its own side only
    bus.quorate_flag[3] = False  # now it knows
    bus.quorate_flag[1] = bus.quorate_flag[2] = True
    assert write(r1, "/shared.cfg", "new") == 0
    assert write(r2, "/ha.cfg", "the majority's HA keeps writing") == 0  # more versions
    bus.settle()
    assert read(r1, "/cut.cfg") is None and read(r2, "/cut.cfg") is None
    assert read(r3, "/shared.cfg") == "old"  # the minority reads its frozen copy
    assert read(r2, "/shared.cfg") == "new"
    bus.partition({1, 2, 3})
    bus.settle()
    assert read(r3, "/cut.cfg") is None and read(r3, "/shared.cfg") == "new"
    assert r1.db.digest() == r2.db.digest() == r3.db.digest()
    assert r3.db.version == r1.db.version


def test_a_write_delivered_while_not_quorate_is_refused(bus):
    r3 = bus.replicas[3]
    bus.partition({1, 2}, {3})
    bus.settle()
    assert write(r3, "/late.cfg", "x") == errno.EACCES  # dcdb_deliver: not quorate
    assert read(r3, "/late.cfg") is None


def test_a_joining_empty_database_is_filled_from_the_cluster(tmp_path, clock, bus):
    write(bus.replicas[1], "/corosync.conf", "totem {}\n")
    bus.settle()
    bus.partition({1, 2, 3})
    new = bus.add(4, tmp_path / "node4", clock)
    bus.partition({1, 2, 3, 4})
    bus.settle()
    assert read(new, "/corosync.conf") == "totem {}\n"
    assert new.db.version == bus.replicas[1].db.version


def test_a_tie_in_versions_goes_to_the_lowest_node_id(bus):
    r1, r2, r3 = (bus.replicas[n] for n in (1, 2, 3))
    bus.partition({1}, {2}, {3}, quorate=True)
    bus.settle()
    write(r1, "/f", "one")
    write(r3, "/f", "three")
    bus.partition({1, 2, 3})
    bus.settle()
    assert [read(r, "/f") for r in (r1, r2, r3)] == ["one"] * 3


def test_writes_block_while_the_bus_is_paused_and_reads_work(bus):
    r1 = bus.replicas[1]
    write(r1, "/f", "before")
    bus.paused = True  # a SIGSTOPped corosync: nothing is delivered
    r1.wait_s = 0.5
    assert write(r1, "/f", "during") == errno.EIO  # gave up after the (guessed) bound
    assert read(r1, "/f") == "before"
    bus.paused = False
    bus.settle()


def test_lock_owner_renewal_and_expiry_on_the_lowest_member(bus, clock):
    r1, r2, r3 = (bus.replicas[n] for n in (1, 2, 3))
    r1.submit({"op": "mkdir", "path": "/priv"})
    r1.submit({"op": "mkdir", "path": "/priv/lock"})
    assert r3.submit({"op": "mkdir", "path": LOCK}) == 0
    assert r2.db.owners["ha_manager_lock"] == "node3"
    assert r2.submit({"op": "mtime", "path": LOCK, "mtime_ns": 10**19}) == errno.EACCES
    assert r3.submit({"op": "mtime", "path": LOCK, "mtime_ns": 10**19}) == 0
    clock.t += 100
    r2.request_unlock(LOCK)
    bus.settle()
    assert read_dir(r2, LOCK)  # not expired yet: kept
    clock.t += 21
    r2.request_unlock(LOCK)
    bus.settle()
    assert not any(read_dir(r, LOCK) for r in (r1, r2, r3))  # node1 deleted it


def test_a_received_sync_restarts_lock_ages_only_where_the_copy_was_replaced(bus, clock):
    r1, r3 = bus.replicas[1], bus.replicas[3]
    for path in ("/priv", "/priv/lock", LOCK):
        r1.submit({"op": "mkdir", "path": path})
    bus.settle()
    bus.partition({1, 2}, {3})  # up-to-date members: no commit, ages go on
    bus.settle()
    write(r1, "/f", "the majority moves on")
    clock.t += 119
    bus.partition({1, 2, 3})  # node3's copy is behind: it takes the leader's
    bus.settle()
    clock.t += 2
    assert r1.locks.expired("ha_manager_lock")  # 121 s since node1 saw it
    assert r3.locks.age("ha_manager_lock") == pytest.approx(2)  # restarted at the commit


def test_the_version_survives_a_restart(tmp_path):
    db = Database(tmp_path / "db")
    replica = Replica(db, "node1", None, lambda: True, LockTable(1.0), clock=lambda: 5.0)
    assert replica.submit({"op": "mkdir", "path": "/nodes"}) == 0  # standalone: local
    assert Database(tmp_path / "db").version == 1


def read_dir(replica: Replica, path: str) -> bool:
    import os
    return os.path.isdir(replica.db.real(path))
