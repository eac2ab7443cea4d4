"""Bad HA commands on a lab node get PVE's own kind of error (and exit code 255)."""

from __future__ import annotations

from harness.waits import wait_until
from tests.integration.ha_support import holds

K = 0.1


def fails(node, *argv: str) -> str:
    result = node.run(*argv, timeout_s=30)
    assert result.rc == 255, f"{argv}: rc {result.rc}, {result.stdout}{result.stderr}"
    return result.stderr


def test_bad_ha_commands_are_refused_as_pve_refuses_them(ha_lab):
    h = ha_lab("hcmd", "198.18.66", timescale=K)
    node1 = h.node("node1")
    h.create_ct("node1", 100)
    assert "does not exist" in fails(node1, "ha-manager", "add", "ct:999")
    assert "Unknown option: bogus" in fails(node1, "ha-manager", "add", "ct:100", "--bogus", "1")
    assert "max_restart" in fails(node1, "ha-manager", "add", "ct:100", "--max_restart", "x")
    h.ha("add", "ct:100")
    assert "resource ID 'ct:100' already defined" in fails(node1, "ha-manager", "add",
                                                            "ct:100")
    assert "no such cluster node" in fails(node1, "pvesh", "get", "/nodes/node9/lxc")
    assert "no 'get' handler" in fails(node1, "pvesh", "get", "/nothing")
    assert "already exists" in fails(node1, "pct", "create", "100",
                                     "local:vztmpl/x.tar.zst", "--rootfs", "shared:1")
    # domain-ha held (a stuck command elsewhere): cfs_lock gives up after its 10 PVE s,
    # the CLI's and the CRM master's alike; the master's round waits that long for
    # crm_commands and goes on, so its watchdog (60 PVE s) never runs out while the lock
    # stays held longer than that
    master = h.master()
    boot = h.boot_id(master)
    node2 = h.node("node2")
    node2.check("mkdir", "/etc/pve/priv/lock/domain-ha")
    assert fails(node1, "ha-manager", "set", "ct:100", "--state", "stopped").endswith(
        "update resource failed: cfs-lock 'domain-ha' error: got lock request timeout\n")
    holds(h, h.s(80), f"{master} up and master while domain-ha is held",
          lambda: None if (h.boot_id(master), h.master()) == (boot, master)
          else f"{master} rebooted or gave up the master role")
    node2.check("rmdir", "/etc/pve/priv/lock/domain-ha")
    assert "reading crm commands failed - cfs-lock 'domain-ha' error: got lock request " \
        "timeout" in h.log(master, "crm")
    # no quorum: node3 alone
    h.lab.power_cut("node1")
    h.lab.power_cut("node2")
    node3 = h.node("node3")
    wait_until("node3 to lose quorum", lambda: not node3.quorum().quorate, timeout_s=60)
    # cfs_lock tries its 10 s whether pmxcfs refuses the mkdir (EACCES) or the lock is
    # still there because the master died holding it (it takes domain-ha every round to
    # read crm_commands), then says no quorum either way
    assert fails(node3, "ha-manager", "set", "ct:100", "--state", "stopped").endswith(
        "update resource failed: cfs-lock 'domain-ha' error: no quorum!\n")
    # check_cfs_quorum reads the write bit from a stat of /etc/pve/local, and pmxcfs
    # mounts with libfuse2's default 1 s attribute cache (pmxcfs.c passes no
    # attr_timeout): for up to a second after corosync reports the loss, PVE's own check
    # can still pass (the write that follows would be refused). Wait for the cache.
    wait_until("pct create on node3 to be refused for no quorum",
               lambda: "no quorum" in fails(node3, "pct", "create", "101",
                                            "local:vztmpl/x.tar.zst", "--rootfs", "shared:1"),
               timeout_s=10)
