"""Network faults on corosync's traffic as shell commands (pure builders, no I/O).

Corosync traffic is UDP to ports 5405-5412 (knet; PVE's links 0..7 use 5405 + link
number) between the nodes' cluster addresses. Only that traffic is touched: SSH and the
guests' network stay up so the harness keeps watching.

- partitions and one-way loss: nftables rules in the table ``inet pvechaos_net``, one pair
  of chains (input, output) per fault, each rule with a counter;
- random loss: an nftables rule (``numgen random``) on the node's outgoing corosync
  traffic. Deviation from "netem for everything": nftables' random drop works on kernels
  without sch_netem (the host these were built on has none), and both drop each packet
  independently with the same probability;
- delay, jitter, duplication, reordering, rate: ``tc netem`` under a ``prio`` root qdisc
  with handle 5405: (our mark), u32 filters steering UDP 5405-5412 to the peers' cluster
  addresses into the netem band. The device is the one ``ip route get <peer>`` names.
  On a kernel without them, harness/faults_net.py falls back to harness/netdelay.py (an
  NFQUEUE delayer) for delay, jitter and reordering.

Every undo succeeds when there is nothing left to remove (a sweep may have run first).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.node_command import LEFTOVERS, SWEEPS, NodeCommand

PORTS = (5405, 5412)  # knet: link0..link7 (corosync.conf(5) knet_transport / mcastport)
TABLE = "inet pvechaos_net"
PRIO_HANDLE = "5405:"  # marks the root qdisc as ours
NETEM_HANDLE = "5406:"
NETEM_BAND = "5405:4"  # the fourth band; the priomap below only uses bands 1..3
PRIOMAP = "1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"  # Linux's default priomap
PRIORITY = -10  # before a filter-priority firewall (pve-firewall) sees the packet

NEED_NFT = ("command -v nft >/dev/null 2>&1 || { echo 'pvechaos: nft is not installed on "
            "this node: apt-get install nftables' >&2; exit 127; }")
NEED_TC = ("command -v tc >/dev/null 2>&1 || { echo 'pvechaos: tc is not installed on "
           "this node: apt-get install iproute2' >&2; exit 127; }")
HAVE_NFT = "command -v nft >/dev/null 2>&1"
HAVE_TC = "command -v tc >/dev/null 2>&1"
PACKAGES = {"nft": "nftables", "tc": "iproute2"}


def _family(address: str) -> str:
    return "ip6" if ipaddress.ip_address(address).version == 6 else "ip"


def _tag(text: str) -> str:
    """An nft chain name from node names ("cut_node1_node2")."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _nft(lines: Sequence[str]) -> str:
    """Run nft statements as one transaction (all or nothing)."""
    return "printf '%s\\n' " + " ".join(map(shlex.quote, lines)) + " | nft -f -"


def _rules(chain: str, direction: str, peers: Sequence[str], extra: str = "") -> list[str]:
    """One drop rule per address family: ``direction`` is saddr (input) or daddr."""
    lines = []
    for family in ("ip", "ip6"):
        addresses = [p for p in peers if _family(p) == family]
        if addresses:
            lines.append(f"add rule {TABLE} {chain} {family} {direction} "
                         f"{{ {', '.join(addresses)} }} udp dport {PORTS[0]}-{PORTS[1]}"
                         f"{extra} counter drop")
    return lines


def _chain(name: str, hook: str) -> str:
    return (f"create chain {TABLE} {name} {{ type filter hook {hook} priority {PRIORITY}; "
            "policy accept; }")


def _drop_chains(chains: Sequence[str]) -> str:
    """Remove our chains (if present), then our table once it holds no chain."""
    parts = [f"if nft list chain {TABLE} {c} >/dev/null 2>&1; then "
             f"{_nft([f'flush chain {TABLE} {c}', f'delete chain {TABLE} {c}'])} || exit 1; fi"
             for c in chains]
    parts.append(f"if ! nft list table {TABLE} 2>/dev/null | grep -q 'chain '; then "
                 f"nft delete table {TABLE} >/dev/null 2>&1; fi; true")
    return "; ".join(parts)


def _nft_fault(fault: str, detail: str, statements: list[str], chains: list[str]
               ) -> NodeCommand:
    apply = f"{NEED_NFT}; " + _nft([f"add table {TABLE}", *statements])
    return NodeCommand(fault, detail, apply=apply, undo=_drop_chains(chains))


def chains_of(command: NodeCommand) -> tuple[str, ...]:
    """The nft chains a command creates (for reading their counters)."""
    return tuple(re.findall(rf"create chain {TABLE} (\w+) ", command.apply))


def cut(peers: Mapping[str, str]) -> NodeCommand:
    """Drop corosync traffic to and from ``peers`` (name -> cluster address)."""
    tag = _tag("cut_" + "_".join(sorted(peers)))
    addresses = [peers[n] for n in sorted(peers)]
    statements = [_chain(f"{tag}_in", "input"), _chain(f"{tag}_out", "output"),
                  *_rules(f"{tag}_in", "saddr", addresses),
                  *_rules(f"{tag}_out", "daddr", addresses)]
    return _nft_fault("partition", f"corosync cut from {', '.join(sorted(peers))}",
                      statements, [f"{tag}_in", f"{tag}_out"])


def one_way(dst: str, address: str) -> NodeCommand:
    """On the sending node: drop its corosync traffic to ``dst`` only."""
    tag = _tag(f"oneway_{dst}")
    statements = [_chain(f"{tag}_out", "output"), *_rules(f"{tag}_out", "daddr", [address])]
    return _nft_fault("one-way", f"corosync to {dst} dropped", statements, [f"{tag}_out"])


def dropped_packets(listing: str) -> int:
    """Packets counted by the rules of ``nft list chain`` output."""
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))


def split_groups(groups: Sequence[Sequence[str]], names: Sequence[str]) -> list[list[str]]:
    """Validate a partition of the nodes into groups: each node exactly once, >= 2 groups,
    known names."""
    groups = [list(g) for g in groups]
    if len(groups) < 2 or any(not g for g in groups):
        raise ConfigError(f"a split needs at least two non-empty groups, got {groups}",
                          hint='e.g. split([["node1", "node2"], ["node3"]])')
    listed = [n for g in groups for n in g]
    unknown = sorted(set(listed) - set(names))
    if unknown:
        raise ConfigError(f"split names unknown nodes {unknown}",
                          hint=f"the nodes are {', '.join(sorted(names))}")
    twice = sorted({n for n in listed if listed.count(n) > 1})
    missing = sorted(set(names) - set(listed))
    if twice or missing:
        raise ConfigError(f"every node must be in exactly one group: twice {twice}, "
                          f"missing {missing}", hint=f"groups {groups}")
    return groups


@dataclass(frozen=True)
class Netem:
    """A degraded link: what netem (and nft, for loss) does to outgoing corosync traffic."""

    delay_ms: float = 0
    jitter_ms: float = 0
    loss_pct: float = 0
    duplicate_pct: float = 0
    reorder_pct: float = 0
    rate_kbit: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.delay_ms <= 60_000:
            problems.append(f"delay_ms {self.delay_ms} outside 0..60000")
        if not 0 <= self.jitter_ms <= self.delay_ms:
            problems.append(f"jitter_ms {self.jitter_ms} outside 0..delay_ms "
                            "(netem would clip the negative delays to 0)")
        for name in ("loss_pct", "duplicate_pct", "reorder_pct"):
            if not 0 <= getattr(self, name) <= 100:
                problems.append(f"{name} {getattr(self, name)} outside 0..100")
        if self.reorder_pct and not self.delay_ms:
            problems.append("reorder_pct needs a delay (tc-netem(8): reordering sends some "
                            "packets at once and delays the others)")
        if self.rate_kbit is not None and not (isinstance(self.rate_kbit, int)
                                               and self.rate_kbit > 0):
            problems.append(f"rate_kbit {self.rate_kbit!r} must be a positive integer")
        if not problems and not (self.delay_ms or self.loss_pct or self.duplicate_pct
                                 or self.rate_kbit):
            problems.append("nothing to degrade: give a delay, loss, duplication or rate")
        if problems:
            raise ConfigError("degrade: " + "; ".join(problems))

    @property
    def needs_tc(self) -> bool:
        return bool(self.delay_ms or self.duplicate_pct or self.rate_kbit)

    def netem_args(self) -> str:
        args = []
        if self.delay_ms:
            args.append(f"delay {self.delay_ms:g}ms" +
                        (f" {self.jitter_ms:g}ms" if self.jitter_ms else ""))
        if self.duplicate_pct:
            args.append(f"duplicate {self.duplicate_pct:g}%")
        if self.reorder_pct:
            args.append(f"reorder {self.reorder_pct:g}%")
        if self.rate_kbit:
            args.append(f"rate {self.rate_kbit}kbit")
        return " ".join(args)

    def describe(self) -> str:
        parts = [self.netem_args()] if self.needs_tc else []
        if self.loss_pct:
            parts.append(f"loss {self.loss_pct:g}%")
        return " ".join(parts)


def _port_masks() -> list[tuple[int, int]]:
    """UDP 5405-5412 as u32 (value, mask) pairs: 5405, 5406/2, 5408/4, 5412."""
    masks, port = [], PORTS[0]
    while port <= PORTS[1]:
        size = 1
        while port % (size * 2) == 0 and port + size * 2 - 1 <= PORTS[1]:
            size *= 2
        masks.append((port, 0xFFFF & ~(size - 1)))
        port += size
    return masks


DEVOF = "devof() { ip -o route get \"$1\" | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'; }"
# our qdiscs, by their handle, on every device of the node (sweep and undo alike)
DEL_QDISC = ("for dev in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do "
             f"if tc qdisc show dev \"$dev\" root 2>/dev/null | grep -q '^qdisc prio "
             f"{PRIO_HANDLE} root'; then tc qdisc del dev \"$dev\" root || exit 1; fi; done")
LOSS_CHAIN = "loss_out"


def netem(peers: Mapping[str, str], spec: Netem) -> NodeCommand:
    """Degrade the node's outgoing corosync traffic to ``peers`` (name -> address)."""
    names = sorted(peers)
    apply_parts, undo_parts = [], []
    if spec.needs_tc:
        apply_parts += [NEED_TC, DEVOF]
        for i, name in enumerate(names, 1):
            apply_parts.append(f"d{i}=$(devof {peers[name]}); [ -n \"$d{i}\" ] || "
                               f"{{ echo 'pvechaos: no route to {name} ({peers[name]})' >&2;"
                               " exit 1; }")
        devs = " ".join(f'"$d{i}"' for i in range(1, len(names) + 1))
        apply_parts.append(
            f"for dev in $(printf '%s\\n' {devs} | sort -u); do "
            f"tc qdisc add dev \"$dev\" root handle {PRIO_HANDLE} prio bands 4 priomap "
            f"{PRIOMAP} || exit 1; tc qdisc add dev \"$dev\" parent {NETEM_BAND} handle "
            f"{NETEM_HANDLE} netem {spec.netem_args()} || exit 1; done")
        for i, name in enumerate(names, 1):
            apply_parts += _steer(f'"$d{i}"', peers[name])
        undo_parts.append(f"if command -v tc >/dev/null 2>&1; then {DEL_QDISC}; fi")
    if spec.loss_pct:
        threshold = round(spec.loss_pct * 100)  # numgen 0..9999: 0.01 % steps
        statements = [f"add table {TABLE}", _chain(LOSS_CHAIN, "output"),
                      *_rules(LOSS_CHAIN, "daddr", [peers[n] for n in names],
                              f" numgen random mod 10000 < {threshold}")]
        apply_parts += [NEED_NFT, _nft(statements)]
        undo_parts.insert(0, _drop_chains([LOSS_CHAIN]))
    return NodeCommand("netem", f"{spec.describe()} to {', '.join(names)}",
                       apply="; ".join(apply_parts), undo="; ".join(undo_parts))


def _steer(dev: str, address: str) -> list[str]:
    """u32 filters sending UDP 5405-5412 to ``address`` into the netem band."""
    six = _family(address) == "ip6"
    proto, match, bits = ("ipv6", "ip6", 128) if six else ("ip", "ip", 32)
    return [f"tc filter add dev {dev} parent {PRIO_HANDLE} protocol {proto} prio 1 u32 "
            f"match {match} dst {address}/{bits} match {match} protocol 17 0xff "
            f"match {match} dport {port} 0x{mask:04x} flowid {NETEM_BAND} || exit 1"
            for port, mask in _port_masks()]


KERNEL_LACKS = ("qdisc kind is unknown", "Unknown qdisc", "Unknown filter",
                "Specified filter kind")


def kernel_lacks_tc(stderr: str) -> bool:
    """tc's answer when the kernel has no sch_prio, sch_netem or cls_u32."""
    return any(text in stderr for text in KERNEL_LACKS)


# in a subshell: its `exit` must not end the other modules' sweeps it is joined with
SWEEPS["netfaults"] = (f"( nft delete table {TABLE} >/dev/null 2>&1; "
                       f"if command -v tc >/dev/null 2>&1; then {DEL_QDISC}; fi; true )")
LEFTOVERS["netfaults"] = (f"( nft list table {TABLE} 2>/dev/null | grep -o 'chain [A-Za-z0-9_]*'; "
                          f"tc qdisc show 2>/dev/null | grep 'qdisc prio {PRIO_HANDLE} root'; "
                          "true )")
