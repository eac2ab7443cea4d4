"""Daemon faults (harness/faults_daemon.py): the exact systemd commands each verb sends to
the node, what ``end`` sends to undo it, and the sweep that resumes paused daemons."""

from __future__ import annotations

import subprocess

import pytest

from harness import node_command
from harness.clock import Clock
from harness.errors import ConfigError
from harness.events import FaultBegin
from harness.faults import FaultInjector
from harness.faults_daemon import UNITS
from harness.lab_api import Capability
from harness.timeline import EventKind, Timeline
from tests.twins import FakeCluster, FakeLab, FakeNode


def setup():
    nodes = [FakeNode(n) for n in ("node1", "node2", "node3")]
    lab = FakeLab(names=("node1", "node2", "node3"), capabilities=Capability.POWER)
    cluster = FakeCluster(*nodes, lab=lab)
    timeline = Timeline(Clock())
    return FaultInjector(lab, timeline, cluster), cluster, timeline


def sent(cluster, node: str) -> list[str]:
    return [c.argv[0] for c in cluster.node(node).calls]


@pytest.mark.parametrize("unit", UNITS)
def test_kill_sends_sigkill_to_the_main_process_and_end_starts_it_only_if_inactive(unit):
    faults, cluster, timeline = setup()
    fault = faults.kill_daemon("node2", unit)
    assert fault.kind == "daemon.kill"
    assert sent(cluster, "node2") == [
        f"systemctl kill --kill-whom=main --signal=SIGKILL {unit}"]
    [begin] = timeline.events(EventKind.FAULT_BEGIN)
    assert begin.payload == FaultBegin("daemon.kill", "node2", f"SIGKILL {unit}")
    faults.end(fault)
    assert sent(cluster, "node2")[1] == \
        f"systemctl is-active --quiet {unit} || systemctl start {unit}"
    assert cluster.node("node1").calls == [] and cluster.node("node3").calls == []


def test_stop_is_systemctl_stop_and_is_undone_by_a_start_if_inactive():
    faults, cluster, _ = setup()
    fault = faults.stop_daemon("node1", "pve-ha-lrm.service")
    assert fault.kind == "daemon.stop"
    faults.end(fault)
    assert sent(cluster, "node1") == [
        "systemctl stop pve-ha-lrm",
        "systemctl is-active --quiet pve-ha-lrm || systemctl start pve-ha-lrm"]


def test_pause_is_sigstop_and_end_resumes_with_sigcont_while_the_unit_runs():
    faults, cluster, _ = setup()
    fault = faults.pause_daemon("node3", "corosync")
    assert fault.kind == "daemon.pause"
    assert faults.undo_all() == []
    assert sent(cluster, "node3") == [
        "systemctl kill --kill-whom=main --signal=SIGSTOP corosync",
        "! systemctl is-active --quiet corosync || "
        "systemctl kill --kill-whom=main --signal=SIGCONT corosync"]


@pytest.mark.parametrize("unit", ["pmxcfs", "pveproxy", "corosync; reboot", ""])
def test_anything_but_the_five_units_is_refused_before_a_command_is_sent(unit):
    faults, cluster, timeline = setup()
    with pytest.raises(ConfigError, match="use one of corosync, pve-cluster") as info:
        faults.kill_daemon("node1", unit)
    if unit == "pmxcfs":
        assert "pve-cluster" in (info.value.hint or "")
    assert all(n.calls == [] for n in cluster.nodes())
    assert timeline.events(EventKind.FAULT_BEGIN) == []


def test_the_sweep_continues_all_five_units_and_succeeds_where_there_is_no_systemctl():
    sweep = node_command.SWEEPS["daemons"]
    for unit in UNITS:
        assert unit in sweep
    assert "--kill-whom=main --signal=SIGCONT" in sweep
    result = subprocess.run(["/bin/bash", "-c", sweep], env={"PATH": "/nonexistent"},
                            capture_output=True, timeout=10)
    assert result.returncode == 0
