"""Network faults: the exact commands each lab's nodes are sent (the same on the embedded,
libvirt and inventory labs and real PVE: they go over SSH), validation, and the verbs'
bookkeeping on FaultInjector, with a fake cluster."""

from __future__ import annotations

import pytest

from harness import faults_net, netdelay, netfaults, node_command
from harness.clock import Clock
from harness.errors import CommandError, ConfigError, PvechaosError, UnsupportedFault
from harness.faults import FaultInjector
from harness.lab_api import Capability
from harness.timeline import EventKind, Timeline
from tests.twins import FakeCluster, FakeLab, FakeNode

ADDR = {"node1": "198.18.0.11", "node2": "198.18.0.12", "node3": "198.18.0.13"}
NFT = ("command -v nft >/dev/null 2>&1 || { echo 'pvechaos: nft is not installed on this "
       "node: apt-get install nftables' >&2; exit 127; }; ")


def setup(answers=""):
    nodes = [FakeNode(n, answers, address=a) for n, a in ADDR.items()]
    lab = FakeLab(names=tuple(ADDR), capabilities=Capability.POWER)
    return FaultInjector(lab, Timeline(Clock()), FakeCluster(*nodes, lab=lab))


def sent(faults: FaultInjector, node: str) -> list[str]:
    return [c.argv[0] for c in faults.cluster.node(node).calls]


def test_a_cut_drops_corosync_udp_both_ways_in_its_own_chains():
    command = netfaults.cut({"node2": ADDR["node2"], "node1": ADDR["node1"]})
    assert command.fault == "partition" and command.detail == "corosync cut from node1, node2"
    assert command.apply == NFT + (
        "printf '%s\\n' 'add table inet pvechaos_net' "
        "'create chain inet pvechaos_net cut_node1_node2_in { type filter hook input "
        "priority -10; policy accept; }' "
        "'create chain inet pvechaos_net cut_node1_node2_out { type filter hook output "
        "priority -10; policy accept; }' "
        "'add rule inet pvechaos_net cut_node1_node2_in ip saddr { 198.18.0.11, 198.18.0.12 }"
        " udp dport 5405-5412 counter drop' "
        "'add rule inet pvechaos_net cut_node1_node2_out ip daddr { 198.18.0.11, 198.18.0.12 }"
        " udp dport 5405-5412 counter drop' | nft -f -")
    assert command.undo == (
        "if nft list chain inet pvechaos_net cut_node1_node2_in >/dev/null 2>&1; then "
        "printf '%s\\n' 'flush chain inet pvechaos_net cut_node1_node2_in' "
        "'delete chain inet pvechaos_net cut_node1_node2_in' | nft -f - || exit 1; fi; "
        "if nft list chain inet pvechaos_net cut_node1_node2_out >/dev/null 2>&1; then "
        "printf '%s\\n' 'flush chain inet pvechaos_net cut_node1_node2_out' "
        "'delete chain inet pvechaos_net cut_node1_node2_out' | nft -f - || exit 1; fi; "
        "if ! nft list table inet pvechaos_net 2>/dev/null | grep -q 'chain '; then "
        "nft delete table inet pvechaos_net >/dev/null 2>&1; fi; true")
    assert netfaults.chains_of(command) == ("cut_node1_node2_in", "cut_node1_node2_out")


def test_ipv6_peers_get_an_ip6_rule():
    command = netfaults.cut({"a": "fd00::1", "b": "198.18.0.12"})
    assert "ip6 saddr { fd00::1 } udp dport 5405-5412 counter drop" in command.apply
    assert "ip saddr { 198.18.0.12 } udp dport 5405-5412 counter drop" in command.apply


def test_one_way_drops_only_what_the_sender_sends_to_its_peer():
    command = netfaults.one_way("node3", ADDR["node3"])
    assert command.apply == NFT + (
        "printf '%s\\n' 'add table inet pvechaos_net' "
        "'create chain inet pvechaos_net oneway_node3_out { type filter hook output "
        "priority -10; policy accept; }' "
        "'add rule inet pvechaos_net oneway_node3_out ip daddr { 198.18.0.13 } "
        "udp dport 5405-5412 counter drop' | nft -f -")
    assert "hook input" not in command.apply


def test_dropped_packets_sums_the_rule_counters():
    listing = ("table inet pvechaos_net {\n chain x_out {\n  ip daddr { 198.18.0.13 } udp "
               "dport 5405-5412 counter packets 17 bytes 2000 drop\n  ip6 daddr { fd00::1 } "
               "udp dport 5405-5412 counter packets 3 bytes 10 drop\n }\n}\n")
    assert netfaults.dropped_packets(listing) == 20


def test_the_port_range_as_u32_masks_covers_5405_to_5412_exactly():
    covered = {p for port, mask in netfaults._port_masks() for p in range(65536)
               if p & mask == port}
    assert covered == set(range(5405, 5413))


def test_netem_steers_corosync_to_each_peer_into_the_netem_band_of_our_prio_qdisc():
    spec = netfaults.Netem(delay_ms=100, jitter_ms=10, duplicate_pct=1, reorder_pct=2,
                           rate_kbit=512)
    command = netfaults.netem({"node2": ADDR["node2"]}, spec)
    assert command.fault == "netem"
    assert command.detail == "delay 100ms 10ms duplicate 1% reorder 2% rate 512kbit to node2"
    parts = command.apply.split("; ")
    assert parts[0].startswith("command -v tc >/dev/null 2>&1 || { echo 'pvechaos: tc is "
                               "not installed on this node: apt-get install iproute2'")
    assert "d1=$(devof 198.18.0.12)" in command.apply
    assert ('tc qdisc add dev "$dev" root handle 5405: prio bands 4 priomap '
            '1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1 || exit 1') in command.apply
    assert ('tc qdisc add dev "$dev" parent 5405:4 handle 5406: netem delay 100ms 10ms '
            'duplicate 1% reorder 2% rate 512kbit || exit 1') in command.apply
    filters = [p for p in parts if p.startswith("tc filter")]
    assert filters == [
        f'tc filter add dev "$d1" parent 5405: protocol ip prio 1 u32 match ip dst '
        f'198.18.0.12/32 match ip protocol 17 0xff match ip dport {port} {mask} '
        f'flowid 5405:4 || exit 1'
        for port, mask in (("5405", "0xffff"), ("5406", "0xfffe"), ("5408", "0xfffc"),
                           ("5412", "0xffff"))]
    assert "nft" not in command.apply  # no loss asked
    assert command.undo == f"if command -v tc >/dev/null 2>&1; then {netfaults.DEL_QDISC}; fi"
    assert "grep -q '^qdisc prio 5405: root'" in netfaults.DEL_QDISC  # only ours


def test_loss_is_an_nft_random_drop_in_hundredths_of_a_percent():
    command = netfaults.netem({"node1": ADDR["node1"], "node3": ADDR["node3"]},
                              netfaults.Netem(loss_pct=2.5))
    assert command.detail == "loss 2.5% to node1, node3"
    assert "tc " not in command.apply
    assert ("'add rule inet pvechaos_net loss_out ip daddr { 198.18.0.11, 198.18.0.13 } "
            "udp dport 5405-5412 numgen random mod 10000 < 250 counter drop'") in command.apply
    assert "delete chain inet pvechaos_net loss_out" in command.undo
    assert "tc qdisc" not in command.undo


@pytest.mark.parametrize("options, message", [
    ({}, "nothing to degrade"),
    ({"delay_ms": -1}, "delay_ms -1 outside"),
    ({"delay_ms": 10, "jitter_ms": 20}, "jitter_ms 20 outside 0..delay_ms"),
    ({"loss_pct": 101}, "loss_pct 101 outside 0..100"),
    ({"duplicate_pct": -5}, "duplicate_pct -5"),
    ({"reorder_pct": 5, "loss_pct": 1}, "reorder_pct needs a delay"),
    ({"rate_kbit": 0}, "rate_kbit 0 must be a positive integer"),
])
def test_netem_ranges_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        netfaults.Netem(**options)


@pytest.mark.parametrize("groups, message", [
    ([["node1", "node2", "node3"]], "at least two non-empty groups"),
    ([["node1", "node2"], []], "at least two non-empty groups"),
    ([["node1", "node2"], ["pve9"]], r"unknown nodes \['pve9'\]"),
    ([["node1", "node2"], ["node2", "node3"]], r"twice \['node2'\]"),
    ([["node1"], ["node2"]], r"missing \['node3'\]"),
])
def test_split_groups_are_validated(groups, message):
    faults = setup()
    with pytest.raises(ConfigError, match=message):
        faults.split(groups)
    assert all(n.calls == [] for n in faults.cluster.nodes())


def test_isolate_cuts_the_node_from_all_and_each_other_node_from_it():
    faults = setup()
    made = faults.isolate("node3")
    assert [f.target for f in made] == ["node1", "node2", "node3"]
    assert {f.kind for f in made} == {"partition"}
    begins = faults.timeline.events(EventKind.FAULT_BEGIN)
    assert [(e.payload.node, e.payload.detail) for e in begins] == [
        ("node1", "corosync cut from node3"), ("node2", "corosync cut from node3"),
        ("node3", "corosync cut from node1, node2")]
    assert sent(faults, "node3") == [netfaults.HAVE_NFT,
                                     netfaults.cut({"node1": ADDR["node1"],
                                                    "node2": ADDR["node2"]}).apply]
    assert made[2].params["chains"] == ("cut_node1_node2_in", "cut_node1_node2_out")
    faults.heal_network()
    assert len(faults.timeline.events(EventKind.FAULT_END)) == 3
    assert sent(faults, "node1")[-1] == netfaults.cut({"node3": ADDR["node3"]}).undo


def test_a_split_into_three_cuts_every_node_from_both_others():
    faults = setup()
    faults.split([["node1"], ["node2"], ["node3"]])
    assert sent(faults, "node2")[-1] == netfaults.cut({"node1": ADDR["node1"],
                                                       "node3": ADDR["node3"]}).apply


def test_one_way_touches_the_sender_only_and_heal_network_ends_it():
    faults = setup()
    fault = faults.one_way("node1", "node2")
    assert fault.kind == "one-way" and fault.target == "node1"
    assert faults.cluster.node("node2").calls == []
    faults.heal_network()
    assert sent(faults, "node1")[-1] == netfaults.one_way("node2", ADDR["node2"]).undo


def test_a_node_without_nft_is_refused_before_any_node_is_touched():
    faults = setup(lambda call: (1, "") if call.argv[0] == netfaults.HAVE_NFT else "")
    with pytest.raises(UnsupportedFault, match="cannot run nft") as caught:
        faults.isolate("node1")
    assert "apt-get install nftables" in str(caught.value.hint)
    assert faults.timeline.events(EventKind.FAULT_BEGIN) == []


def test_a_failed_apply_on_one_node_ends_those_already_cut():
    def answer(call):
        return (1, "", "Error: boom") if "cut_node1_node2" in call.argv[0] \
            and "create chain" in call.argv[0] else ""
    faults = setup(answer)
    with pytest.raises(CommandError):
        faults.isolate("node3")
    assert len(faults.timeline.events(EventKind.FAULT_BEGIN)) == 2
    assert len(faults.timeline.events(EventKind.FAULT_END)) == 2
    assert faults.undo_all() == []


def test_the_same_cut_twice_is_refused_so_its_undo_cannot_remove_the_first():
    faults = setup()
    faults.one_way("node1", "node2")
    with pytest.raises(PvechaosError, match="already has one-way"):
        faults.one_way("node1", "node2")
    faults.one_way("node1", "node3")  # another rule is fine


def test_degrade_sends_the_netem_command_to_the_node_and_refuses_a_second_one():
    faults = setup()
    fault = faults.degrade("node2", delay_ms=50)
    assert fault.kind == "netem" and fault.target == "node2"
    peers = {"node1": ADDR["node1"], "node3": ADDR["node3"]}
    assert sent(faults, "node2") == [netfaults.HAVE_TC, netfaults.netem(
        peers, netfaults.Netem(delay_ms=50)).apply]
    with pytest.raises(PvechaosError, match="already has netem"):
        faults.degrade("node2", loss_pct=5)
    faults.end(fault)
    assert sent(faults, "node2")[-1] == netfaults.netem(peers,
                                                        netfaults.Netem(delay_ms=50)).undo


def no_netem(call):
    if "tc qdisc add" in call.argv[0]:
        return (2, "", "Error: Specified qdisc kind is unknown.")
    return ""


def test_a_kernel_without_netem_refuses_duplication_naming_the_modules():
    faults = setup(no_netem)
    with pytest.raises(UnsupportedFault, match="qdisc kind is unknown") as caught:
        faults.degrade("node1", delay_ms=20, duplicate_pct=1)
    assert "sch_netem" in str(caught.value.hint)
    assert faults.timeline.events(EventKind.FAULT_BEGIN) == []


def test_a_kernel_without_netem_delays_through_the_nfqueue_delayer_loss_staying_nft():
    faults = setup(no_netem)
    fault = faults.degrade("node1", delay_ms=20, jitter_ms=5, loss_pct=3)
    peers = {"node2": ADDR["node2"], "node3": ADDR["node3"]}
    delay = netdelay.delay_command(netdelay.DelaySpec(
        20, faults_net.DELAYER_MAX_S, 5, peers=(ADDR["node2"], ADDR["node3"])))
    loss = netfaults.netem(peers, netfaults.Netem(loss_pct=3))
    # tried netem (refused by the kernel, its undo run), then the delayer
    failed_netem, used = sent(faults, "node1")[-3], sent(faults, "node1")[-1]
    assert "netem delay 20ms 5ms" in failed_netem
    assert used == f"{loss.apply} || exit 1\n{delay.apply}"
    [begin] = faults.timeline.events(EventKind.FAULT_BEGIN)
    assert begin.payload.detail == ("delay 20ms 5ms loss 3% to node2, node3 "
                                    "(nfqueue: no sch_netem)")
    faults.end(fault)
    assert sent(faults, "node1")[-1] == f"{delay.undo}; {loss.undo}"


def test_the_sweep_removes_our_table_and_only_our_qdisc_and_always_succeeds():
    sweep = node_command.SWEEPS["netfaults"]
    assert sweep.startswith("( nft delete table inet pvechaos_net >/dev/null 2>&1;")
    assert netfaults.DEL_QDISC in sweep and sweep.endswith("; true )")
