"""Node logs are asked for with PVE's own journalctl, over a window, and redacted."""

from __future__ import annotations

from harness.report.node_logs import collect, journal_argv, watchdog_trail
from tests.twins import FakeCluster, FakeLab, FakeNode


def test_the_journal_is_read_over_the_window_for_the_cluster_and_guest_units():
    node1 = FakeNode("node1", "... pve-ha-lrm: pvecm add --password hunter2\n")
    node2 = FakeNode("node2", [(1, "", "bad")])
    node3 = FakeNode("node3", "")
    cluster = FakeCluster(node1, node2, node3, lab=FakeLab(powered={"node1", "node2"}))
    logs = collect(cluster, 1700000000.4, 1700000090.6, guest_vmids=(100, 101))
    assert node1.calls[-1].argv == tuple(journal_argv(1700000000.4, 1700000090.6, (
        "corosync", "pve-cluster", "pve-ha-crm", "pve-ha-lrm", "watchdog-mux",
        "pve-container@100", "pve-container@101")))
    assert "--since" in node1.calls[-1].argv and "@1700000000" in node1.calls[-1].argv
    assert "hunter2" not in logs["node1"] and "[REDACTED]" in logs["node1"]
    assert logs["node2"] == "(journalctl: bad)"
    assert logs["node3"] == "(powered off: no logs to read)" and node3.calls == []


def test_a_watchdog_trail_keeps_the_last_lines_about_the_watchdog_locks_and_quorum():
    log = "".join(f"2026-12-07T10:00:{i:02d} node3 pve-ha-crm: round {i}\n" for i in range(20))
    log += ("2026-12-07T10:00:21 node3 pve-ha-crm: status change master => lost_manager_lock\n"
            "2026-12-07T10:00:22 node3 pve-ha-crm: err: reading crm commands failed - "
            "cfs-lock 'domain-ha' error: no quorum!\n"
            "2026-12-07T10:00:27 node3 watchdog-mux: client watchdog expired - disable "
            "watchdog updates\n")
    node3 = FakeNode("node3", log)
    cluster = FakeCluster(FakeNode("node1", ""), node3, lab=FakeLab(powered={"node3"}))
    trail = watchdog_trail(cluster, "node3", 1800000000.0, lines=2)
    assert trail.splitlines() == log.splitlines()[-2:]
    assert "@1800000000" in node3.calls[-1].argv
    assert watchdog_trail(FakeCluster(FakeNode("node3", "a\nb\n"), lab=FakeLab(
        powered={"node3"})), "node3", 0.0) == "a\nb"
