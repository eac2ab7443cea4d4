"""The in-node fault core of FaultInjector: apply, record, end, undo at teardown, sweep.

Each in-node fault module (network, daemons, clock, storage) builds ``NodeCommand``s;
these tests hold the machinery they share to its promises with a fake cluster.
"""

from __future__ import annotations

import subprocess

import pytest

from harness import node_command
from harness.clock import Clock
from harness.errors import CommandError, InterlockError, PvechaosError
from harness.events import FaultBegin, FaultEnd
from harness.faults import FaultInjector
from harness.lab_api import Capability
from harness.node_command import NodeCommand
from harness.timeline import EventKind, Timeline
from tests.twins import FakeCluster, FakeLab, FakeNode

CUT = NodeCommand("partition", "cut from node3", apply="nft add table inet t",
                  undo="nft delete table inet t")


def setup(answers=""):
    nodes = [FakeNode(n, answers) for n in ("node1", "node2", "node3")]
    lab = FakeLab(names=("node1", "node2", "node3"), capabilities=Capability.POWER)
    cluster = FakeCluster(*nodes, lab=lab)
    timeline = Timeline(Clock())
    return FaultInjector(lab, timeline, cluster), cluster, timeline


def commands(node: FakeNode) -> list[str]:
    return [c.argv[0] for c in node.calls]


def test_a_fault_is_applied_recorded_and_ended_on_its_node_only():
    faults, cluster, timeline = setup()
    fault = faults._node_fault("node2", CUT)
    assert commands(cluster.node("node2")) == [CUT.apply]
    assert cluster.node("node1").calls == [] and cluster.node("node3").calls == []
    [begin] = timeline.events(EventKind.FAULT_BEGIN)
    assert begin.payload == FaultBegin("partition", "node2", "cut from node3")
    faults.end(fault)
    assert commands(cluster.node("node2")) == [CUT.apply, CUT.undo]
    [end] = timeline.events(EventKind.FAULT_END)
    assert end.payload == FaultEnd("partition", "node2", "cut from node3")
    assert faults.undo_all() == [] and len(cluster.node("node2").calls) == 2


def test_teardown_undoes_what_is_still_in_force_newest_first():
    faults, cluster, timeline = setup()
    other = NodeCommand("netem", "delay 5ms", apply="tc add", undo="tc del")
    faults._node_fault("node1", CUT)
    faults._node_fault("node1", other)
    assert faults.undo_all() == []
    assert commands(cluster.node("node1")) == [CUT.apply, other.apply, other.undo, CUT.undo]
    assert [e.payload.fault for e in timeline.events(EventKind.FAULT_END)] == \
        ["netem", "partition"]


def test_a_failed_apply_is_undone_at_once_and_raised_with_the_nodes_words():
    faults, cluster, timeline = setup(lambda call: (1, "", "nft: command not found")
                                      if call.argv[0] == CUT.apply else "")
    with pytest.raises(CommandError, match="nft: command not found"):
        faults._node_fault("node3", CUT)
    assert commands(cluster.node("node3")) == [CUT.apply, CUT.undo]
    assert timeline.events(EventKind.FAULT_BEGIN) == [] and faults.undo_all() == []


def test_a_node_outside_the_lab_is_refused_before_anything_runs():
    faults, cluster, _ = setup()
    with pytest.raises(InterlockError):
        faults._node_fault("node9", CUT)
    assert all(n.calls == [] for n in cluster.nodes())


def test_ending_a_fault_not_in_force_says_so():
    faults, _, _ = setup()
    fault = faults._node_fault("node1", CUT)
    faults.end(fault)
    with pytest.raises(PvechaosError, match="no partition in force on node1"):
        faults.end(fault)


def test_the_sweep_runs_every_registered_cleanup_on_every_powered_node(monkeypatch):
    monkeypatch.setattr(node_command, "SWEEPS", {"a": "nft delete table inet t || true",
                                                  "b": "tc qdisc del dev eth0 root || true"})
    faults, cluster, _ = setup()
    faults.lab.power_cut("node3")
    assert faults.sweep_nodes() == {}
    script = "nft delete table inet t || true; tc qdisc del dev eth0 root || true"
    assert commands(cluster.node("node1")) == [script] == commands(cluster.node("node2"))
    assert cluster.node("node3").calls == []


def test_an_unarmed_existing_cluster_refuses_every_in_node_fault_before_acting():
    faults, cluster, timeline = setup()
    faults.lab.refusal = "the run was not started with --destructive"
    with pytest.raises(InterlockError, match="refusing partition on node1: the run was "
                                             "not started with --destructive"):
        faults._node_fault("node1", CUT)
    assert all(n.calls == [] for n in cluster.nodes())
    assert timeline.events(EventKind.FAULT_BEGIN) == []


def broken_undo(call):
    """The undo's session breaks (the node reset under it); the apply works."""
    if call.argv[0] == CUT.undo:
        raise PvechaosError("node2: SSH session closed (EOF)")
    return ""


def test_an_undo_cut_short_by_the_nodes_reset_counts_as_done_and_says_so():
    faults, cluster, timeline = setup(broken_undo)
    fault = faults._node_fault("node2", CUT)
    cluster.node("node2").boot = "node2-boot-2"  # the node came back on a new boot
    faults.end(fault)
    [end] = timeline.events(EventKind.FAULT_END)
    assert end.payload == FaultEnd("partition", "node2", "cut from node3")
    [note] = timeline.events(EventKind.NOTE)
    assert "partition on node2 ended by the node's reset" in note.payload.text
    assert faults.undo_all() == []


def test_an_undo_that_fails_on_the_same_boot_is_tried_once_more_then_raised():
    faults, cluster, timeline = setup(broken_undo)
    fault = faults._node_fault("node2", CUT)
    with pytest.raises(PvechaosError, match="session closed"):
        faults.end(fault)
    assert commands(cluster.node("node2")) == [CUT.apply, CUT.undo, CUT.undo]
    assert timeline.events(EventKind.FAULT_END) == []


def test_a_second_try_after_a_lost_session_ends_the_fault():
    tries = []

    def once_broken(call):
        if call.argv[0] == CUT.undo and not tries:
            tries.append(call)
            raise PvechaosError("node2: SSH session closed (EOF)")
        return ""

    faults, cluster, timeline = setup(once_broken)
    faults.end(faults._node_fault("node2", CUT))
    assert commands(cluster.node("node2")) == [CUT.apply, CUT.undo, CUT.undo]
    assert len(timeline.events(EventKind.FAULT_END)) == 1


def test_an_undo_on_a_node_powered_off_meanwhile_counts_as_done():
    faults, cluster, timeline = setup(broken_undo)
    fault = faults._node_fault("node2", CUT)
    faults.lab.power_cut("node2")
    faults.end(fault)
    [note] = timeline.events(EventKind.NOTE)
    assert "ended by the node is powered off" in note.payload.text


def test_end_all_ends_every_fault_even_when_one_undo_fails():
    faults, cluster, timeline = setup(lambda call: (1, "", "nft: busy")
                                      if call.argv[0] == CUT.undo else "")
    other = NodeCommand("partition", "cut from node1", apply="nft add x", undo="nft del x")
    faults._node_fault("node1", other)  # older: ended after node3's failed
    faults._node_fault("node3", CUT)
    with pytest.raises(CommandError, match="nft: busy"):
        faults.end_all("partition")
    assert commands(cluster.node("node1"))[-1] == other.undo
    assert [e.payload.node for e in timeline.events(EventKind.FAULT_END)] == ["node1"]


def test_leftovers_names_only_the_powered_nodes_with_something_in_force(monkeypatch):
    monkeypatch.setattr(node_command, "LEFTOVERS", {"a": "list-a", "b": "list-b"})
    faults, cluster, _ = setup(lambda call: "chain loss_out\n"
                               if call.argv[0] == "list-a; list-b" else "")
    cluster.node("node1").answers = ""
    faults.lab.power_cut("node3")
    assert faults.leftovers() == {"node2": "chain loss_out"}
    assert cluster.node("node3").calls == []
    assert faults.leftovers(["node3"]) == {}


def test_every_registered_probe_and_sweep_is_valid_shell_for_the_nodes_sh():
    assert set(node_command.LEFTOVERS) <= set(node_command.SWEEPS)
    for name, script in {**{f"sweep {k}": v for k, v in node_command.SWEEPS.items()},
                         **{f"leftovers {k}": v for k, v in node_command.LEFTOVERS.items()}
                         }.items():
        checked = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert checked.returncode == 0, f"{name}: {checked.stderr}"


def probe_broken_once(found: str):
    """The first leftovers probe loses its session (the node reset under it); the next
    one answers ``found``."""
    tries = []

    def answer(call):
        if call.argv[0] == "list-a" and not tries:
            tries.append(call)
            raise PvechaosError("node2: SSH session closed (EOF)")
        return found if call.argv[0] == "list-a" else ""
    return answer


def test_a_leftovers_probe_cut_short_by_a_reset_probes_the_new_boot(monkeypatch):
    monkeypatch.setattr(node_command, "LEFTOVERS", {"a": "list-a"})
    faults, cluster, _ = setup(probe_broken_once("chain cut_in\n"))
    cluster.node("node2").boot = "node2-boot-2"
    assert faults.leftovers(["node2"]) == {"node2": "chain cut_in"}  # not assumed clean
    assert commands(cluster.node("node2")).count("list-a") == 2


def test_a_leftovers_probe_on_a_node_powered_off_meanwhile_finds_nothing(monkeypatch):
    monkeypatch.setattr(node_command, "LEFTOVERS", {"a": "list-a"})

    def cut_then_fail(call):
        if call.argv[0] == "list-a":
            faults.lab.power_cut("node2")
            raise PvechaosError("node2: SSH session closed (EOF)")
        return ""

    faults, cluster, _ = setup(cut_then_fail)
    assert faults.leftovers(["node2"]) == {}


def test_a_leftovers_probe_failing_twice_on_the_same_boot_raises(monkeypatch):
    monkeypatch.setattr(node_command, "LEFTOVERS", {"a": "list-a"})

    def always(call):
        if call.argv[0] == "list-a":
            raise PvechaosError("node2: SSH session closed (EOF)")
        return ""

    faults, cluster, _ = setup(always)
    with pytest.raises(PvechaosError, match="session closed"):
        faults.leftovers(["node2"])
    assert commands(cluster.node("node2")).count("list-a") == 2
