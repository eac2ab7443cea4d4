"""The shared-directory pmxcfs (pvemu/pmxcfs_shared.py): its lock table on one node;
its own changes count from when it made them."""

from __future__ import annotations

import errno
import time

import mfusepy as fuse
import pytest

from pvemu.pmxcfs_shared import Pmxcfs
from pvemu.timing import Timing

LOCK = "/priv/lock/ha_manager_lock"


class Quorum:
    def __init__(self) -> None:
        self.value = True
        self.answers = True  # False: a paused corosync
        self.waited: list[float] = []

    def quorate(self) -> bool:
        return self.value

    def answering(self, timeout_s: float) -> bool:
        self.waited.append(timeout_s)
        return self.answers


def node(tmp_path, quorum):
    db = tmp_path / "cluster"
    (db / "priv/lock").mkdir(parents=True)
    (db / "corosync.conf").write_text("totem {}\n")  # a cluster: quorum matters
    return Pmxcfs(db, "node3", quorum, timing=Timing(0.01))  # lifetime 1.2 s


def test_a_renewal_made_just_before_quorum_is_lost_ages_from_when_it_was_made(tmp_path):
    quorum = Quorum()
    fs = node(tmp_path, quorum)
    fs.mkdir(LOCK, 0o755)
    time.sleep(0.01)
    fs.utimens(LOCK, (time.time_ns(), time.time_ns()))  # the master's last renewal
    version = fs.locks.info("ha_manager_lock")["version"]
    quorum.value = False  # lost right after; the watch thread now hears nothing
    fs.watch_locks()
    assert fs.lock_watch.first_seen["ha_manager_lock"][0] == version
    time.sleep(1.3)  # a lifetime passes without quorum
    quorum.value = True  # `pvecm expected 1`
    fs.watch_locks()
    assert fs.lock_watch.expired("ha_manager_lock")  # not a fresh lifetime from now


def test_a_renewal_by_another_node_just_before_quorum_is_lost_ages_from_then(tmp_path):
    """The master (node3) renews between two passes of node4's lock watch, then both lose
    quorum: node4 heard the renewal before the membership changed, so the lock ages from
    then, not from the next quorum (found by the HA story on five nodes: the survivors'
    new master came a whole lifetime late)."""
    master_quorum, quorum = Quorum(), Quorum()
    master = node(tmp_path, master_quorum)
    other = Pmxcfs(master.db, "node4", quorum, timing=Timing(0.01))
    master.mkdir(LOCK, 0o755)
    other.watch_locks()
    time.sleep(0.01)
    master.utimens(LOCK, (time.time_ns(), time.time_ns()))  # between node4's passes
    version = master.locks.info("ha_manager_lock")["version"]
    master_quorum.value = quorum.value = False
    other.watch_locks()  # its first pass without quorum
    assert other.lock_watch.first_seen["ha_manager_lock"][0] == version
    time.sleep(1.3)  # a lifetime passes without quorum
    quorum.value = True
    other.watch_locks()
    assert other.lock_watch.expired("ha_manager_lock")
    other.lock_watch.first_seen.clear()  # and a node that was never quorate hears nothing:
    quorum.value = False
    fresh = Pmxcfs(master.db, "node5", quorum, timing=Timing(0.01))
    fresh.watch_locks()
    assert fresh.lock_watch.first_seen == {}


def test_creating_a_lock_is_seen_at_once(tmp_path):
    fs = node(tmp_path, Quorum())
    fs.mkdir(LOCK, 0o755)
    version = fs.locks.info("ha_manager_lock")["version"]
    assert fs.lock_watch.first_seen["ha_manager_lock"][0] == version
    assert not fs.lock_watch.expired("ha_manager_lock")


def test_a_write_waits_for_the_local_corosync_and_fails_with_eio_when_it_does_not_answer(
        tmp_path):
    """Real pmxcfs's writes wait for corosync to deliver them (CPG): a paused corosync holds
    them (pve-faults.md §4.2); the CPG model gives up after 5 PVE s with EIO."""
    quorum = Quorum()
    fs = node(tmp_path, quorum)
    fs.mkdir(LOCK, 0o755)
    assert quorum.waited == [pytest.approx(0.05)]  # 5 PVE s at timescale 0.01
    quorum.answers = False
    with pytest.raises(fuse.FuseOSError) as caught:
        fs.utimens(LOCK, (time.time_ns(), time.time_ns()))
    assert caught.value.errno == errno.EIO
    with pytest.raises(fuse.FuseOSError):
        fs.mkdir("/priv/lock/other", 0o755)
    assert fs.readdir("/priv/lock", None)  # reads do not wait
