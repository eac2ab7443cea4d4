"""Network faults on the real embedded lab (real corosync/knet, real nftables, real SSH):
each takes effect on corosync's traffic only, and is really undone.

What PVE's design says (pve-faults.md §6.1): an isolated node forms a membership of its
own and loses quorum after token + consensus (about 8 s; corosync's timers are real here,
not scaled). One-way loss has no single predicted outcome (§6.3): the test reports what
corosync did and asserts only that the rule dropped packets and was removed.
"""

from __future__ import annotations

import re
import time

import pytest

from harness.clock import Clock
from harness.faults import FaultInjector
from harness.timeline import Timeline
from harness.waits import NotYet, wait_until
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import running

MEMBERSHIP_S = 60  # corosync's own timers (token + consensus ~ 8 s), not scaled
NAMES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def cluster():
    lab = EmbeddedLab(EmbeddedConfig(name="netf", subnet="198.18.110.0/24"))
    with running(lab, formed="netf") as the_cluster:
        yield the_cluster


@pytest.fixture
def faults(cluster):
    injector = FaultInjector(cluster.lab, Timeline(Clock()), cluster)
    yield injector
    assert injector.undo_all() == []
    assert injector.leftovers() == {}  # the undo really removed every rule and qdisc
    for name in NAMES:  # every test leaves the whole cluster behind
        cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_S)


def ours(cluster, name: str) -> str:
    """What of ours `nft list tables` shows inside the node ('' when nothing)."""
    tables = cluster.node(name).check("nft", "list", "tables")
    return "\n".join(line for line in tables.splitlines() if "pvechaos" in line)


def view(cluster, name: str):
    status = cluster.node(name).quorum(timeout_s=5)
    return status.quorate, tuple(sorted(map(cluster.name_of, status.member_names)))


def test_an_isolated_node_drops_out_loses_quorum_and_still_answers_ssh(cluster, faults):
    made = faults.isolate("node3")
    assert [f.target for f in made] == list(NAMES)
    cut = time.monotonic()

    def node1_without_node3():
        quorate, members = view(cluster, "node1")
        return (quorate and members == ("node1", "node2")) or NotYet(f"{quorate} {members}")
    wait_until("node1 to drop node3", node1_without_node3, timeout_s=MEMBERSHIP_S)
    dropped_after = time.monotonic() - cut

    def node3_inquorate():
        result = cluster.node("node3").run("pvecm", "status", timeout_s=5)
        return (result.rc == 2 and "Activity blocked" in result.stdout) or \
            NotYet(f"exit {result.rc}")
    wait_until("node3 to lose quorum", node3_inquorate, timeout_s=MEMBERSHIP_S)
    assert view(cluster, "node3") == (False, ("node3",))
    assert cluster.node("node3").check("echo", "ssh up").strip() == "ssh up"
    assert faults.dropped(made[2]) > 0  # node3's own rules saw corosync packets
    print(f"\nisolate node3: node1 dropped it after {dropped_after:.1f} s")

    faults.heal_network()
    healed = time.monotonic()
    for name in NAMES:
        cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_S)
    print(f"heal: whole membership back after {time.monotonic() - healed:.1f} s")
    for name in NAMES:
        assert ours(cluster, name) == "", name


def test_one_way_loss_drops_packets_and_is_removed(cluster, faults):
    """pve-faults §6.3 predicts no single outcome: record the views, assert the rule."""
    fault = faults.one_way("node1", "node3")
    seen: dict[str, list[tuple]] = {n: [] for n in NAMES}
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:  # bounded: 25 s of 1 s samples
        for name in NAMES:
            try:
                current = view(cluster, name)
            except Exception as exc:  # noqa: BLE001 - a view that failed is a view too
                current = ("error", str(exc).splitlines()[0])
            if not seen[name] or seen[name][-1] != current:
                seen[name].append(current)
        time.sleep(1)
    print("\none-way node1->node3 for 25 s, views seen (quorate, members):")
    for name in NAMES:
        print(f"  {name}: {seen[name]}")
    for name in ("node1", "node3"):
        try:
            links = cluster.node(name).run("corosync-cfgtool", "-s", timeout_s=15).stdout
        except Exception as exc:  # noqa: BLE001 - reported: it blocked during one run
            links = f"(no answer: {str(exc).splitlines()[0]})"
        print(f"  {name} corosync-cfgtool -s:\n{links}")
    assert faults.dropped(fault) > 0
    faults.heal_network()
    assert ours(cluster, "node1") == ""


def knet_latency(node, peer_id: int) -> dict[str, float]:
    """latency_{ave,samples} (µs, count) of this node's link 0 to node ``peer_id``."""
    out = node.check(f"corosync-cmapctl -m stats | grep 'stats.knet.node{peer_id}.link0"
                     ".latency'", timeout_s=10)
    return {m[1]: float(m[2]) for m in re.finditer(r"\.(latency_\w+) \([^)]*\) = (\d+)", out)}


def mean_between(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """(samples, their mean in ms) taken between two readings: latency_ave is the running
    mean of every sample (kronosnet libknet/threads_heartbeat.c), so the new samples' mean
    is recovered from the two running means."""
    new = after["latency_samples"] - before["latency_samples"]
    total = (after["latency_ave"] * after["latency_samples"]
             - before["latency_ave"] * before["latency_samples"])
    return new, total / max(1.0, new) / 1000


def test_degrade_delay_grows_the_latency_knet_reports_and_returns(cluster, faults):
    """200 ms on node1's outgoing corosync traffic: node2's knet round trip to node1 grows
    by it, then returns (netem, or the NFQUEUE delayer on a kernel without sch_netem).
    Far below the pong timeout (≈1.8 s): the membership holds (pve-faults §5.3, Derived)."""
    node2 = cluster.node("node2")
    before, ring = knet_latency(node2, 1), node2.quorum().ring_id
    fault = faults.degrade("node1", delay_ms=200)
    time.sleep(12)  # ≈ 13 knet pings at the 3-node ping interval (912 ms, §5.1)
    during = knet_latency(node2, 1)
    quorum = node2.quorum()
    faults.end(fault)
    time.sleep(12)
    after = knet_latency(node2, 1)
    (n_on, on_ms), (n_off, off_ms) = mean_between(before, during), mean_between(during, after)
    print(f"\n{fault.params['detail']}: node2->node1 knet mean {on_ms:.1f} ms over {n_on:g} "
          f"samples, then {off_ms:.1f} ms over {n_off:g} after the end")
    assert n_on >= 5 and 180 <= on_ms <= 260
    assert n_off >= 5 and off_ms < 50
    assert quorum.quorate and quorum.nodes == 3 and quorum.ring_id == ring


def test_degrade_loss_drops_corosync_packets_at_random_and_is_removed(cluster, faults):
    fault = faults.degrade("node1", loss_pct=50)
    time.sleep(3)
    listing = cluster.node("node1").check("nft", "list", "chain", "inet", "pvechaos_net",
                                          "loss_out")
    dropped = int(re.search(r"counter packets (\d+)", listing).group(1))
    assert dropped > 0, listing
    faults.end(fault)
    assert ours(cluster, "node1") == ""


def test_a_reset_node_boots_without_the_faults_rules_and_qdiscs(cluster, faults):
    """A reboot (or a reset: both boot afresh) loses what the kernel held, as on a real
    node: the fault's nft chain and
    netem qdisc do not come back with the new boot (the sweep once found a loss chain on
    nodes that reset under it, which the fault's end had taken for gone)."""
    from harness import ha_admin

    node = cluster.node("node3")
    faults.degrade("node3", delay_ms=30, loss_pct=10)
    assert "pvechaos_net" in ours(cluster, "node3")
    ha_admin.reboot(cluster, "node3", timeout_s=90)  # the embedded lab has no reset button
    assert ours(cluster, "node3") == ""
    assert "5405:" not in node.check("tc", "qdisc", "show")
    faults.end_all()  # the fault ended with the boot: its end says so, nothing to undo


def test_a_killed_run_leaves_rules_that_sweep_nodes_removes(cluster):
    abandoned = FaultInjector(cluster.lab, Timeline(Clock()), cluster)
    abandoned.one_way("node2", "node3")
    abandoned.degrade("node2", delay_ms=50, loss_pct=10)  # netem, or the NFQUEUE delayer
    assert "pvechaos_net" in ours(cluster, "node2")
    left = abandoned.leftovers()
    assert list(left) == ["node2"], left
    assert "chain oneway_node3_out" in left["node2"] and "chain loss_out" in left["node2"]
    assert "delayer running" in left["node2"] or "qdisc prio 5405:" in left["node2"], left
    del abandoned  # the run died: nobody runs its undo

    fresh = FaultInjector(cluster.lab, Timeline(Clock()), cluster)
    assert fresh.sweep_nodes() == {}
    assert fresh.leftovers() == {}
    for name in NAMES:
        assert ours(cluster, name) == "", name
        tc = cluster.node(name).check("tc", "qdisc", "show")
        assert "5405:" not in tc, tc
        assert "pvechaos_delay" not in cluster.node(name).check("iptables -t mangle -S")
        assert cluster.node(name).run("pgrep -f pvechaos_netdelay").rc != 0
    for name in NAMES:
        cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_S)
