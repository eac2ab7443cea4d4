"""Whole-node freeze on the embedded lab (pve-faults.md §9.3, the clock-running kind):
every process of the node stops, the others drop it from the membership after corosync's
token + consensus, its guest stops answering; on thaw softdog is overdue and resets it
(or, with soft_noboot, logs and lets it run on). A power cut ends a freeze; a frozen
node of a killed run is thawed and removed by the next run.

Measured here and printed (pytest -s): how long the others took to drop the frozen node,
how long it took to be a member again after thaw, and whether it was reset on thaw (its
boot id). Timescale 0.1 (HA, watchdog-mux and softdog timers ten times faster);
corosync's membership timers are not scaled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.clock import Clock
from harness.errors import LabError, PvechaosError
from harness.faults import FaultInjector
from harness.pve import parse_pvecm_nodes
from harness.timeline import EventKind, Timeline
from harness.waits import NotYet, wait_until
from lab.embedded import freeze
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import leftovers

K = 0.1
VMID = 103  # an unmanaged guest on node3 (no HA: node3's LRM stays idle)
FROZEN = "node3"
DROP_S = 20.0  # bound on the others dropping it (token + consensus, about 8 s, unscaled)
FROZEN_FOR_S = 12.0  # held beyond the drop, and beyond softdog's 10 s (§9.3)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def h():
    from harness.timescale import Timescale
    from lab.embedded.ha_testbed import boot_ha_lab

    lab = boot_ha_lab("nodefrz", "198.18.105", timescale=Timescale(K))
    try:
        yield lab
    finally:
        lab.close()
        assert leftovers(lab.lab.config) == []


def members(h, on: str) -> set[str] | NotYet:
    try:
        return {m.name for m in parse_pvecm_nodes(h.node(on).check("pvecm", "nodes"))}
    except PvechaosError as exc:
        return NotYet(str(exc))


def ssh_banner(address: str, timeout_s: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            return conn.recv(4).startswith(b"SSH")
    except OSError:
        return False


def test_a_frozen_node_stops_is_dropped_and_with_soft_noboot_runs_on_after_thaw(h):
    lab = h.lab
    h.create_ct(FROZEN, VMID)
    h.node(FROZEN).check("pct", "start", str(VMID), timeout_s=30)
    h.wait_answer(VMID, FROZEN, timeout_s=10)
    boot = h.boot_id(FROZEN)
    wait_until("all three members", lambda: members(h, "node1") == {"node1", "node2", "node3"}
               or NotYet("not yet"), timeout_s=20)
    cgroup = freeze.cgroup_path(lab.name, FROZEN)
    assert cgroup is not None, "this host has no freezer cgroup: the SIGSTOP fallback ran"
    init = lab._power[FROZEN].init_pid
    assert init in freeze.procs(cgroup)
    # softdog soft_noboot=1 (pve-faults.md §3.7): the overdue watchdog on thaw (§9.3; the
    # reset itself is the armed-watchdog test below) becomes a log line, so the node runs on
    h.node(FROZEN).check("touch", "/run/pvechaos/softdog_noboot")
    init_log = lab.config.lab_dir / "nodes" / FROZEN / "log" / "init.log"
    ignored = init_log.read_text(errors="replace").count("softdog: Triggered - Reboot ignored")

    timeline = Timeline(Clock())
    faults = FaultInjector(lab, timeline, h.cluster)
    faults.freeze(FROZEN)
    frozen_at = time.monotonic()
    assert freeze.is_stopped(cgroup)
    assert not ssh_banner(lab.config.node_address(FROZEN))  # sshd stopped with the rest
    assert h.answer(VMID) is None  # the guest is a process of the node: stopped too
    wait_until("node3 dropped", lambda: members(h, "node1") == {"node1", "node2"}
               or NotYet("still a member"), timeout_s=DROP_S, interval_s=0.2)
    dropped = time.monotonic() - frozen_at
    time.sleep(max(0.0, FROZEN_FOR_S - (time.monotonic() - frozen_at)))
    assert freeze.is_stopped(cgroup)

    faults.thaw(FROZEN)
    thawed_at = time.monotonic()
    assert not freeze.is_frozen(cgroup)
    wait_until("node3 a member again", lambda: members(h, "node1") == {"node1", "node2",
                                                                        "node3"}
               or NotYet("not yet"), timeout_s=DROP_S, interval_s=0.2)
    rejoined = time.monotonic() - thawed_at
    h.wait_answer(VMID, FROZEN, timeout_s=10)
    after = h.boot_id(FROZEN)
    print(f"\nfreeze: dropped after {dropped:.1f} s; member again {rejoined:.1f} s after "
          f"thaw; boot id {'unchanged' if after == boot else 'CHANGED (reset)'}")
    assert after == boot, "the node was reset on thaw although softdog had soft_noboot"
    assert init_log.read_text(errors="replace").count(
        "softdog: Triggered - Reboot ignored") > ignored, "softdog was not overdue on thaw"
    h.node(FROZEN).check("rm", "-f", "/run/pvechaos/softdog_noboot")
    assert 4.0 < dropped < DROP_S
    kinds = [e.kind for e in timeline.events()]
    assert EventKind.FAULT_FREEZE in kinds and EventKind.FAULT_THAW in kinds
    assert faults.undo_all() == []


def test_a_frozen_node_can_be_cut_and_booted_and_an_off_node_is_not_frozen(h):
    lab = h.lab
    cgroup = freeze.cgroup_path(lab.name, "node2")
    lab.freeze("node2")
    try:
        assert freeze.is_stopped(cgroup)
        lab.power_cut("node2")
        assert not lab.is_powered("node2") and freeze.procs(cgroup) == []
        with pytest.raises(LabError, match="powered off"):
            lab.freeze("node2")
    finally:  # a failed check above must not leave node2 frozen for the next tests
        if lab.is_powered("node2"):
            lab.power_cut("node2")
        lab.power_on("node2")
    assert not freeze.is_frozen(cgroup)
    wait_until("node2 answers SSH", lambda: ssh_banner(lab.config.node_address("node2"))
               or NotYet("no banner"), timeout_s=20)


def test_the_next_run_thaws_and_removes_a_killed_runs_frozen_node(make_lab):
    config = EmbeddedConfig(name="frzkill", subnet="198.18.106.0/24", node_count=1)
    # the run's guardian is killed first: this is the next run's sweep, the second line
    # behind the guardian (tests/integration/test_guardian.py shows the first)
    script = ("import os, signal, sys; from lab.embedded import EmbeddedLab, EmbeddedConfig\n"
              "lab = EmbeddedLab(EmbeddedConfig(name='frzkill', subnet='198.18.106.0/24', "
              "node_count=1))\nlab.start(); lab.freeze('node1')\n"
              "os.kill(lab.state.guardian['pid'], signal.SIGKILL)\n"
              "print('ready', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], text=True, cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    cgroup = freeze.cgroup_path("frzkill", "node1")
    assert freeze.is_stopped(cgroup)
    assert any(item.startswith("cgroup") for item in leftovers(config))
    lab = make_lab("frzkill", "198.18.106.0/24", node_count=1)
    lab.start()  # sweeps the killed run (thaws, kills, removes its cgroup), boots afresh
    assert lab.is_powered("node1") and not freeze.is_frozen(cgroup)
    lab.close()
    assert leftovers(config) == []


def test_a_node_frozen_with_its_watchdog_armed_is_reset_on_thaw(h):
    """§9.3 predicts (Guess there): softdog is overdue on thaw and resets the node before
    any of its processes runs again. Here the node's softdog (held by its init, on the
    monotonic clock: pvemu/softdog.py) publishes its deadline; the lab finds it passed
    and kills the node's processes before the thaw, and the init, thawed, fires it
    (watchdog-mux's client ages are on the wall clock: 3 s is below its scaled 6 s). The
    freeze is shorter than corosync's drop (the membership stays) but longer than the
    watchdog's 10 s (1 s at this timescale)."""
    lab, victim, vmid = h.lab, "node1", 104
    h.create_ct(victim, vmid)
    h.ha("add", f"ct:{vmid}")
    h.wait_service(f"ct:{vmid}", "started", victim, timeout_s=h.s(60) + 10)
    boot = h.boot_id(victim)
    init_log = lab.config.lab_dir / "nodes" / victim / "log" / "init.log"
    fired = "softdog: Initiating system reboot"

    def fires() -> int:
        return init_log.read_text(errors="replace").count(fired)

    # a process of the node that stamps the (shared) monotonic clock every 5 ms
    marker = lab.config.lab_dir / "nodes" / victim / "log" / "marker"
    h.node(victim).check(
        "nohup python3 -c 'import time\nwhile True:\n    open(\"/var/log/marker\", \"a\")"
        ".write(f\"{time.monotonic()}\\n\"); time.sleep(0.005)' >/dev/null 2>&1 &")
    wait_until("the marker stamping", lambda: marker.exists() and marker.stat().st_size > 0
               or NotYet("no stamp yet"), timeout_s=10)

    before = fires()
    lab.freeze(victim)
    time.sleep(3.0)
    thawing = time.monotonic()
    lab.thaw(victim)
    thawed = time.monotonic()

    def reset() -> bool | NotYet:
        return fires() > before or NotYet("no reset yet")

    wait_until(f"{victim} reset by its watchdog", reset, timeout_s=10, interval_s=0.05)
    reset_after = time.monotonic() - thawed
    wait_until(f"{victim} booted again", lambda: ssh_banner(lab.config.node_address(victim))
               or NotYet("no banner"), timeout_s=30)
    print(f"\nfreeze 3 s with the watchdog armed: reset {reset_after:.2f} s after thaw "
          f"(watchdog {h.s(10):g} s)")
    assert h.boot_id(victim) != boot
    assert reset_after < 2 * h.s(1) + 1.0  # the init's first look at the timer after thaw
    # the kernel's timer fired before userspace ran: no process of the node ran again
    stamps = [float(x) for x in marker.read_text().split()]
    assert stamps and max(stamps) < thawing, \
        f"the node's processes ran {max(stamps) - thawing:.3f} s after the thaw began"


def test_without_a_freezer_every_process_of_the_node_is_stopped_and_continued(make_lab,
                                                                             monkeypatch):
    """The fallback of a host with no freezer cgroup: SIGSTOP / SIGCONT (state T)."""
    monkeypatch.setattr(freeze, "cgroup_path", lambda lab, node: None)
    lab = make_lab("frzstop", "198.18.107.0/24", node_count=1)
    lab.start()
    init = lab._power["node1"].init_pid
    members = freeze.Stopper(init).members()
    assert init in members and len(members) > 3  # init, corosync, sshd, pmxcfs, ...

    def states() -> set[str]:
        seen = set()
        for pid in members:
            try:
                seen.add(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass
        return seen

    lab.freeze("node1")
    assert states() <= {"T", "Z"} and "T" in states()  # Z: a process that had ended
    assert not ssh_banner(lab.config.node_address("node1"))
    lab.thaw("node1")
    assert "T" not in states()
    wait_until("node1 answers SSH", lambda: ssh_banner(lab.config.node_address("node1"))
               or NotYet("no banner"), timeout_s=10)
    lab.freeze("node1")
    lab.power_cut("node1")  # SIGKILL ends stopped processes too
    assert not lab.is_powered("node1")


def test_a_node_freezes_with_a_fuse_request_in_flight(h):
    """A FUSE request in flight when its server stops (pmxcfs: a freeze may catch it
    mid-answer; here it gets SIGSTOP first) holds its client in a killable sleep that the
    cgroup v2 freezer does not enter, so the cgroup never says frozen: the freeze is done
    all the same (freeze.fuse_blocked), and on thaw the request is answered."""
    node = "node2"
    cgroup = freeze.cgroup_path(h.lab.name, node)
    if cgroup is None or freeze.is_v1(cgroup):
        pytest.skip("needs a cgroup v2 freezer")
    pmxcfs = next(pid for pid in freeze.procs(cgroup)
                  if b"pvemu.pmxcfs" in Path(f"/proc/{pid}/cmdline").read_bytes())
    h.node(node).check("sh", "-c", "rm -f /tmp/fuse-read; (sleep 1; cat "
                       "/etc/pve/corosync.conf > /tmp/fuse-read) >/dev/null 2>&1 &")
    os.kill(pmxcfs, signal.SIGSTOP)  # from the host: no SSH login needs /etc/pve then
    try:
        wait_until("the reader to wait on pmxcfs in the kernel", lambda: waits_on_fuse(
            cgroup, "cat") or NotYet("no FUSE wait yet"), timeout_s=10, interval_s=0.05)
        h.lab.freeze(node)  # returns: the cgroup's other tasks are frozen
        assert not freeze.is_frozen(cgroup)  # as the kernel sees it: one task in D
        assert freeze.is_stopped(cgroup)  # as the lab sees it: that task waits on pmxcfs
        h.lab.thaw(node)
    finally:
        os.kill(pmxcfs, signal.SIGCONT)
    wait_until("the read to be answered", lambda: "totem" in h.node(node).run(
        "cat", "/tmp/fuse-read", timeout_s=10).stdout or NotYet("not yet"), timeout_s=30)


def waits_on_fuse(cgroup: Path, comm: str) -> bool:
    """A process ``comm`` of the cgroup asleep in the kernel on a FUSE request (in an
    interruptible sleep until a freeze interrupts it; then killable, state D)."""
    for pid in freeze.procs(cgroup):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm and \
                    "fuse" in Path(f"/proc/{pid}/stack").read_text():
                return True
        except OSError:
            continue
    return False
