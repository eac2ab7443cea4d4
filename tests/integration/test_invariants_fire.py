"""Each safety invariant fires when the lab is made to break it (issue: a checker that
cannot fail proves nothing). The breakage is provoked through the lab's own guest
runtime, as a faulty HA stack or storage would do it; the checker is the real one,
reading the real probe, watchers and write log."""

from __future__ import annotations

import re
import sys
from contextlib import ExitStack
from pathlib import Path

from harness.clock import Clock
from harness.ha_watcher import HaWatcher
from harness.invariants import InvariantChecker
from harness.probes import Probe
from harness.timeline import EventKind, Timeline
from harness.waits import wait_until
from harness.watchers import QuorumWatcher
from harness.writelog import analyse, parse_log

DISK = "images/100/vm-100-disk-0.raw"
REPO = Path(__file__).resolve().parents[2]  # the lab's own code, as its node commands run it


def rogue_start(h, node: str, mac: str) -> None:
    """Start ct:100's runtime on node bypassing every guard (config location, quorum,
    HA), as a buggy stack would."""
    script = (
        "from pathlib import Path\n"
        "from pvemu.guest_lifecycle import NodeGuests\n"
        f"g = NodeGuests({node!r})\n"
        "disk = g.storages.activate('shared') / " + repr(DISK) + "\n"
        f"g.runtime.spawn('ct:100', 100, '{h.guest_ip(100)}/24', {mac!r}, 8080, disk, "
        "node=g.node, lab=g.info.nfs_export.parent)\n")
    h.node(node).check("env", f"PYTHONPATH={REPO}", sys.executable, "-c", script,
                       timeout_s=30)


def setup(h, stack: ExitStack):
    h.create_ct("node1", 100)
    h.node("node1").check("pct", "start", "100", timeout_s=30)
    mac = re.search(r"hwaddr=([0-9A-Fa-f:]+)", h.node("node1").check("pct", "config", "100"))[1]
    timeline = Timeline(Clock())
    disk = h.lab.config.lab_dir / "nfs" / DISK  # the lab's shared export, read from here

    def read_log():
        return analyse(*parse_log(disk.read_text(errors="replace")))

    probe = stack.enter_context(Probe("ct:100", h.guest_ip(100), 8080, timeline))
    stack.enter_context(QuorumWatcher(h.cluster, timeline))
    checker = InvariantChecker(timeline, "ct:100", read_log=read_log,
                               acknowledged=probe.acknowledged, interval_s=0.5)
    stack.enter_context(checker)
    wait_until("the probe to hear ct:100 from node1",
               lambda: probe.current and probe.current.node == "node1", timeout_s=15)
    return checker, mac, probe


def fired(checker, invariant: str) -> bool:
    checker.check()
    return any(v.invariant == invariant for v in checker.violations)


def test_a_doubled_guest_is_caught(ha_lab):
    h = ha_lab("idouble", "198.18.67", timescale=0.1)
    with ExitStack() as stack:
        checker, mac, _ = setup(h, stack)
        assert not checker.violations
        rogue_start(h, "node2", mac)  # a second copy writing to the same disk
        wait_until("the doubled guest to be caught", lambda: fired(checker, "doubled_guest"),
                   timeout_s=15)


def test_a_guest_started_without_quorum_is_caught(ha_lab):
    h = ha_lab("inoq", "198.18.68", timescale=0.1)
    with ExitStack() as stack:
        checker, mac, probe = setup(h, stack)
        h.lab.power_cut("node1")  # the guest dies with it
        h.lab.power_cut("node2")
        node3 = h.node("node3")
        wait_until("node3 to lose quorum", lambda: not node3.quorum().quorate, timeout_s=60)
        wait_until("the watcher to see node3 lose quorum",
                   lambda: checker.timeline.events(EventKind.QUORUM_LOST, source="node3"),
                   timeout_s=10)
        assert not checker.violations
        rogue_start(h, "node3", mac)
        wait_until("the start without quorum to be caught",
                   lambda: fired(checker, "started_without_quorum"), timeout_s=20)
        assert probe.current and probe.current.node == "node3"


def test_a_lost_write_is_caught(ha_lab):
    h = ha_lab("ilost", "198.18.69", timescale=0.1)
    with ExitStack() as stack:
        checker, _, probe = setup(h, stack)
        wait_until("a few acknowledged writes", lambda: probe.acknowledged() and
                   probe.acknowledged()[0][1] >= 5, timeout_s=15)
        h.node("node1").check("pct", "stop", "100", timeout_s=30)
        assert not fired(checker, "lost_write")
        # the storage loses the tail of the disk: the last 20 records, all acknowledged
        disk = h.lab.config.lab_dir / "nfs" / DISK
        lines = disk.read_text().splitlines(keepends=True)
        disk.write_text("".join(lines[:-20]))
        assert fired(checker, "lost_write")


def test_a_guest_that_survived_its_nodes_fence_is_caught(ha_lab):
    """node1's watchdog-mux is frozen, so the isolated node1 never resets: HA fences it
    and recovers the guest elsewhere while node1's copy runs on; when node1's cable is
    back the probe hears that old copy again."""
    h = ha_lab("ifence", "198.18.57", timescale=0.1)
    h.create_ct("node1", 100)
    h.ha("add", "ct:100")
    h.wait_service("ct:100", "started", "node1", timeout_s=h.s(60) + 10)
    timeline = Timeline(Clock())
    disk = h.lab.config.lab_dir / "nfs" / DISK
    with ExitStack() as stack:
        probe = stack.enter_context(Probe("ct:100", h.guest_ip(100), 8080, timeline))
        stack.enter_context(QuorumWatcher(h.cluster, timeline))
        stack.enter_context(HaWatcher(h.cluster, timeline, names=("node2", "node3")))
        checker = stack.enter_context(InvariantChecker(
            timeline, "ct:100", acknowledged=probe.acknowledged, interval_s=0.5,
            read_log=lambda: analyse(*parse_log(disk.read_text(errors="replace")))))
        wait_until("the probe to hear ct:100 from node1",
                   lambda: probe.current and probe.current.node == "node1", timeout_s=15)
        # softdog soft_noboot=1 (pve-faults.md §3.7): the fence becomes a log line
        h.node("node1").check("touch", "/run/pvechaos/softdog_noboot")
        h.lab.link_down("node1")
        wait_until("the guest to be recovered away from node1",
                   lambda: probe.current and probe.current.node != "node1",
                   timeout_s=10 + h.s(200))
        assert not any(v.invariant == "ran_after_fence" for v in checker.violations)
        h.lab.link_up("node1")
        # Both copies have the guest's MAC and address: the lab bridge sends the probe's
        # packets to whichever copy it last heard from. node1's copy speaks again when
        # it retransmits to the probe on a connection cut by the isolation, and TCP's
        # back-off doubles up to 120 s: wait that long (it usually takes seconds).
        wait_until("the surviving copy on node1 to be caught",
                   lambda: fired(checker, "ran_after_fence"), timeout_s=130)
