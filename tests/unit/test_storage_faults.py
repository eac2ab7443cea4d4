"""Storage faults (harness/faults_storage.py): the in-node cut's nft rules, the lab-level
outage recorded and undone at teardown, and refused on a lab without STORAGE."""

from __future__ import annotations

import pytest

from harness import node_command
from harness.clock import Clock
from harness.errors import UnsupportedFault
from harness.events import FaultBegin, FaultEnd
from harness.faults import FaultInjector
from harness.faults_storage import TABLE, cut_command
from harness.lab_api import Capability
from harness.timeline import EventKind, Timeline
from tests.twins import FakeCluster, FakeLab, FakeNode

NAMES = ("node1", "node2", "node3")


def setup(capabilities=Capability.POWER | Capability.STORAGE):
    lab = FakeLab(names=NAMES, capabilities=capabilities)
    cluster = FakeCluster(*[FakeNode(n) for n in NAMES], lab=lab)
    timeline = Timeline(Clock())
    return FaultInjector(lab, timeline, cluster), lab, cluster, timeline


def test_the_cut_drops_only_nfs_ports_of_the_storage_server_both_ways():
    cmd = cut_command("198.18.0.1")
    assert cmd.fault == "storage.cut"
    assert "ip daddr 198.18.0.1" in cmd.apply and "ip saddr 198.18.0.1" in cmd.apply
    assert cmd.apply.count("{ 111, 2049 }") == 2  # SSH from the server's address survives
    assert "hook output" in cmd.apply and "hook input" in cmd.apply
    assert cmd.undo.startswith(f"nft delete table {TABLE}")
    assert "ip6 daddr fd00::1" in cut_command("fd00::1").apply


def test_storage_cut_runs_on_the_node_and_ends():
    faults, lab, cluster, timeline = setup()
    fault = faults.storage_cut("node2")
    [begin] = timeline.events(EventKind.FAULT_BEGIN)
    assert begin.payload == FaultBegin("storage.cut", "node2",
                                       "NFS traffic to 198.18.0.1 dropped")
    faults.end(fault)
    assert [c.argv[0] for c in cluster.node("node2").calls] == \
        [cut_command("198.18.0.1").apply, cut_command("198.18.0.1").undo]
    assert cluster.node("node1").calls == []


def test_a_killed_runs_storage_table_is_swept():
    assert node_command.SWEEPS["harness.faults_storage"].count(TABLE) == 1
    assert "|| true" in node_command.SWEEPS["harness.faults_storage"]


def test_the_outage_is_recorded_and_restored_at_teardown():
    faults, lab, _cluster, timeline = setup()
    fault = faults.storage_outage()
    assert fault.kind == "storage.outage" and lab.calls == [("storage_outage", "")]
    [begin] = timeline.events(EventKind.FAULT_BEGIN)
    assert begin.payload.fault == "storage.outage" and begin.payload.node == "198.18.0.1"
    assert faults.undo_all() == []
    assert lab.calls[-1] == ("storage_restore", "")
    [end] = timeline.events(EventKind.FAULT_END)
    assert end.payload == FaultEnd("storage.outage", "198.18.0.1", begin.payload.detail)


def test_a_restore_by_the_scenario_leaves_nothing_to_undo():
    faults, lab, _cluster, _timeline = setup()
    faults.storage_outage()
    faults.storage_restore()
    assert faults.undo_all() == []
    assert lab.calls == [("storage_outage", ""), ("storage_restore", "")]


def test_a_lab_without_storage_refuses_the_outage_and_records_nothing():
    faults, lab, _cluster, timeline = setup(Capability.POWER)
    with pytest.raises(UnsupportedFault, match="(?s)cannot storage outage.*STORAGE"):
        faults.storage_outage()
    with pytest.raises(UnsupportedFault, match="STORAGE"):
        faults.storage_restore()
    assert lab.calls == [] and timeline.events(EventKind.FAULT_BEGIN) == []
