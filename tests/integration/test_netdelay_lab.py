"""The NFQUEUE delay on a real embedded lab: corosync's own knet latency figures grow.

node1's outgoing corosync traffic is delayed by 100 ms through FaultInjector (the
"netem" fault as harness/netdelay.py builds it). knet measures each link's round trip
with its pings (pve-faults.md §5.2, KN libknet/threads_heartbeat.c), so node2's link to
node1 shows the added 100 ms in ``corosync-cmapctl -m stats``. latency_ave is the running
mean of every sample so far (µs), and latency_max/min only track that mean (kronosnet
libknet/threads_heartbeat.c, "Calculate latency stats"), so the test recovers the mean of
the samples taken while the delay was on from ave and samples before and during.

100 ms is far below knet's pong timeout (≈1.8 s with PVE's 3-node token; pve-faults.md
§5.1/§5.3), so the membership must hold: all three nodes stay members and quorate, on the
same ring. Real time (timescale 1): corosync's timers are its own, unscaled.
"""

from __future__ import annotations

import re
import time

import pytest

from harness import netdelay
from harness.clock import Clock
from harness.faults import FaultInjector
from harness.timeline import Timeline
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import running


@pytest.fixture(scope="module")
def cluster():
    lab = EmbeddedLab(EmbeddedConfig(name="ndelay", subnet="198.18.201.0/24"))
    with running(lab, formed="pvechaos") as the_cluster:
        yield the_cluster


def knet_latency(node, peer_id: int) -> dict[str, float]:
    """latency_{ave,max,min,samples} of this node's link 0 to node ``peer_id`` (cmap)."""
    out = node.check(f"corosync-cmapctl -m stats | grep 'stats.knet.node{peer_id}.link0"
                     ".latency'", timeout_s=10)
    return {m[1]: float(m[2]) for m in
            re.finditer(r"\.(latency_\w+) \([^)]*\) = (\d+)", out)}


def test_a_100ms_delay_shows_in_knet_latency_and_the_membership_holds(cluster):
    node1, node2 = cluster.node("node1"), cluster.node("node2")
    faults = FaultInjector(cluster.lab, Timeline(Clock()), cluster)
    before, ring_before = knet_latency(node2, 1), node2.quorum().ring_id
    fault = faults._node_fault("node1", netdelay.delay_command(
        netdelay.DelaySpec(delay_ms=100, max_seconds=120)))
    try:
        time.sleep(12)  # ≈ 13 knet pings at PVE's 3-node ping interval (912 ms, §5.1)
        during = knet_latency(node2, 1)
        quorum = node2.quorum()
        log = node1.check(netdelay.stats_command())
    finally:
        faults.end(fault)
    rules = node1.check("iptables -t mangle -S")
    print(f"\nnode2 -> node1 knet latency before: {before}\nwith 100 ms: {during}\n"
          f"quorum during: {quorum}\ndelayer: {netdelay.parse_log(log)}")
    new_samples = during["latency_samples"] - before["latency_samples"]
    new_mean_us = (during["latency_ave"] * during["latency_samples"]
                   - before["latency_ave"] * before["latency_samples"]) / max(1, new_samples)
    print(f"{new_samples:.0f} knet samples while delayed, their mean {new_mean_us / 1000:.1f}"
          f" ms (before: {before['latency_ave'] / 1000:.2f} ms)")
    assert new_samples >= 5 and 90_000 <= new_mean_us <= 150_000
    assert quorum.quorate and quorum.nodes == 3 and quorum.ring_id == ring_before
    assert netdelay.CHAIN not in rules
    assert node1.run(f"test -e {netdelay.PID_FILE}").rc != 0
