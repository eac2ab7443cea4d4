"""Daemon faults on the embedded lab (harness/faults_daemon.py): each takes effect, is
undone, and the node answers as PVE does (pve-faults.md §1, §2.2, §3.3-3.4, §4.3).

Timescale 0.1: HA and watchdog timers are ten times faster (the 10 s softdog timeout is
1 s); corosync's membership timers (token + consensus ≈ 8 s) and process start-up are not
scaled. Each reset delay measured here is printed (``-s``) as ``measured: ...``.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from harness.clock import Clock
from harness.errors import PvechaosError
from harness.faults import FaultInjector
from harness.timeline import Timeline
from harness.waits import NotYet, hold_for_s, wait_until
from tests.integration.ha_support import holds

K = 0.1
DROP_S = 20.0  # corosync drops a silent node after token + consensus ≈ 8 s, unscaled
REBOOT_LINE = "kernel: softdog: Initiating system reboot"


def injector(h) -> FaultInjector:
    return FaultInjector(h.lab, Timeline(Clock()), h.cluster)


def main_pid(h, node: str, unit: str) -> int | None:
    out = h.node(node).check("systemctl", "status", unit, ok_codes=(0, 3))
    found = re.search(r"Main PID: (\d+)", out)
    return int(found.group(1)) if found else None


def proc_state(h, node: str, pid: int) -> str:
    """The state letter of /proc/<pid>/stat (R, S, T, ...), as seen inside the node."""
    return h.node(node).check("cat", f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[0]


def active(h, node: str, unit: str) -> str:
    return h.node(node).check("systemctl", "is-active", unit, ok_codes=(0, 3)).strip()


def softdog_resets(h, node: str, since: float) -> list[float]:
    """Wall times of the softdog resets on ``node``'s console (init.log) after ``since``."""
    path = h.lab.config.lab_dir / "nodes" / node / "log" / "init.log"
    times = []
    for line in path.read_text(errors="replace").splitlines():
        if line.endswith(REBOOT_LINE):
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if stamp >= since:
                times.append(stamp)
    return times


def wait_reset(h, node: str, boot_id: str, sent: tuple[float, float], what: str
               ) -> tuple[float, float]:
    """Wait for ``node`` to reset and boot. ``sent``: wall times just before and just after
    the fault's command ran over SSH; the fault took effect in between. Returns the range
    the delay from the fault to softdog's reset lies in: from the end of that command
    (a lower bound) and from its start (an upper bound)."""
    def rebooted() -> bool | NotYet:
        now_id = h.boot_id(node)
        return now_id != boot_id or NotYet(f"boot id still {boot_id}")

    wait_until(f"{node} to reset ({what})", rebooted, timeout_s=h.s(10) + 30, interval_s=0.3)
    [reset] = softdog_resets(h, node, sent[0])
    low, high = reset - sent[1], reset - sent[0]
    print(f"measured: {what}: softdog reset {low:.2f}-{high:.2f} s after the fault "
          f"({low / K:.1f}-{high / K:.1f} PVE s at timescale {K}; the range is the SSH "
          f"command's own duration)")
    return low, high


def meets(measured: tuple[float, float], low_s: float, high_s: float) -> bool:
    """Whether a delay known only to lie in ``measured`` can lie in [low_s, high_s]."""
    return measured[0] <= high_s and measured[1] >= low_s


def logs(h, node: str, lines: int = 25) -> str:
    """The last lines of a node's daemon logs and console, for a failure message."""
    folder = h.lab.config.lab_dir / "nodes" / node / "log"
    parts = []
    for name in ("init.log", "pve-cluster.log", "watchdog-mux.log", "pve-ha-lrm.log",
                 "pve-ha-crm.log"):
        try:
            tail = (folder / name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            tail = ["(missing)"]
        parts.append(f"--- {node} {name}\n" + "\n".join(tail))
    return "\n".join(parts)


def cluster_whole(h, node: str = "node2") -> bool | NotYet:
    status = h.node(node).quorum()
    return status.nodes == 3 or NotYet(f"{status.nodes} members")


def test_daemon_faults_on_a_cluster_without_ha_services(ha_lab):
    h = ha_lab("dmnidle", "198.18.132", timescale=K)
    faults = injector(h)

    # -- pause corosync: stopped (T), dropped after token + consensus, back when resumed
    pid = main_pid(h, "node1", "corosync")
    assert pid is not None
    paused = faults.pause_daemon("node1", "corosync")
    assert proc_state(h, "node1", pid) == "T"
    assert faults.leftovers() == {"node1": f"corosync paused (pid {pid})"}
    start = time.monotonic()
    wait_until("node2 to drop node1 from the membership",
               lambda: h.node("node2").quorum().nodes == 2 or NotYet("3 members"),
               timeout_s=DROP_S)
    print(f"measured: corosync paused: dropped by the others after "
          f"{time.monotonic() - start:.1f} s (PVE: token + consensus ≈ 8 s, §5.5)")
    faults.end(paused)
    assert proc_state(h, "node1", pid) in ("R", "S")
    assert faults.leftovers() == {}
    wait_until("the membership to be whole again", lambda: cluster_whole(h),
               timeout_s=DROP_S)
    assert main_pid(h, "node1", "corosync") == pid  # the same process, resumed

    # -- SIGKILL pmxcfs: systemd restarts it, /etc/pve is served again
    old = main_pid(h, "node2", "pve-cluster")
    start = time.monotonic()
    killed = faults.kill_daemon("node2", "pve-cluster")

    def served_again() -> int | NotYet:
        new = main_pid(h, "node2", "pve-cluster")
        if new is None or new == old:
            return NotYet(f"main pid {new}")
        h.node("node2").check("ls", "/etc/pve/nodes")
        return new

    wait_until("a new pmxcfs serving /etc/pve", served_again, timeout_s=15, interval_s=0.2)
    print(f"measured: pmxcfs SIGKILL: new pmxcfs serving /etc/pve after "
          f"{time.monotonic() - start:.2f} s (PVE: RestartSec 100 ms + start-up, §4.3)")
    journal = (h.lab.config.lab_dir / "nodes" / "node2" / "log" / "pve-cluster.log"
               ).read_text()
    assert "Main process exited, code=killed, status=9/KILL" in journal
    assert "Scheduled restart job, restart counter is at 1." in journal
    faults.end(killed)  # active again: nothing to start
    assert active(h, "node2", "pve-cluster") == "active"

    # -- SIGKILL watchdog-mux on a node without HA services: softdog resets it
    boot_id = h.boot_id("node3")
    before = time.time()
    killed = faults.kill_daemon("node3", "watchdog-mux")
    delay = wait_reset(h, "node3", boot_id, (before, time.time()),
                       "watchdog-mux SIGKILL, no HA service")
    # the device times out 10 s after mux's last keepalive, up to one tick before the kill
    assert meets(delay, h.s(10) * 0.9, h.s(10) + 1.0), "PVE: reset 10 s after the kill (§3.4)"
    wait_until("node3 back in the membership", lambda: cluster_whole(h, "node3"),
               timeout_s=DROP_S + 20)
    faults.end(killed)  # the reset booted it: nothing to start
    assert active(h, "node3", "watchdog-mux") == "active"


def test_lrm_killed_resets_only_a_node_holding_its_watchdog(ha_lab):
    h = ha_lab("dmnha", "198.18.94", timescale=K)
    h.create_ct("node1", 100)
    h.ha("add", "ct:100")
    h.wait_service("ct:100", "started", "node1", timeout_s=h.s(60) + 10)
    h.wait_answer(100, "node1", timeout_s=h.s(60) + 10)
    faults = injector(h)
    idle = "node3" if h.master() != "node3" else "node2"

    # -- an idle LRM (no watchdog open): killed, not restarted, no reset
    boot_id = h.boot_id(idle)
    since = time.time()
    faults.kill_daemon(idle, "pve-ha-lrm")
    assert active(h, idle, "pve-ha-lrm") == "failed"  # Restart=no (§2.1)

    def reset_seen() -> str | None:
        try:
            now_id = h.boot_id(idle)
        except PvechaosError as exc:
            return f"{idle} unreachable: {exc}"
        return f"{idle} reset" if now_id != boot_id else None

    holds(h, h.s(100), f"{idle} up with its LRM killed while idle", reset_seen)
    assert softdog_resets(h, idle, since) == []
    faults.end_all("daemon.kill")  # starts the LRM again
    assert active(h, idle, "pve-ha-lrm") == "active"

    # -- kill pmxcfs on the node running the guest: HA skips, nothing resets (§2.2)
    boot_id = h.boot_id("node1")
    since = time.time()
    killed = faults.kill_daemon("node1", "pve-cluster")
    seen = hold_for_s(h.s(80), lambda: None if h.boot_id("node1") == boot_id else "reset",
                      "node1 up across a pmxcfs restart")
    assert seen is None, logs(h, "node1")
    assert softdog_resets(h, "node1", since) == []
    for unit in ("pve-ha-lrm", "pve-ha-crm", "watchdog-mux", "pve-cluster"):
        assert active(h, "node1", unit) == "active", unit
    faults.end(killed)

    # -- the LRM of the node running the guest: mux sees no `V`, softdog resets the node
    before = time.time()
    faults.kill_daemon("node1", "pve-ha-lrm")
    delay = wait_reset(h, "node1", boot_id, (before, time.time()),
                       "pve-ha-lrm SIGKILL, HA guest active")
    # PVE: reset ≈10 s after the kill, counted from the last keepalive before it (§3.3),
    # which mux sends only on a tick without socket events (§3.2): with the LRM and CRM
    # writing every round that can be a few ticks earlier (bound here: 3 PVE s)
    assert meets(delay, h.s(10) - h.s(3), h.s(10) + 1.0), "PVE: reset ≈10 s after the kill"
    mux_log = (h.lab.config.lab_dir / "nodes" / "node1" / "log" / "watchdog-mux.log"
               ).read_text()
    assert "did not stop watchdog - disable watchdog updates" in mux_log
    assert faults.undo_all() == []  # the reset booted the LRM: nothing to start
