"""The node's HA environment against a temporary /etc/pve (plain directories: mkdir is
the lock, as on pmxcfs; pmxcfs's own rules are tested on the lab)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pvemu.ha import env_node
from pvemu.ha.env_node import NodeEnv
from pvemu.nodeinfo import NodeInfo
from pvemu.timing import Timing


@pytest.fixture
def root(tmp_path):
    pve = tmp_path / "pve"
    for sub in ("nodes/node1/lxc", "nodes/node2/lxc", "ha", "priv/lock"):
        (pve / sub).mkdir(parents=True)
    (pve / "local").mkdir()  # stands in for the symlink; its mode says quorate or not
    return pve


def make_env(root: Path, daemon: str = "crm", timescale: float = 1.0) -> NodeEnv:
    info = NodeInfo("node1", "198.18.0.11", 24, "8.4.1", "6.8.12-9-pve", root,
                    Timing(timescale), root)
    return NodeEnv(info, daemon, root=root)


def test_quorum_is_the_write_bit_pmxcfs_shows(root):
    env = make_env(root)
    assert env.quorate()
    os.chmod(root / "local", 0o555)
    assert not env.quorate()


def test_node_info_comes_from_members_and_this_node_is_always_online(root):
    (root / ".members").write_text(json.dumps({"nodename": "node1", "nodelist": {
        "node1": {"id": 1, "online": 0}, "node2": {"id": 2, "online": 1},
        "node3": {"id": 3, "online": 0}}}))
    env = make_env(root)
    assert env.cluster_state_update()
    assert env.node_info() == {"node1": True, "node2": True, "node3": False}
    (root / ".members").unlink()
    assert not env.cluster_state_update()


def test_a_lock_is_taken_renewed_while_fresh_and_released(root):
    env = make_env(root)
    lock = root / "priv/lock/ha_manager_lock"
    assert env.get_ha_manager_lock() and lock.is_dir()
    before = lock.stat().st_mtime_ns
    assert env.get_ha_manager_lock()  # renewal: a newer mtime on the same directory
    assert lock.stat().st_mtime_ns > before
    other = make_env(root)
    assert not other.get_ha_manager_lock()  # held by the first
    env.release_ha_manager_lock()
    assert not lock.exists()
    assert other.get_ha_manager_lock()


@pytest.fixture
def unlock_requests(monkeypatch) -> list[str]:
    """The names of the locks the node sent an unlock request for (utime 0, 0)."""
    requests: list[str] = []
    real_utime = os.utime

    def utime(path, times=None, **kwargs):
        if times == (0, 0):
            requests.append(Path(path).name)
        return real_utime(path, times, **kwargs)

    monkeypatch.setattr(env_node.os, "utime", utime)
    return requests


def test_a_failed_take_sends_an_unlock_request(root, unlock_requests):
    requests = unlock_requests
    (root / "priv/lock/ha_agent_node2_lock").mkdir()
    assert not make_env(root).get_ha_agent_lock("node2")
    assert requests == ["ha_agent_node2_lock"]


def test_crm_commands_are_read_once(root):
    (root / "ha/crm_commands").write_text("migrate ct:100 node2\n\nstop vm:101 0\n")
    env = make_env(root)
    assert env.read_crm_commands() == ["migrate ct:100 node2", "stop vm:101 0"]
    assert env.read_crm_commands() == []
    assert not (root / "priv/lock/domain-ha").exists()  # the domain lock was released


def test_steal_moves_the_config_and_drops_leftover_locks_only(root):
    conf = root / "nodes/node1/lxc/100.conf"
    conf.write_text("hostname: ct100\nlock: backup\nmemory: 512\n")
    make_env(root).steal_service("ct:100", "node1", "node2")
    assert not conf.exists()
    assert (root / "nodes/node2/lxc/100.conf").read_text() == "hostname: ct100\nmemory: 512\n"
    kept = root / "nodes/node2/lxc/101.conf"
    kept.write_text("lock: create\n")
    make_env(root).steal_service("ct:101", "node2", "node1")
    assert (root / "nodes/node1/lxc/101.conf").read_text() == "lock: create\n"


def test_service_config_has_defaults_and_the_owning_node(root):
    (root / "nodes/node2/lxc/100.conf").write_text("hostname: a\n")
    (root / "ha/resources.cfg").write_text("ct: 100\n\tmax_restart 2\n\nct: 999\n\n")
    assert make_env(root).read_service_config() == {"ct:100": {
        "type": "ct", "state": "started", "node": "node2", "max_restart": 2,
        "max_relocate": 1}}


def test_shutdown_flag_tells_poweroff_from_reboot(root, monkeypatch, tmp_path):
    flag = tmp_path / "shutdown"
    monkeypatch.setattr(env_node, "SHUTDOWN_FLAG", flag)
    env = make_env(root, "lrm")
    assert env.is_node_shutdown() == (False, False)
    flag.write_text("poweroff\n")
    assert env.is_node_shutdown() == (True, False)
    flag.write_text("reboot\n")
    assert env.is_node_shutdown() == (True, True)


# -- the node's own wall clock (pve-faults.md §7.1-§7.3) ---------------------------------
@pytest.fixture
def clock(tmp_path, monkeypatch):
    from pvemu import wallclock

    monkeypatch.setattr(wallclock, "OFFSET_FILE", str(tmp_path / "clock_offset"))
    return wallclock


def test_time_and_log_stamps_are_the_nodes_clock(root, clock, capsys):
    env = make_env(root)
    clock.set_offset(86400 * 40)
    assert abs(env.now() - (time.time() + 86400 * 40)) < 1
    env.log("info", "hello")
    stamp = time.strftime("%b %d", time.localtime(time.time() + 86400 * 40))
    assert capsys.readouterr().out.startswith(stamp)


def test_a_renewal_carries_the_nodes_time(root, clock):
    env = make_env(root)
    lock = root / "priv/lock/ha_manager_lock"
    assert env.get_ha_manager_lock()
    clock.set_offset(50)
    assert env.get_ha_manager_lock()  # renewed: utime(0, time()) on the node's clock
    assert abs(lock.stat().st_mtime - (time.time() + 50)) < 1


def test_a_forward_step_past_the_lifetime_makes_the_owner_lose_its_own_lock(root, clock,
                                                                            unlock_requests):
    requests = unlock_requests
    env = make_env(root)
    assert env.get_ha_agent_lock()
    clock.set_offset(121)  # PVE2.pm: ctime - lock_time >= 120 -> mkdir, EEXIST, unlock request
    assert not env.get_ha_agent_lock()
    assert requests == ["ha_agent_node1_lock"]


def test_a_failed_renewal_keeps_the_last_success_and_renews_again(root, clock, monkeypatch):
    env = make_env(root)
    assert env.get_ha_manager_lock()
    tries = []
    real = env.etc.take_lease

    def take_lease(name, renew, at=None):
        tries.append(renew)
        return False if len(tries) == 1 else real(name, renew, at)

    monkeypatch.setattr(env.etc, "take_lease", take_lease)
    assert not env.get_ha_manager_lock()  # e.g. no quorum for a moment
    assert env.get_ha_manager_lock()  # still within 120 s of the last success: utime again
    assert tries == [True, True]


def test_a_lost_and_a_regained_lock_are_logged_as_pve_logs_them(root, clock, capsys):
    env = make_env(root, daemon="lrm")
    assert env.get_ha_agent_lock()
    clock.set_offset(130)  # past 120 s since the last success: mkdir on its own lock
    assert not env.get_ha_agent_lock()
    out = capsys.readouterr().out
    assert "successfully acquired lock 'ha_agent_node1_lock'" in out
    assert "err: lost lock 'ha_agent_node1_lock - can't get cfs lock" in out


def test_a_master_that_lost_quorum_gives_up_crm_commands_inside_its_watchdog(root, capsys):
    """The CRM master reads crm_commands under cfs_lock('domain-ha') in every round; a
    node that lost quorum between the round's lock renewal and that read waits cfs_lock's
    10 s, at the node's timescale, then says no quorum (PVE::Cluster cfs_lock). An
    unscaled 10 s there outlasted the CRM's 60 s watchdog at timescale 0.1 and reset the
    lone survivor of the HA story."""
    env = make_env(root, timescale=0.01)
    (root / "ha/crm_commands").write_text("migrate ct:100 node2\n")
    (root / "priv/lock/domain-ha").mkdir()  # left by the old master, power-cut holding it
    os.chmod(root / "local", 0o555)  # quorum lost
    started = time.monotonic()
    assert env.read_crm_commands() == []
    waited = time.monotonic() - started
    assert env.timing.cfs_lock_timeout <= waited < env.timing.watchdog_client_timeout
    assert "reading crm commands failed - cfs-lock 'domain-ha' error: no quorum!" \
        in capsys.readouterr().out
    assert (root / "ha/crm_commands").read_text() == "migrate ct:100 node2\n"
