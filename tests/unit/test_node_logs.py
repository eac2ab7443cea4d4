"""Node logs are asked for with PVE's own journalctl, over a window, and redacted."""

from __future__ import annotations

from harness.report.node_logs import collect, journal_argv
from harness.ssh import CommandResult


class FakeNode:
    def __init__(self, name, out, rc=0):
        self.name, self.out, self.rc, self.argv = name, out, rc, None

    def run(self, *argv, timeout_s):
        self.argv = argv
        return CommandResult(self.name, " ".join(argv), self.rc, self.out, "bad", 0.1)


class FakeLab:
    def __init__(self, powered):
        self.powered = powered

    def is_powered(self, name):
        return name in self.powered


class FakeCluster:
    def __init__(self, nodes, powered):
        self._nodes = {n.name: n for n in nodes}
        self.names = tuple(sorted(self._nodes))
        self.lab = FakeLab(powered)

    def node(self, name):
        return self._nodes[name]


def test_the_journal_is_read_over_the_window_for_the_cluster_and_guest_units():
    node1 = FakeNode("node1", "... pve-ha-lrm: pvecm add --password hunter2\n")
    node2 = FakeNode("node2", "", rc=1)
    cluster = FakeCluster([node1, node2, FakeNode("node3", "")], powered={"node1", "node2"})
    logs = collect(cluster, 1700000000.4, 1700000090.6, guest_vmid=100)
    assert node1.argv == tuple(journal_argv(1700000000.4, 1700000090.6, (
        "corosync", "pve-cluster", "pve-ha-crm", "pve-ha-lrm", "watchdog-mux",
        "pve-container@100")))
    assert "--since" in node1.argv and "@1700000000" in node1.argv
    assert "hunter2" not in logs["node1"] and "[REDACTED]" in logs["node1"]
    assert logs["node2"] == "(journalctl: bad)"
    assert logs["node3"] == "(powered off: no logs to read)"
