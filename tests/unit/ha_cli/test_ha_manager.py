"""pvemu.cli.ha_manager against a temporary /etc/pve (PVECHAOS_PVE_ROOT)."""

from __future__ import annotations

import json
import time

import pytest

from pvemu.cli import ha_manager

from .conftest import NOW


def run(capsys, *argv):
    code = ha_manager.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# -- add ----------------------------------------------------------------------------------
def test_add_writes_resources_cfg(lab, capsys):
    assert run(capsys, "add", "vm:100", "--max_restart", "2", "--comment", "db") == (0, "", "")
    assert run(capsys, "add", "101", "--state", "stopped")[0] == 0  # bare VMID -> ct:101
    assert lab.read("ha/resources.cfg") == ("vm: 100\n\tcomment db\n\tmax_restart 2\n\n"
                                            "ct: 101\n\tstate stopped\n\n")
    assert not (lab.root / "priv/lock/domain-ha").exists()


def test_add_failback_pve9_only(lab, capsys):
    assert run(capsys, "add", "vm:100", "--failback", "0")[0] == 0
    assert lab.read("ha/resources.cfg") == "vm: 100\n\tfailback 0\n\n"
    lab.flavour(8)
    code, _, err = run(capsys, "add", "vm:102", "--failback", "0")
    assert code == 255 and err.startswith("Unknown option: failback\n")


def test_add_group_pve8(lab, capsys):
    lab.flavour(8)
    lab.write("ha/groups.cfg", "group: g1\n\tnodes node1:2,node2\n\n")
    assert run(capsys, "add", "vm:100", "--group", "g1")[0] == 0
    assert lab.read("ha/resources.cfg") == "vm: 100\n\tgroup g1\n\n"
    code, _, err = run(capsys, "add", "vm:102", "--group", "nope")
    assert (code, err) == (255, "HA group 'nope' does not exist\n")


def test_add_without_quorum(lab, capsys):
    lab.inquorate()
    code, _, err = run(capsys, "add", "vm:100")
    assert (code, err) == (255, "cluster not ready - no quorum?\n")
    assert not (lab.root / "ha/resources.cfg").exists()


def test_add_unknown_guest(lab, capsys):
    assert run(capsys, "add", "vm:999")[1:] == ("", "resource 'vm:999' does not exist in "
                                                    "cluster\n")
    code, _, err = run(capsys, "add", "999")
    assert (code, err) == (255, "unable do detect SID from VMID - VM/CT 999 does not exist\n")


def test_add_duplicate(lab, capsys):
    assert run(capsys, "add", "vm:100")[0] == 0
    code, _, err = run(capsys, "add", "100")
    assert (code, err) == (255, "create resource failed: resource ID 'vm:100' already "
                                "defined\n")


def test_add_bad_options(lab, capsys):
    code, _, err = run(capsys, "add", "vm:100", "--bogus", "1")
    assert code == 255 and err.startswith("Unknown option: bogus\n400 unable to parse option")
    code, _, err = run(capsys, "add", "vm:100", "--state", "running")
    assert code == 255 and err.startswith("400 Parameter verification failed.\nstate: value "
                                          "'running' does not have a value in the enum")
    code, _, err = run(capsys, "add", "vm:100", "--max_restart", "-1")
    assert code == 255 and "max_restart: value must have a minimum value of 0" in err
    code, _, err = run(capsys, "add")
    assert code == 255 and err.startswith("400 not enough arguments")


def test_add_waits_for_lock_then_times_out_at_the_nodes_timescale(lab, capsys):
    lab.flavour(9, timescale=0.005)  # PVE's 10 s cfs_lock wait: 0.05 s here
    (lab.root / "priv/lock/domain-ha").mkdir()
    started = time.monotonic()
    code, _, err = run(capsys, "add", "vm:100")
    assert (code, err) == (255, "create resource failed: cfs-lock 'domain-ha' error: got lock "
                                "request timeout\n")
    assert 0.05 <= time.monotonic() - started < 5
    assert (lab.root / "priv/lock/domain-ha").exists()  # not ours to remove


# -- set / remove -------------------------------------------------------------------------
def error_state(lab):
    lab.write("ha/resources.cfg", "vm: 100\n\tstate started\n\n")
    lab.write("ha/manager_status", json.dumps({
        "master_node": "node1", "timestamp": NOW, "node_status": {"node1": "online"},
        "service_status": {"vm:100": {"state": "error", "node": "node1", "uid": "x"}}}))


def test_set_and_delete(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\tcomment x\n\tstate started\n\n")
    assert run(capsys, "set", "vm:100", "--state", "stopped", "--delete", "comment")[0] == 0
    assert lab.read("ha/resources.cfg") == "vm: 100\n\tstate stopped\n\n"
    code, _, err = run(capsys, "set", "ct:101", "--state", "stopped")
    assert (code, err) == (255, "update resource failed: no such resource 'ct:101'\n")
    code, _, err = run(capsys, "set", "vm:100", "--delete", "foo")
    assert (code, err) == (255, "update resource failed: no such option 'foo'\n")


def test_error_state_refuses_all_but_disabled(lab, capsys):
    error_state(lab)
    want = "service 'vm:100' in error state, must be disabled and fixed first\n"
    assert run(capsys, "set", "vm:100", "--state", "started") == (255, "", want)
    assert run(capsys, "migrate", "vm:100", "node2") == (255, "", want)
    assert run(capsys, "crm-command", "stop", "vm:100", "0") == (255, "", want)
    assert not (lab.root / "ha/crm_commands").exists()
    assert run(capsys, "set", "vm:100", "--state", "disabled")[0] == 0
    assert lab.read("ha/resources.cfg") == "vm: 100\n\tstate disabled\n\n"


def test_remove(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\n" "ct: 101\n\tstate stopped\n\n")
    lab.write("ha/rules.cfg", "node-affinity: r1\n\tnodes node1\n\tresources vm:100\n\n"
                              "resource-affinity: r2\n\taffinity negative\n"
                              "\tresources ct:101,vm:100\n\n")
    assert run(capsys, "remove", "vm:100")[0] == 0
    assert lab.read("ha/resources.cfg") == "ct: 101\n\tstate stopped\n\n"
    assert lab.read("ha/rules.cfg") == ("resource-affinity: r2\n\taffinity negative\n"
                                        "\tresources ct:101\n\n")
    assert run(capsys, "remove", "vm:100") == (255, "", "resource 'vm:100' is not HA managed\n")


# -- crm commands -------------------------------------------------------------------------
def test_crm_commands_appended(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\nct: 101\n\n")
    assert run(capsys, "migrate", "vm:100", "node2")[0] == 0
    assert run(capsys, "crm-command", "relocate", "101", "node3")[0] == 0
    assert run(capsys, "crm-command", "stop", "vm:100", "30")[0] == 0
    assert run(capsys, "crm-command", "node-maintenance", "enable", "node2")[0] == 0
    assert run(capsys, "crm-command", "node-maintenance", "disable", "node2")[0] == 0
    assert lab.read("ha/crm_commands") == (
        "migrate vm:100 node2\nrelocate ct:101 node3\nstop vm:100 30\n"
        "enable-node-maintenance node2\ndisable-node-maintenance node2\n")


def test_crm_command_errors(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\n")
    assert run(capsys, "migrate", "vm:102", "node2") == (
        255, "", "resource 'vm:102' is not HA managed\n")
    code, _, err = run(capsys, "crm-command", "stop", "vm:100", "-1")
    assert code == 255 and "timeout: value must have a minimum value of 0" in err
    assert run(capsys, "crm-command", "node-maintenance", "enable", "node9") == (
        255, "", "no such cluster node 'node9'\n")
    code, _, err = run(capsys, "crm-command", "bogus")
    assert code == 255 and err.startswith("ERROR: unknown command 'ha-manager crm-command "
                                          "bogus'")
    code, _, err = run(capsys, "migrate", "vm:100")
    assert code == 255 and err.startswith("400 not enough arguments")
    assert not (lab.root / "ha/crm_commands").exists()


# -- groups (PVE 8) and rules (PVE 9) ------------------------------------------------------
def test_groups_pve8(lab, capsys):
    lab.flavour(8)
    assert run(capsys, "groupadd", "g1", "--nodes", "node1:2,node2", "--restricted")[0] == 0
    assert lab.read("ha/groups.cfg") == "group: g1\n\tnodes node1:2,node2\n\trestricted 1\n\n"
    assert run(capsys, "groupset", "g1", "--nofailback", "1", "--comment", "c")[0] == 0
    assert lab.read("ha/groups.cfg") == ("group: g1\n\tcomment c\n\tnodes node1:2,node2\n"
                                         "\tnofailback 1\n\trestricted 1\n\n")
    code, out, _ = run(capsys, "groupconfig")
    assert out == ("group: g1\n\tcomment c\n\tnodes node1:2,node2\n\tnofailback 1\n"
                   "\trestricted 1\n\n")
    assert run(capsys, "groupadd", "g1", "--nodes", "node1") == (
        255, "", "create ha group failed: ha group ID 'g1' already defined\n")
    code, _, err = run(capsys, "groupadd", "g2")
    assert code == 255 and "nodes: property is missing and it is not optional" in err
    lab.write("ha/resources.cfg", "vm: 100\n\tgroup g1\n\n")
    assert run(capsys, "groupremove", "g1") == (
        255, "", "delete ha group failed: ha group is used by service 'vm:100'\n")
    lab.write("ha/resources.cfg", "")
    assert run(capsys, "groupremove", "g1")[0] == 0
    assert lab.read("ha/groups.cfg") == ""
    code, _, err = run(capsys, "rules", "list")
    assert code == 255 and err.startswith("ERROR: unknown command 'ha-manager rules'")


@pytest.mark.parametrize("cmd", ["groupadd", "groupset", "groupremove"])
def test_group_commands_rejected_on_pve9(lab, capsys, cmd):
    code, _, err = run(capsys, cmd, "g1", "--nodes", "node1")
    assert code == 255 and err.startswith(f"ERROR: unknown command 'ha-manager {cmd}'")
    assert not (lab.root / "ha/groups.cfg").exists()


def test_rules_pve9(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\nct: 101\n\n")
    assert run(capsys, "rules", "add", "node-affinity", "r1", "--resources", "vm:100",
               "--nodes", "node2:2,node3:1", "--strict", "1")[0] == 0
    assert lab.read("ha/rules.cfg") == ("node-affinity: r1\n\tnodes node2:2,node3:1\n"
                                        "\tresources vm:100\n\tstrict 1\n\n")
    assert run(capsys, "rules", "add", "resource-affinity", "r2", "--resources",
               "vm:100,ct:101", "--affinity", "negative")[0] == 0
    assert run(capsys, "rules", "set", "node-affinity", "r1", "--comment", "pin")[0] == 0
    assert lab.read("ha/rules.cfg").startswith("node-affinity: r1\n\tcomment pin\n")
    code, out, _ = run(capsys, "rules", "list", "--output-format", "json")
    recs = json.loads(out)
    assert [r["rule"] for r in recs] == ["r1", "r2"]
    assert recs[0]["nodes"] == "node2:2,node3:1" and recs[1]["affinity"] == "negative"
    code, out, _ = run(capsys, "rules", "config")
    assert code == 0 and "r1" in out and "in use" in out
    assert run(capsys, "rules", "add", "node-affinity", "r1", "--resources", "vm:100",
               "--nodes", "node1") == (255, "", "create ha rule failed: HA rule 'r1' already "
                                                "defined\n")
    assert run(capsys, "rules", "add", "node-affinity", "r3", "--resources", "vm:102",
               "--nodes", "node1") == (255, "", "cannot use unmanaged resource(s) vm:102.\n")
    assert run(capsys, "rules", "add", "node-affinity", "r3", "--resources", "vm:100",
               "--nodes", "node9") == (255, "", "cannot use non-existant node(s) node9.\n")
    assert run(capsys, "rules", "set", "node-affinity", "nope", "--strict", "0") == (
        255, "", "update HA rules failed: HA rule 'nope' does not exist\n")
    assert run(capsys, "rules", "remove", "r1")[0] == 0
    assert lab.read("ha/rules.cfg").startswith("resource-affinity: r2\n")


def test_rules_need_migrated_groups_and_quorum(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\n")
    lab.write("ha/groups.cfg", "group: g1\n\tnodes node1\n\n")
    assert run(capsys, "rules", "add", "node-affinity", "r1", "--resources", "vm:100",
               "--nodes", "node1") == (
        255, "", "cannot create ha rule: ha groups have not been migrated yet\n")
    lab.inquorate()
    assert run(capsys, "rules", "add", "node-affinity", "r1", "--resources", "vm:100",
               "--nodes", "node1") == (255, "", "cluster not ready - no quorum?\n")


# -- status and config ----------------------------------------------------------------------
def test_config(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 102\n\tstate stopped\n\nct: 101\n\tmax_restart 0\n\n")
    assert run(capsys, "config") == (0, "ct:101\n\tmax_restart 0\n\nvm:102\n\tstate stopped\n\n",
                                     "")
    assert run(capsys, "config", "--type", "vm")[1] == "vm:102\n\tstate stopped\n\n"
    code, _, err = run(capsys, "config", "--type", "xx")
    assert code == 255 and "type: value 'xx' does not have a value in the enum" in err


def test_status_from_files(lab, capsys, monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    lab.flavour(8)
    lab.write("ha/resources.cfg", "vm: 100\n\nct: 101\n\n")
    lab.write("ha/manager_status", json.dumps({
        "master_node": "node1", "timestamp": NOW - 1,
        "node_status": {"node1": "online", "node2": "online"},
        "service_status": {"vm:100": {"state": "started", "node": "node1", "running": 1}}}))
    lab.write("nodes/node1/lrm_status", json.dumps({"state": "active", "mode": "active",
                                                    "timestamp": NOW - 3}))
    code, out, _ = run(capsys, "status")
    assert (code, out) == (0, "quorum OK\n"
                              "master node1 (active, Wed Nov 23 11:07:22 2016)\n"
                              "lrm node1 (active, Wed Nov 23 11:07:20 2016)\n"
                              "lrm node2 (unable to read lrm status)\n"
                              "service vm:100 (node1, started)\n"
                              "service ct:101 (node2, queued)\n")
    code, out, _ = run(capsys, "status", "--verbose")
    assert '"quorate" : 1' in out.split("full cluster state:\n")[1]
    lab.inquorate()
    assert run(capsys, "status")[1].startswith("quorum No quorum on node 'node1'!\n")
    code, _, err = run(capsys, "status", "--nope")
    assert code == 255 and err.startswith("Unknown option: nope")


def test_unknown_command(lab, capsys):
    code, _, err = run(capsys, "frobnicate")
    assert code == 255 and err.startswith("ERROR: unknown command 'ha-manager frobnicate'\n"
                                          "USAGE: ha-manager <COMMAND>")
    assert run(capsys)[0] == 255


def test_status_freshness_is_judged_on_the_viewers_own_clock(lab, capsys, monkeypatch,
                                                             tmp_path):
    """Status.pm: `time()` of the viewing node against each writer's timestamp
    (pve-faults.md §7.1): > 2 s ahead "detected time drift!", > 30 s old "dead?"."""
    from pvemu import wallclock

    monkeypatch.setattr(wallclock, "OFFSET_FILE", str(tmp_path / "clock_offset"))
    monkeypatch.setattr("time.time", lambda: NOW)
    lab.write("ha/resources.cfg", "vm: 100\n\n")
    lab.write("ha/manager_status", json.dumps({
        "master_node": "node1", "timestamp": NOW, "node_status": {"node1": "online"},
        "service_status": {}}))
    lab.write("nodes/node1/lrm_status", json.dumps({"state": "active", "mode": "active",
                                                    "timestamp": NOW}))
    wallclock.set_offset(-10)  # the viewer is behind: the writer looks 10 s ahead
    out = run(capsys, "status")[1]
    assert "master node1 (detected time drift!, " in out
    assert "lrm node1 (detected time drift!, " in out
    wallclock.set_offset(40)  # the viewer is ahead: the writer looks 40 s old
    out = run(capsys, "status")[1]
    assert "lrm node1 (old timestamp - dead?, " in out
