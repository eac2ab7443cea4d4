"""Clock faults on the embedded lab (pve-faults.md §7): a node's `date -s` steps only that
node's wall clock, its HA daemons follow it, and the other nodes judge its status lines on
their own clocks. Timescale 0.1: Δ of 3 s is 30 PVE seconds.

The first three tests share one lab; the forward steps of §7.2, which may reset their
node, each boot their own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from harness.clock import Clock
from harness.errors import PvechaosError, WaitTimeout
from harness.faults import FaultInjector
from harness.timeline import Timeline
from harness.waits import NotYet, wait_until
from lab.embedded.ha_testbed import HaLab
from tests.integration.ha_support import fault_injector, guest_lab, holds

K = 0.1
NODES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def h() -> Iterator[HaLab]:
    with guest_lab("hclock", "198.18.91", K) as lab:
        lab.wait_answer(100, "node1", timeout_s=lab.s(60) + 10)
        yield lab


@pytest.fixture
def faults(h: HaLab) -> Iterator[FaultInjector]:
    with fault_injector(h) as injector:
        yield injector


def offset(h: HaLab, node: str) -> float:
    """How far the node's `date` is from the host's clock (± half an SSH round trip)."""
    before = time.time()
    shown = float(h.node(node).check("date", "+%s.%N", timeout_s=10))
    return shown - (before + time.time()) / 2


def line(h: HaLab, viewer: str, prefix: str) -> str:
    """The `ha-manager status` line of `viewer` starting with prefix ("lrm node2 (")."""
    out = h.node(viewer).check("ha-manager", "status", timeout_s=15)
    return next((x for x in out.splitlines() if x.startswith(prefix)), f"(no {prefix!r})")


def wait_line(h: HaLab, viewer: str, prefix: str, has: str, *, timeout_s: float,
              absent: bool = False) -> float:
    def seen() -> bool | NotYet:
        try:
            text = line(h, viewer, prefix)
        except PvechaosError as exc:
            return NotYet(str(exc))
        return ((has in text) != absent) or NotYet(text)

    with h.diagnosed():
        wait_until(f"{viewer} to show {prefix!r} {'without' if absent else 'with'} {has!r}",
                   seen, timeout_s=timeout_s, interval_s=0.2)
    return time.monotonic()


def quiet_node(h: HaLab) -> str:
    """A node with no watchdog open: neither the master nor node1 (which runs ct:100)."""
    master = h.master()
    return next(n for n in ("node3", "node2") if n != master)


def test_no_node_can_step_the_hosts_clock(h):
    """The real `date -s` (or anything calling settimeofday) needs CAP_SYS_TIME, which the
    embedded nodes run without (lab/embedded/node.py): checked, never tried."""
    for node in NODES:
        for command in ("grep CapBnd /proc/self/status", "grep CapBnd /proc/1/status"):
            bounding = int(h.node(node).check(command).split()[1], 16)
            assert not bounding & (1 << 25), f"{node}: CAP_SYS_TIME in {command}"


def test_a_forward_step_moves_the_nodes_date_and_shows_as_drift_elsewhere(h, faults):
    node = quiet_node(h)
    viewer = next(n for n in NODES if n != node)
    fault = faults.clock_step(node, 3.0)  # 30 PVE s ahead: "detected time drift!" > 2 s
    assert abs(offset(h, node) - 3.0) < 0.5
    assert all(abs(offset(h, n)) < 0.5 for n in NODES if n != node)
    wait_line(h, viewer, f"lrm {node} (", "detected time drift!", timeout_s=h.s(20) + 5)
    faults.end(fault)
    assert abs(offset(h, node)) < 0.5
    # its last lrm_status is still ahead until it writes again (sleep_until waits the
    # step out first): the line comes back within the step plus two rounds
    wait_line(h, viewer, f"lrm {node} (", "detected time drift!", absent=True,
              timeout_s=3.0 + h.s(20) + 5)


def lrm_stamp(h: HaLab, node: str, viewer: str) -> float | None:
    try:
        text = h.node(viewer).check("cat", f"/etc/pve/nodes/{node}/lrm_status", timeout_s=10)
        return float(json.loads(text)["timestamp"])
    except (PvechaosError, ValueError, KeyError):
        return None


def test_a_backward_step_stalls_the_active_lrm_without_a_reset(h, faults):
    """pve-faults.md §7.3: sleep_until waits for the wall clock to pass its end again, so
    the LRM stalls for Δ; the others see its line "old timestamp - dead?" (§7.4: a writer
    more than 30 s behind the viewer stays so until the clocks agree); no reset."""
    viewer = "node2"
    boot = h.boot_id("node1")
    wait_line(h, viewer, "lrm node1 (", "active,", timeout_s=h.s(30) + 5)
    # 40 PVE s back: > 30 s, and the stall (40 s plus the rest of its 10 s round) stays
    # under watchdog-mux's 60 s, so no reset whichever clock the mux ages clients on
    fault = faults.clock_step("node1", -4.0)
    stepped = time.monotonic()
    assert abs(offset(h, "node1") + 4.0) < 0.5
    dead = wait_line(h, viewer, "lrm node1 (", "old timestamp - dead?", timeout_s=4.0 + 3)
    last = lrm_stamp(h, "node1", viewer)  # its last write, 3 s old: it has stalled since

    def resumed() -> bool | NotYet:
        stamp = lrm_stamp(h, "node1", viewer)
        return (stamp is not None and last is not None and stamp != last) \
            or NotYet(f"lrm_status timestamp {stamp} (when seen dead {last})")

    with h.diagnosed():
        wait_until("node1's LRM to write its status again", resumed,
                   timeout_s=4.0 + h.s(20) + 5, interval_s=0.1)
    stall = time.monotonic() - stepped
    print(f"\n-4 s (40 PVE s) on node1: 'dead?' on {viewer} {dead - stepped:.1f} s after "
          f"the step; the LRM's next status write {stall:.1f} s after it")
    # it slept until its clock had caught up the 4 s (and ended its round)
    assert 4.0 - 0.5 < stall < 4.0 + h.s(10) + 1.5, f"stalled {stall:.1f} s"
    assert "active," in line(h, "node1", "lrm node1 (")  # fresh on its own clock
    assert "old timestamp - dead?" in line(h, viewer, "lrm node1 (")  # 40 s behind
    holds(h, h.s(20), "node1 not reset, ct:100 answering from node1",
          lambda: None if h.boot_id("node1") == boot and (h.answer(100) or "").split()[1:2]
          == ["node1"] else f"boot {h.boot_id('node1')}, answer {h.answer(100)}")
    faults.end(fault)
    assert abs(offset(h, "node1")) < 0.5
    wait_line(h, viewer, "lrm node1 (", "active,", timeout_s=h.s(30) + 5)
    assert h.boot_id("node1") == boot


def test_a_strobe_flips_the_clock_and_its_end_restores_it(h, faults):
    node = quiet_node(h)
    fault = faults.clock_strobe(node, 2.0, 1.0, 30.0)
    seen = set()
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and len(seen) < 2:
        seen.add(round(offset(h, node)))
    assert seen == {0, 2}, f"offsets seen: {seen}"
    assert "clock fault marker /run/pvechaos-clock/strobe." in faults.leftovers()[node]
    faults.end(fault)
    assert abs(offset(h, node)) < 0.5
    assert h.node(node).run("ls /run/pvechaos-clock/strobe.*.pid").rc != 0
    assert faults.leftovers() == {}


def guest_on_node1(ha_lab, name: str, prefix: str) -> HaLab:
    lab = ha_lab(name, prefix, timescale=K)
    lab.create_ct("node1", 100)
    lab.ha("add", "ct:100")
    lab.wait_answer(100, "node1", timeout_s=lab.s(60) + 10)
    lab.wait_service("ct:100", "started", "node1", timeout_s=lab.s(60))
    wait_line(lab, "node2", "lrm node1 (", "active,", timeout_s=lab.s(30) + 5)
    return lab


def reset_after(h: HaLab, boot: str, stepped: float, timeout_s: float) -> float | None:
    """Seconds from the step to node1's new boot, None when it did not reset in time."""
    def reset() -> bool | NotYet:
        try:
            now = h.boot_id("node1")
        except PvechaosError as exc:
            return NotYet(str(exc))
        return now != boot or NotYet("same boot")

    try:
        wait_until("node1 to reset", reset, timeout_s=timeout_s, interval_s=0.2)
    except WaitTimeout:
        return None
    return time.monotonic() - stepped


@pytest.mark.parametrize(("delta_pve", "name", "prefix"), [
    (80, "hclk80", "198.18.92"), (130, "hclk130", "198.18.93")])
def test_a_forward_step_on_a_node_with_an_open_watchdog(ha_lab, delta_pve, name, prefix):
    """pve-faults.md §7.2, with the LRM's watchdog open on node1:
    - Δ ≥ 120 s (the lock lifetime): the LRM's next try is a mkdir on its own lock
      (PVE2.pm get_pve_lock: its last success is ≥ 120 s ago on its clock), which fails,
      so it loses its lock and stops updating its watchdog: node1 resets whichever clock
      watchdog-mux ages clients on - asserted;
    - 60 s < Δ < 120 s: the renewal succeeds (asserted: no lock lost before any reset);
      whether the mux's next tick sees the client > 60 s old before the LRM's update is a
      race in PVE, so the outcome is measured, not asserted.
    The delay to the reset is measured: ≈10 s after the step when the mux ages clients on
    the node's wall clock as PVE's does (helper C's branch); with a mux on the monotonic
    clock, 60 + 10 s after the LRM's last update, and no reset for Δ < 120 s."""
    h = guest_on_node1(ha_lab, name, prefix)
    boot = h.boot_id("node1")
    delta = h.s(delta_pve)
    faults = FaultInjector(h.lab, Timeline(Clock()), h.cluster)
    faults.clock_step("node1", delta)
    stepped = time.monotonic()
    took = reset_after(h, boot, stepped, h.s(60 + 10 + 30) + 15)
    lrm_log = h.log("node1", "lrm")
    print(f"\n+{delta:g} s ({delta_pve} PVE s) on node1 with an active LRM: "
          + (f"reset {took:.1f} s ({took / K:.0f} PVE s) after the step" if took is not None
             else f"no reset within {h.s(60 + 10 + 30) + 15:.0f} s")
          + f"; lock lost: {'lost lock' in lrm_log}")
    if delta_pve >= 120:
        assert "lost lock 'ha_agent_node1_lock - can't get cfs lock" in lrm_log
        assert took is not None, "node1 did not reset after losing its agent lock"
        assert abs(offset(h, "node1")) < 0.5  # the reset cleared /run and the step with it
    else:
        assert "lost lock" not in lrm_log  # renewed: its last success was < 120 s ago
    assert faults.undo_all() == []
