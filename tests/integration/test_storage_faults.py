"""The shared NFS storage stalls like a hard mount on the embedded lab (pve-faults.md §8):
a storage cut (one node) and a storage outage (the server, every node) block I/O without
failing it, `pvesm status` shows the storage inactive, HA keeps the guest `started`
(§8.1: HA does not watch storage), and everything carries on when the server is back.
Timescale 0.1."""

from __future__ import annotations

import time

import pytest

from harness.clock import Clock
from harness.faults import FaultInjector
from harness.shared_storage import storage_state
from harness.timeline import EventKind, Timeline
from harness.waits import NotYet, wait_until
from harness.writelog import parse_log
from lab.processes import process_start_time

K = 0.1
VMID = 100
STALL_S = 4.0  # how long each fault is held
PROBE_S = 2.0  # a write that has not finished within this is blocked
LOG = f"/mnt/pve/shared/images/{VMID}/vm-{VMID}-disk-0.raw"


@pytest.fixture(scope="module")
def h():
    from harness.timescale import Timescale
    from lab.embedded.ha_testbed import boot_ha_lab
    from tests.integration.conftest import leftovers

    lab = boot_ha_lab("nfsfault", "198.18.104", timescale=Timescale(K))
    try:
        lab.create_ct("node1", VMID)
        lab.ha("add", f"ct:{VMID}")
        lab.wait_answer(VMID, "node1", timeout_s=lab.s(60) + 10)
        lab.wait_service(f"ct:{VMID}", "started", "node1", timeout_s=lab.s(60))
        for name in ("node1", "node2", "node3"):  # mounted everywhere (pvesm activates)
            assert storage_state(lab.node(name), "shared") == "active"
        yield lab
    finally:
        lab.close()
        assert leftovers(lab.lab.config) == []


def blocked_write(node, name: str) -> int:
    """A write on the storage, SIGKILLed if still blocked after PROBE_S: its exit code
    (137: it was blocked and SIGKILL interrupted the wait, nfs(5) `hard`)."""
    out = node.run(f"timeout -s KILL {PROBE_S:g} sh -c 'echo x > /mnt/pve/shared/{name}'; "
                   "echo rc=$?", timeout_s=PROBE_S + 10)
    return int(out.stdout.strip().rsplit("rc=", 1)[1])


def start_write(node, name: str) -> None:
    """A write left running in the background on the node (it waits out the stall)."""
    node.check(f"setsid sh -c 'echo late > /mnt/pve/shared/{name}' "
               "</dev/null >/dev/null 2>&1 &", timeout_s=10)


def wait_written(h, name: str) -> None:
    path = h.lab.config.lab_dir / "nfs" / name  # the export directory, seen from the host
    wait_until(f"{name} written", lambda: (path.exists() and path.read_text() == "late\n")
               or NotYet("not yet"), timeout_s=10, interval_s=0.1)


def largest_pause_s(h) -> float:
    """The longest time between two of the guest's write records (its log, read on the
    host), and no record lost or doubled."""
    records, _torn = parse_log((h.lab.config.lab_dir / "nfs" / LOG.split("shared/")[1])
                               .read_text(errors="replace"))
    seqs = [r.seq for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a write was lost or doubled"
    pauses = [b.mono_ns - a.mono_ns for a, b in zip(records, records[1:], strict=False)]
    return max(pauses) / 1e9


def still_started(h) -> None:
    assert h.services(on="node2")[f"ct:{VMID}"] == ("node1", "started")


def test_a_storage_cut_stalls_the_node_until_it_ends(h):
    faults = FaultInjector(h.lab, Timeline(Clock()), h.cluster)
    node1, node2 = h.node("node1"), h.node("node2")
    fault = faults.storage_cut("node1")
    try:
        time.sleep(1.0)  # the client's heartbeat notices (nfs_client.ANSWER_S)
        assert blocked_write(node1, "cut-probe") == 137
        assert blocked_write(node2, "cut-other") == 0  # the other nodes are not cut
        assert storage_state(node1, "shared") == "inactive"
        assert storage_state(node2, "shared") == "active"
        assert list(faults.leftovers()) == ["node1"]
        start_write(node1, "cut-late")
        before = h.answer(VMID)
        time.sleep(STALL_S)
        still_started(h)
        assert h.answer(VMID) is None, f"the guest answered during the stall: {before}"
    finally:
        faults.end(fault)
    assert faults.leftovers() == {}
    wait_written(h, "cut-late")
    wait_until("shared active on node1", lambda: storage_state(node1, "shared") == "active"
               or NotYet("inactive"), timeout_s=10)
    h.wait_answer(VMID, "node1", timeout_s=10)
    still_started(h)
    assert largest_pause_s(h) >= STALL_S
    assert faults.undo_all() == []


def test_a_storage_outage_stalls_every_node_until_restored(h):
    timeline = Timeline(Clock())
    faults = FaultInjector(h.lab, timeline, h.cluster)
    server = h.lab._nfs.pid
    faults.storage_outage()
    try:
        assert open(f"/proc/{server}/stat").read().rsplit(")", 1)[1].split()[0] == "T"
        time.sleep(1.0)
        for name in ("node1", "node2", "node3"):
            assert blocked_write(h.node(name), f"out-{name}") == 137
        assert storage_state(h.node("node3"), "shared") == "inactive"
        start_write(h.node("node2"), "out-late")
        time.sleep(STALL_S)
        still_started(h)
    finally:
        assert faults.undo_all() == []  # teardown restores the server
    assert process_start_time(server) is not None
    wait_written(h, "out-late")
    h.wait_answer(VMID, "node1", timeout_s=10)
    assert largest_pause_s(h) >= STALL_S
    kinds = [e.kind for e in timeline.events()]
    assert EventKind.FAULT_BEGIN in kinds and EventKind.FAULT_END in kinds
