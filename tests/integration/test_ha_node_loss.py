"""HA on the embedded lab: a node lost, the master lost, the cluster left without quorum
(pve-model.md §10, §13.6 test-basic1/3/4/5). Timescale 0.1: HA timers are ten times
faster; corosync's own membership timers (about 8 s to drop a node) are not scaled."""

from __future__ import annotations

import time

from harness.waits import NotYet, wait_until
from tests.integration.ha_support import holds

K = 0.1
DETECT_S = 10.0  # corosync drops a dead node after token + consensus, about 8 s, unscaled


def two_guests_running(h, first: str = "node1", second: str = "node2"):
    """ct:100 on first and ct:101 on second, both under HA and answering."""
    h.create_ct(first, 100)
    h.create_ct(second, 101)
    h.ha("add", "ct:100")
    h.ha("add", "ct:101")
    h.wait_answer(100, first, timeout_s=h.s(60) + 10)
    h.wait_answer(101, second, timeout_s=h.s(60) + 10)
    h.wait_service("ct:100", "started", first, timeout_s=h.s(60))
    h.wait_service("ct:101", "started", second, timeout_s=h.s(60))


def test_a_non_master_node_lost_recovers_its_guest_on_the_least_loaded_node(ha_lab):
    h = ha_lab("hloss", "198.18.61", timescale=K)
    two_guests_running(h)
    master = h.master()
    victim = "node2" if master == "node1" else "node1"
    moved = "ct:101" if victim == "node2" else "ct:100"
    vmid = int(moved[3:])
    target = "node3"  # no HA service there: fewest counted services wins
    survivors = tuple(n for n in ("node1", "node2", "node3") if n != victim)

    cut = time.monotonic()  # the kill comes first in power_cut
    h.lab.power_cut(victim)
    h.wait_service(moved, "fence", timeout_s=DETECT_S + h.s(90), on=master)
    fenced = time.monotonic()
    back = h.wait_answer(vmid, target, timeout_s=DETECT_S + h.s(200))
    # no restart before the dead node's agent lock expired (120 s after its last renewal,
    # which was at most one LRM round before the cut)
    assert back - cut > h.s(120 - 10), f"recovered after {back - cut:.1f} s"
    # PVE's design: restart issued 121-150 s after the cut; allow the unscaled detection
    # and two rounds for the guest to start and answer
    assert back - cut < DETECT_S + h.s(150 + 20), f"recovered after {back - cut:.1f} s"
    assert fenced - cut >= h.s(60), "fenced before the 60 s fence delay"
    h.wait_service(moved, "started", target, timeout_s=h.s(30), on=survivors[0])
    assert h.node_state(victim) == "unknown"  # fence acknowledged: back to unknown
    log = h.log(master, "crm")
    assert f"Try to fence node '{victim}'" in log
    assert f"fencing: acknowledged - got agent lock for node '{victim}'" in log


def test_the_master_lost_a_new_master_takes_over_and_fences_after_a_fresh_delay(ha_lab):
    h = ha_lab("hmaster", "198.18.62", timescale=K)
    two_guests_running(h)
    master = h.master()
    if master not in ("node1", "node2"):  # make the master run a guest
        h.ha("migrate", "ct:100", master)
        h.wait_answer(100, master, timeout_s=h.s(60) + 10)
    placed = h.services()
    moved = next(sid for sid, (node, _) in placed.items() if node == master)
    vmid = int(moved[3:])
    survivors = sorted(n for n in ("node1", "node2", "node3") if n != master)
    load = {n: sum(1 for node, _ in placed.values() if node == n) for n in survivors}
    target = min(survivors, key=lambda n: (load[n], n))  # fewest services, then by name

    cut = time.monotonic()  # the kill comes first in power_cut
    h.lab.power_cut(master)

    def new_master() -> str | NotYet:
        try:
            name = h.master()
        except AssertionError as exc:
            return NotYet(str(exc))
        return name if name != master else NotYet(f"master still {name}")

    wait_until("a new master", new_master, timeout_s=DETECT_S + h.s(200), interval_s=0.25)
    took_over = time.monotonic()
    # the manager lock is taken only once it expired: 120 s after its last renewal
    assert took_over - cut > h.s(120 - 10)
    back = h.wait_answer(vmid, target, timeout_s=h.s(150))
    # a fresh 60 s fence delay counted by the new master: about 3 minutes in all
    assert back - took_over >= h.s(60) - 1
    assert h.s(170 - 20) < back - cut < DETECT_S + h.s(210 + 20), f"{back - cut:.1f} s"


def resets(h, node: str) -> int:
    """How often the node's watchdog reset it (from its init log, kept by the lab)."""
    path = h.lab.config.lab_dir / "nodes" / node / "log" / "init.log"
    return path.read_text().count(f"{node}: reset")


def test_total_quorum_loss_resets_active_nodes_and_recovers_nothing(ha_lab):
    h = ha_lab("hquorum", "198.18.63", timescale=K)
    two_guests_running(h)
    master = h.master()
    active = {"node1", "node2"}  # the nodes running an HA guest
    for node in ("node1", "node2", "node3"):
        h.lab.link_down(node)  # every node alone: nobody has quorum
    cut = time.monotonic()
    # an active LRM fails its next lock renewal and stops feeding the watchdog: the node
    # resets about 60-80 s later (60 s client timeout + 10 s device); a CRM that loses its
    # lock closes its watchdog cleanly, so an idle master does not reset
    def active_reset() -> bool | NotYet:
        return all(resets(h, n) for n in active) or NotYet(
            f"resets: {[resets(h, n) for n in ('node1', 'node2', 'node3')]}, master {master}")

    wait_until(f"{sorted(active)} to reset", active_reset,
               timeout_s=max(0.0, cut + DETECT_S + h.s(80 + 30) - time.monotonic()),
               interval_s=0.25)
    reset_at = time.monotonic()
    assert {n for n in ("node1", "node2", "node3") if resets(h, n)} == active, \
        f"resets: {[resets(h, n) for n in ('node1', 'node2', 'node3')]}, master {master}"
    assert reset_at - cut > h.s(60), "reset before the 60 s watchdog client timeout"
    # across the fence delay and the lock lifetime nothing may be fenced or start
    def started_or_fenced() -> str | None:
        for vmid in (100, 101):
            if (reply := h.answer(vmid)) is not None:
                return f"ct:{vmid} answers: {reply}"
        return next((f"{node} fenced" for node in ("node1", "node2", "node3")
                     if "fencing: acknowledged" in h.log(node, "crm")), None)

    holds(h, h.s(60 + 120), "nothing fenced or started without quorum", started_or_fenced)
    for node in ("node1", "node2", "node3"):
        h.lab.link_up(node)
    # quorum back: the services start again where they were
    h.wait_answer(100, "node1", timeout_s=DETECT_S + h.s(150))
    h.wait_answer(101, "node2", timeout_s=DETECT_S + h.s(150))


def test_two_nodes_lost_the_survivor_with_an_active_guest_resets_itself(ha_lab):
    h = ha_lab("hsurv", "198.18.64", timescale=K)
    # node2 never runs an HA service, so its LRM never arms the watchdog (an LRM that did
    # stays armed for 60 idle rounds after its last service left, pve-model.md §7.3)
    two_guests_running(h, "node1", "node3")
    idle_before = resets(h, "node2")
    h.lab.power_cut("node1")
    h.lab.link_down("node2")  # node2 runs on alone, with no HA service: stays up
    cut = time.monotonic()
    wait_until("node3 to reset", lambda: resets(h, "node3") or NotYet("no reset"),
               timeout_s=max(0.0, cut + DETECT_S + h.s(80 + 30) - time.monotonic()),
               interval_s=0.25)
    assert resets(h, "node3") == 1, "the inquorate survivor running a guest did not reset"
    assert resets(h, "node2") == idle_before, "a node without active services reset"
    h.lab.link_up("node2")
    h.lab.power_on("node1")
    h.wait_answer(101, "node3", timeout_s=DETECT_S + h.s(200))


def test_without_quorum_nothing_starts_until_quorum_returns(ha_lab):
    h = ha_lab("hnoq", "198.18.65", timescale=K)
    h.create_ct("node1", 100)
    h.ha("add", "ct:100")
    h.wait_answer(100, "node1", timeout_s=h.s(60) + 10)
    for node in ("node1", "node2", "node3"):
        h.lab.power_cut(node)
    h.lab.power_on("node1")
    h.node("node1").wait_reachable(timeout_s=30)
    holds(h, h.s(60 + 120 + 20), "no HA guest started without quorum",
          lambda: None if (reply := h.answer(100)) is None else
          f"a node without quorum started an HA guest: {reply}")
    assert "No quorum on node 'node1'!" in h.node("node1").check("ha-manager", "status")
    h.lab.power_on("node2")
    h.wait_answer(100, "node1", timeout_s=DETECT_S + h.s(120))
