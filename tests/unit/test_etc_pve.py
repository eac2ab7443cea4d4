"""pvemu/etc_pve.py, the one way into a node's /etc/pve, against a temporary directory
(plain directories: mkdir is the lock and the write bit stands for pmxcfs's quorum, as
on pmxcfs; pmxcfs's own rules are tested on the lab)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from pvemu import etc_pve, nodeinfo
from pvemu.etc_pve import NO_QUORUM, CfsError, EtcPve, atomic_write
from pvemu.timing import Timing


@pytest.fixture
def etc(tmp_path) -> EtcPve:
    root = tmp_path / "pve"
    for sub in ("nodes/node1/lxc", "nodes/node1/qemu-server", "nodes/node2/lxc", "ha",
                "priv/lock"):
        (root / sub).mkdir(parents=True)
    (root / "local").symlink_to("nodes/node1")
    return EtcPve(root)


def refuse_under(monkeypatch, root: Path, *methods: str) -> None:
    """pmxcfs's answer without quorum (EACCES) to these Path methods under ``root``; the
    tests may run as root, which file modes do not stop."""
    for name in methods:
        real = getattr(Path, name)

        def refused(self, *args, _real=real, **kwargs):
            if Path(self).is_relative_to(root):
                raise PermissionError(13, "Permission denied")
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(Path, name, refused)


def read_only(path: Path):
    mode = path.stat().st_mode
    os.chmod(path, mode & ~0o222)
    return lambda: os.chmod(path, mode)


# -- the quorum rule --------------------------------------------------------------------
def test_quorum_is_the_write_bit_on_local(etc):
    assert etc.quorate()
    etc.check_quorum()
    restore = read_only(etc.path("nodes/node1"))  # `local` points there
    try:
        assert not etc.quorate()
        with pytest.raises(CfsError, match=r"^cluster not ready - no quorum\?$"):
            etc.check_quorum()
    finally:
        restore()


def test_without_local_the_roots_write_bit_decides(tmp_path):
    root = tmp_path / "pve"
    (root / "nodes").mkdir(parents=True)
    etc = EtcPve(root)
    assert etc.quorate()
    restore = read_only(root)
    try:
        assert not etc.quorate()
    finally:
        restore()


def test_an_empty_root_is_pmxcfs_not_mounted_hence_no_quorum(tmp_path):
    assert not EtcPve(tmp_path).quorate()
    assert not EtcPve(tmp_path / "missing").quorate()


def test_a_refused_write_is_worded_as_no_quorum(etc, monkeypatch):
    refuse_under(monkeypatch, etc.root, "write_text", "mkdir", "rename", "unlink")
    for write in (lambda: etc.write("ha/resources.cfg", "ct: 100\n\n"),
                  lambda: etc.mkdir("nodes/node3"),
                  lambda: etc.rename("ha", "ha2"), lambda: etc.remove("ha/x")):
        with pytest.raises(CfsError) as info:
            write()
        assert str(info.value) == NO_QUORUM
    monkeypatch.undo()
    assert etc.read("ha/resources.cfg") is None
    assert sorted(os.listdir(etc.path("ha"))) == []


def test_the_root_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PVECHAOS_PVE_ROOT", raising=False)
    assert EtcPve().root == etc_pve.PVE_ROOT
    monkeypatch.setenv("PVECHAOS_PVE_ROOT", str(tmp_path))
    assert EtcPve().root == tmp_path


# -- files --------------------------------------------------------------------------------
def test_atomic_write_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "storage.cfg"
    target.write_text("old\n")
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["storage.cfg"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "dir"
    target.mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(OSError):
        atomic_write(target, "x")
    assert target.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_write_read_create_rename_remove(etc):
    etc.write("nodes/node3/lxc/100.conf", "hostname: a\n")  # parents are made
    assert etc.read("nodes/node3/lxc/100.conf") == "hostname: a\n"
    with pytest.raises(FileExistsError):
        etc.write("nodes/node3/lxc/100.conf", "x", create=True)
    etc.rename("nodes/node3/lxc/100.conf", "nodes/node2/lxc/100.conf")
    assert etc.exists("nodes/node2/lxc/100.conf")
    assert not etc.exists("nodes/node3/lxc/100.conf")
    etc.remove("nodes/node2/lxc/100.conf")
    etc.remove("nodes/node2/lxc/100.conf")  # gone already: fine
    assert etc.read("nodes/node2/lxc/100.conf") is None


def test_display_is_the_path_pve_shows(tmp_path):
    assert EtcPve(tmp_path).display("ha/resources.cfg") == "/etc/pve/ha/resources.cfg"


def test_an_unreadable_file_is_worded_with_the_displayed_path(etc):
    (etc.path("ha/manager_status")).mkdir()  # reading a directory: EISDIR
    with pytest.raises(CfsError, match=r"^unable to read file '/etc/pve/ha/manager_status'"
                                       r" - Is a directory$"):
        etc.read("ha/manager_status")


# -- the cluster lock (PVE::Cluster::cfs_lock) -----------------------------------------
def test_lock_is_held_inside_and_released_after(etc):
    lock = etc.path("priv/lock/domain-ha")
    with etc.lock("domain-ha"):
        assert lock.is_dir()
    assert not lock.exists()


def test_a_contended_lock_times_out_sends_unlock_requests_and_keeps_the_lock(etc):
    lock = etc.path("priv/lock/domain-ha")
    lock.mkdir()
    os.utime(lock, (1000, 1000))
    started = time.monotonic()
    with pytest.raises(CfsError, match=r"^cfs-lock 'domain-ha' error: got lock request "
                                       r"timeout$"):
        with etc.lock("domain-ha", timeout_s=0.3, retry_s=0.05):
            pytest.fail("the lock was taken while held")
    assert 0.3 <= time.monotonic() - started < 5
    assert lock.is_dir()  # not ours to remove
    assert lock.stat().st_mtime == 0  # each failed try asked for an unlock (utime 0)


def test_the_lock_waits_pves_ten_seconds_at_the_nodes_timescale(etc, monkeypatch):
    """cfs_lock's 10 s and its 1 s between tries are PVE seconds: at timescale 0.01 the
    wait is 0.1 s, tried about ten times (each try an unlock request)."""
    assert (Timing(1.0).cfs_lock_timeout, Timing(1.0).cfs_lock_retry) == (10.0, 1.0)
    fast = EtcPve(etc.root, Timing(0.01))
    lock = fast.path("priv/lock/file-storage_cfg")
    lock.mkdir()
    tries = []
    real_utime = os.utime

    def counted_utime(path, *args, **kwargs):  # every failed try: one unlock request
        tries.append(path)
        return real_utime(path, *args, **kwargs)
    monkeypatch.setattr(etc_pve.os, "utime", counted_utime)
    started = time.monotonic()
    with pytest.raises(CfsError, match="got lock request timeout"):
        with fast.lock("file-storage_cfg"):
            pass
    assert 0.1 <= time.monotonic() - started < 2
    assert 5 <= len(tries) <= 12, tries


def test_without_a_node_json_the_lock_waits_pves_own_seconds(etc, tmp_path, monkeypatch):
    """Off a lab node (no node.json) the timers are PVE's; on one they are the node's."""
    monkeypatch.setattr(nodeinfo, "NODE_JSON", tmp_path / "absent.json")
    assert EtcPve(etc.root).timing == Timing(1.0)
    node_json = tmp_path / "node.json"
    node_json.write_text(json.dumps({
        "name": "node1", "address": "198.18.60.11", "prefixlen": 24, "pve_version": "9.1.2",
        "kernel": "6.8", "local_db": "/tmp/x", "timescale": 0.1}))
    monkeypatch.setattr(nodeinfo, "NODE_JSON", node_json)
    assert EtcPve(etc.root).timing.cfs_lock_timeout == pytest.approx(1.0)


def test_a_lock_freed_by_its_holder_is_taken_by_the_waiter(etc):
    lock = etc.path("priv/lock/domain-ha")
    lock.mkdir()
    threading.Timer(0.2, lock.rmdir).start()
    with etc.lock("domain-ha", timeout_s=5, retry_s=0.05):
        assert lock.is_dir()
    assert not lock.exists()


def no_quorum_lock(etc: EtcPve, timeout_s: float) -> None:
    """etc.lock('domain-ha') on a node without quorum (`local`'s write bit off): refused
    in cfs_lock's own words, after trying for ``timeout_s``."""
    restore = read_only(etc.path("nodes/node1"))
    started = time.monotonic()
    try:
        with pytest.raises(CfsError, match=r"^cfs-lock 'domain-ha' error: no quorum!$"):
            with etc.lock("domain-ha", timeout_s=timeout_s, retry_s=0.05):
                pytest.fail("the lock was taken without quorum")
    finally:
        restore()
    assert time.monotonic() - started >= timeout_s


def test_no_lock_without_quorum_tries_until_the_timeout_and_says_no_quorum(etc,
                                                                         monkeypatch):
    """cfs_lock retries a refused mkdir (EACCES) like a held lock, then reports the
    missing quorum in its own words."""
    refuse_under(monkeypatch, etc.root, "mkdir")
    no_quorum_lock(etc, 0.3)


def test_a_lock_left_by_a_dead_node_is_no_quorum_on_an_inquorate_node(etc):
    """The CRM master lost holding domain-ha leaves the lock; the survivor without quorum
    can neither take it nor get it freed, and cfs_lock says no quorum, not timeout."""
    etc.path("priv/lock/domain-ha").mkdir()
    no_quorum_lock(etc, 0.2)
    assert etc.path("priv/lock/domain-ha").is_dir()  # not ours to remove


# -- the HA leases (PVE::HA::Env::PVE2 get_pve_lock) -----------------------------------
def test_a_lease_is_taken_renewed_by_its_holder_and_released(etc):
    path = etc.path("priv/lock/ha_manager_lock")
    assert etc.take_lease("ha_manager_lock", renew=False) and path.is_dir()
    os.utime(path, (1000, 1000))
    assert etc.take_lease("ha_manager_lock", renew=True)
    assert path.stat().st_mtime > 1000
    etc.release_lease("ha_manager_lock")
    assert not path.exists()
    etc.release_lease("ha_manager_lock")  # released already: fine


def test_a_failed_lease_try_sends_an_unlock_request(etc):
    path = etc.path("priv/lock/ha_agent_node2_lock")
    path.mkdir()
    os.utime(path, (1000, 1000))
    assert not etc.take_lease("ha_agent_node2_lock", renew=False)
    assert path.stat().st_mtime == 0


def test_renewing_a_lease_that_is_gone_fails(etc):
    assert not etc.take_lease("ha_manager_lock", renew=True)


# -- the HA files and the cluster's status files ----------------------------------------
def test_vmlist_names_each_guest_by_the_node_holding_its_config(etc):
    for rel in ("nodes/node1/qemu-server/100.conf", "nodes/node2/lxc/101.conf",
                "nodes/node1/lxc/102.conf", "nodes/node2/lxc/notes.conf",
                "nodes/node2/lxc/103.conf.tmp"):
        etc.path(rel).write_text("")
    assert etc.vmlist() == {"vm:100": "node1", "ct:101": "node2", "ct:102": "node1"}
    assert EtcPve(etc.root / "missing").vmlist() == {}
    assert etc.guest_configs("node1") == ["nodes/node1/qemu-server/100.conf",
                                          "nodes/node1/lxc/102.conf"]


def test_ha_readers_parse_what_is_stored(etc):
    etc.write("ha/resources.cfg", "ct: 101\n\tmax_restart 2\n\n")
    etc.write("ha/rules.cfg", "node-affinity: keep\n\tresources ct:101\n\tnodes node2\n\n")
    etc.write("ha/groups.cfg", "group: g\n\tnodes node1:2\n\n")
    etc.write("datacenter.cfg", "ha: shutdown_policy=migrate\n")
    assert etc.resources() == {"ct:101": {"max_restart": 2}}
    assert etc.rules()["keep"]["nodes"] == {"node2": 0}
    assert etc.groups()["g"]["nodes"] == {"node1": 2}
    assert etc.datacenter()["ha"]["shutdown_policy"] == "migrate"


def test_status_readers_tolerate_missing_and_broken_files(etc):
    assert etc.manager_status() == {} and etc.lrm_status("node1") is None
    etc.write("ha/manager_status", "{not json")
    etc.write("nodes/node1/lrm_status", "{not json")
    assert etc.manager_status() == {} and etc.lrm_status("node1") is None
    etc.write("ha/manager_status", json.dumps({"master_node": "node2"}))
    etc.write("nodes/node1/lrm_status", json.dumps({"mode": "active"}))
    assert etc.manager_status() == {"master_node": "node2"}
    assert etc.lrm_status("node1") == {"mode": "active"}


def test_members_local_node_and_node_names(etc):
    assert etc.members() is None
    assert etc.local_node() == "node1"
    assert etc.node_names() == ["node1", "node2"]  # from nodes/ without .members
    etc.path(".members").write_text(json.dumps({"nodelist": {"node1": {}, "node3": {}}}))
    assert etc.members() == {"nodelist": {"node1": {}, "node3": {}}}
    assert etc.node_names() == ["node1", "node3"]
    assert EtcPve(etc.root / "missing").local_node() is None


def test_a_renewal_is_stamped_with_the_callers_time_and_a_failed_one_asks_no_unlock(
        etc, monkeypatch):
    path = etc.path("priv/lock/ha_manager_lock")
    assert etc.take_lease("ha_manager_lock", renew=False)
    assert etc.take_lease("ha_manager_lock", renew=True, at=5000.25)
    assert path.stat().st_mtime == 5000.25  # PVE2.pm utime(0, $ctime): the caller's clock
    calls = []

    def refused(target, times=None, ns=None):  # pmxcfs refuses: not newer, or not ours
        calls.append(times or ns)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "utime", refused)
    assert not etc.take_lease("ha_manager_lock", renew=True, at=4000)
    assert calls == [(4000 * 10**9, 4000 * 10**9)]  # no utime(0, 0) unlock request


def test_a_mount_without_its_pmxcfs_is_not_quorate_and_raises_nothing(tmp_path, monkeypatch):
    """ENOTCONN (pmxcfs restarting under its mount, as `pvecm add` does) is no quorum,
    as PVE2.pm's quorate evals check_cfs_quorum; an HA daemon asking must not die."""
    import errno

    real_is_dir = Path.is_dir

    def gone(self):
        if self.name == "nodes":
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected", str(self))
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", gone)
    assert EtcPve(tmp_path).quorate() is False
