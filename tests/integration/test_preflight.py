"""The read-only preflight (harness/preflight.py) on the embedded lab: every check passes on
a healthy cluster, and each fails, naming what it found, on a lab broken for it.

One HA testbed (`pref`, timescale 0.1, ct:100 under HA on shared NFS) serves the healthy
run and the faults, each undone before the next; mixed versions boot their own lab.
The healthy test must run first: knet's latency average keeps the delay of the latency
test for minutes (harness/pve/cmap.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness import preflight
from harness.faults import FaultInjector
from harness.preflight_checks import Check, Verdict
from harness.timescale import Timescale
from harness.waits import NotYet, wait_until
from lab.embedded.ha_testbed import TEMPLATE, HaLab
from tests.integration.conftest import running
from tests.integration.ha_support import fault_injector, guest_lab

K = 0.1
PREFIX = "198.18.70"
CHECKS = ("node count", "pve version", "quorum", "corosync links", "udp 5405", "latency",
          "clock sync", "watchdog", "shared storage", "ha on shared")


@pytest.fixture(scope="module")
def h() -> Iterator[HaLab]:
    with guest_lab("pref", PREFIX, K) as lab:
        yield lab


@pytest.fixture
def faults(h: HaLab) -> Iterator[FaultInjector]:
    with fault_injector(h) as injector:
        yield injector


def by_name(results: list[Check]) -> dict[str, Check]:
    return {r.name: r for r in results}


def wait_verdict(h: HaLab, name: str, verdict: Verdict, *, timeout_s: float
                 ) -> dict[str, Check]:
    """Run the preflight until check ``name`` has ``verdict`` (bounded); that run's
    results."""
    def seen() -> dict[str, Check] | NotYet:
        results = by_name(preflight.run(h.cluster))
        check = results[name]
        return results if check.verdict == verdict else NotYet(
            f"{check.verdict}: {check.found}")
    return wait_until(f"preflight {name!r} to be {verdict.value}", seen, timeout_s=timeout_s,
                      interval_s=1.0)


def test_a_healthy_lab_passes_every_check(h):
    results = preflight.run(h.cluster)
    table = preflight.render(results)
    print(table)
    assert tuple(r.name for r in results) == CHECKS
    assert [r for r in results if r.verdict != Verdict.OK] == [], table
    found = by_name(results)
    assert "pve-manager 8.4.1 on all 3 nodes" in found["pve version"].found
    assert "votes 3/3" in found["quorum"].found
    assert "all 3 pairs" in found["udp 5405"].found
    assert "shared (nfs) active on every node" in found["shared storage"].found
    assert "1 HA resource" in found["ha on shared"].found
    assert table.endswith("preflight: 10 ok, 0 warn, 0 fail")


def test_added_latency_fails_the_latency_check(h, faults):
    fault = faults.degrade("node2", delay_ms=30)
    check = wait_verdict(h, "latency", Verdict.FAIL, timeout_s=120)["latency"]
    faults.end(fault)
    assert "node2" in check.found and "above 5 ms" in check.found
    assert "dedicated NIC" in check.fix


def test_blocked_udp_5405_fails_the_pair_and_links_checks(h, faults):
    faults.one_way("node1", "node3")
    results = wait_verdict(h, "udp 5405", Verdict.FAIL, timeout_s=60)
    faults.heal_network()  # at once: a node out of quorum for long would fence itself
    check, links = results["udp 5405"], results["corosync links"]
    assert "node1<->node3" in check.found
    assert "node1<->node2" not in check.found and "node2<->node3" not in check.found
    assert "UDP 5405-5412" in check.fix
    assert links.verdict == Verdict.FAIL and "node1->node3 link 0" in links.found
    wait_verdict(h, "udp 5405", Verdict.OK, timeout_s=60)
    h.cluster.wait_whole_view("node1", timeout_s=60)


def test_a_stepped_clock_fails_the_clock_check(h, faults):
    faults.clock_step("node3", 5)
    check = by_name(preflight.run(h.cluster))["clock sync"]
    assert check.verdict == Verdict.FAIL, check
    assert "above 2 s" in check.found and "chrony" in check.fix
    offsets = dict(part.split()[:2] for part in check.found.split(": ", 1)[1]
                   .rstrip(" s)").split(", "))
    assert float(offsets["node3"].split("±")[0]) > 4  # the stepped node stands out
    assert abs(float(offsets["node1"].split("±")[0])) < 1


def test_a_stopped_watchdog_mux_fails_the_watchdog_check(h, faults):
    # on a node with no open watchdog (no HA service, not the master) a stop resets
    # nothing (pve-faults.md §3.4)
    idle = next(n for n in ("node2", "node3") if n != h.master())
    faults.stop_daemon(idle, "watchdog-mux")
    check = by_name(preflight.run(h.cluster))["watchdog"]
    assert check.verdict == Verdict.FAIL, check
    assert check.found == f"watchdog-mux {idle} inactive"
    assert "systemctl start watchdog-mux" in check.fix


def test_an_unreachable_shared_storage_fails_the_storage_check(h):
    # nothing answers NFS at .250: PVE's check_connection fails, the storage is inactive
    h.node("node1").check("pvesm", "add", "nfs", "gone", "--server", f"{PREFIX}.250",
                          "--export", "/export", "--content", "images", timeout_s=30)
    try:
        check = by_name(preflight.run(h.cluster))["shared storage"]
    finally:
        h.node("node1").check("pvesm", "remove", "gone", timeout_s=30)
    assert check.verdict == Verdict.FAIL, check
    assert check.found == "gone inactive on node1; gone inactive on node2; " \
                          "gone inactive on node3"


def test_mixed_versions_fail_the_version_check(make_lab):
    lab = make_lab("prefmix", "198.18.71.0/24", timescale=Timescale(K),
                   node_versions={"node3": "9.0.3"})
    with running(lab, formed="pvechaos") as cluster:
        results = by_name(preflight.run(cluster))
    check = results["pve version"]
    assert check.verdict == Verdict.FAIL, check
    assert check.found == "mixed: 8.4.1 on node1, node2; 9.0.3 on node3"
    assert "same version" in check.fix
    # only what is broken fails: the PVE 9 node answers every other check as well
    assert results["shared storage"].found == "no shared storage configured"
    assert {n: r.verdict for n, r in results.items()} == {
        **dict.fromkeys(CHECKS, Verdict.OK), "pve version": Verdict.FAIL,
        "shared storage": Verdict.WARN}


def test_an_isolated_node_fails_the_quorum_check(h, faults):
    # a node with no open watchdog (no HA service, not the master) survives quorum loss
    idle = next(n for n in ("node2", "node3") if n != h.master())
    faults.isolate(idle)
    try:
        check = wait_verdict(h, "quorum", Verdict.FAIL, timeout_s=60)["quorum"]
    finally:
        faults.heal_network()
    assert f"{idle} not quorate" in check.found
    assert "node1 sees 2 of 3 members" in check.found
    h.cluster.wait_whole_view("node1", timeout_s=60)


def test_an_ha_guest_on_local_storage_fails_the_ha_storage_check(h):
    node1 = h.node("node1")
    node1.check("mkdir", "-p", "/mnt/lvol")
    node1.check("pvesm", "add", "dir", "lvol", "--path", "/mnt/lvol", "--content", "rootdir",
                "--nodes", "node1", timeout_s=30)
    try:
        node1.check("pct", "create", "101", TEMPLATE, "--rootfs", "lvol:1", timeout_s=30)
        h.ha("add", "ct:101", "--state", "stopped")
        check = by_name(preflight.run(h.cluster))["ha on shared"]
    finally:
        node1.run("ha-manager remove ct:101; pct destroy 101; pvesm remove lvol", timeout_s=60)
    assert check.verdict == Verdict.FAIL, check
    assert check.found == "ct:101 rootfs on local storage lvol (dir)"
    assert "pct move-volume" in check.fix
