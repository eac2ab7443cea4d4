"""Network fault verbs of FaultInjector: partitions, one-way loss, degraded links.

All act on corosync's traffic only (UDP 5405-5412 between cluster addresses; the commands
are in harness/netfaults.py), inside the nodes over SSH, so they work the same on every
lab and on real PVE. What PVE's design says follows is in pve-faults.md §5 (delay, loss)
and §6 (partitions); the README section "Network faults" sums it up per fault.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness import netdelay, netfaults
from harness.errors import CommandError, PvechaosError, UnsupportedFault
from harness.node_command import NodeCommand

if TYPE_CHECKING:
    from harness.faults import Fault

NETWORK_KINDS = ("partition", "one-way")  # what heal_network ends; netem is ended by end()
# Guess: a bound on any scenario's degraded link; the NFQUEUE delayer (harness/netdelay.py)
# ends by itself after it even if no undo ever runs
DELAYER_MAX_S = 6 * 3600


class NetFaults:
    """Mixin of FaultInjector (uses its cluster, _check, _node_fault, end, end_all)."""

    def _peers(self, node: str, names: Sequence[str]) -> dict[str, str]:
        return {n: self.cluster.node(n).cluster_address for n in names if n != node}

    def _need(self, nodes: Sequence[str], tool: str) -> None:
        """Refuse, before touching any node, when one of them lacks ``tool``."""
        probe = netfaults.HAVE_NFT if tool == "nft" else netfaults.HAVE_TC
        lacking = [n for n in nodes if self.cluster.node(n).run(probe, timeout_s=10).rc != 0]
        if lacking:
            package = netfaults.PACKAGES[tool]
            raise UnsupportedFault(f"{', '.join(lacking)} cannot run {tool}",
                                   hint=f"install it on the node(s): apt-get install {package}")

    def _refuse_twice(self, node: str, command: NodeCommand) -> None:
        """A second identical rule (or a second netem) on a node would fail, and the undo
        of the failed apply would remove the first one."""
        for undo in self._undo:
            held = undo.command
            if held is not None and undo.node == node and held.fault == command.fault and \
                    (held.fault == "netem" or held.detail == command.detail):
                raise PvechaosError(f"{node} already has {held.fault} ({held.detail})",
                                    hint="end that fault first (faults.end or heal_network)")

    def _apply_all(self, commands: dict[str, NodeCommand], tool: str) -> list[Fault]:
        """Apply one command per node; on a failure, end those already applied."""
        for node, command in commands.items():
            self._check(node)
            self._refuse_twice(node, command)
        self._need(list(commands), tool)
        done: list[Fault] = []
        try:
            for node, command in commands.items():
                fault = self._node_fault(node, command)
                done.append(dataclasses.replace(
                    fault, params={**fault.params, "chains": netfaults.chains_of(command)}))
        except PvechaosError:
            for fault in reversed(done):
                self.end(fault)
            raise
        return done

    def split(self, groups: Sequence[Sequence[str]]) -> list[Fault]:
        """Cut corosync traffic between the groups: each node drops what it sends to and
        receives from every node outside its own group (rules on both sides)."""
        names = self.cluster.names
        checked = netfaults.split_groups(groups, names)
        commands = {}
        for group in checked:
            outside = [n for n in names if n not in group]
            for node in group:
                commands[node] = netfaults.cut(self._peers(node, outside))
        return self._apply_all(dict(sorted(commands.items())), "nft")

    def isolate(self, node: str) -> list[Fault]:
        """Cut ``node``'s corosync traffic to and from every other node (pve-faults §6.1:
        it loses quorum; the others keep it when they are a majority)."""
        self._check(node)
        return self.split([[node], [n for n in self.cluster.names if n != node]])

    def one_way(self, src: str, dst: str) -> Fault:
        """Drop corosync traffic from ``src`` to ``dst`` only (rule on ``src``'s output).
        pve-faults §6.3: knet then marks the src-dst link down both ways (Derived)."""
        self._check(dst)
        if src == dst:
            raise PvechaosError(f"one_way needs two different nodes, got {src} twice")
        command = netfaults.one_way(dst, self.cluster.node(dst).cluster_address)
        return self._apply_all({src: command}, "nft")[0]

    def heal_network(self) -> None:
        """End every partition and one-way fault still in force."""
        for kind in NETWORK_KINDS:
            self.end_all(kind)

    def dropped(self, fault: Fault) -> int:
        """Packets the rules of a partition or one-way fault dropped so far."""
        chains = fault.params.get("chains") or ()
        total = 0
        for chain in chains:
            text = self.cluster.node(fault.target).check(
                "nft", "list", "chain", *netfaults.TABLE.split(), str(chain), timeout_s=10)
            total += netfaults.dropped_packets(text)
        return total

    def degrade(self, node: str, *, delay_ms: float = 0, jitter_ms: float = 0,
                loss_pct: float = 0, duplicate_pct: float = 0, reorder_pct: float = 0,
                rate_kbit: int | None = None) -> Fault:
        """Degrade ``node``'s OUTGOING corosync traffic (netem for delay, jitter,
        duplication, reordering and rate; nftables for random loss; on a kernel without
        netem, delay, jitter and reordering by the NFQUEUE delayer). pve-faults §5.3
        gives where the thresholds lie (Derived/Guess): measure them, see
        scenarios/test_corosync_sweep.py."""
        spec = netfaults.Netem(delay_ms, jitter_ms, loss_pct, duplicate_pct, reorder_pct,
                               rate_kbit)
        self._check(node)
        command = netfaults.netem(self._peers(node, self.cluster.names), spec)
        self._refuse_twice(node, command)
        if spec.loss_pct:
            self._need([node], "nft")
        if spec.needs_tc:
            self._need([node], "tc")
        try:
            return self._node_fault(node, command)
        except CommandError as exc:
            if not netfaults.kernel_lacks_tc(exc.stderr):
                raise
            reason = exc.stderr.strip().splitlines()[-1]
        if spec.duplicate_pct or spec.rate_kbit:
            raise UnsupportedFault(
                f"{node}'s kernel cannot run netem under prio with u32 filters: {reason}",
                hint="use a kernel with sch_netem, sch_prio and cls_u32 (modprobe sch_netem "
                     "sch_prio cls_u32); without them only delay, jitter, reorder and loss "
                     "can be done (NFQUEUE, harness/netdelay.py)")
        return self._node_fault(node, self._nfqueue_delay(node, spec))

    def _nfqueue_delay(self, node: str, spec: netfaults.Netem) -> NodeCommand:
        """Delay, jitter and reorder without sch_netem: the NFQUEUE delayer of
        harness/netdelay.py; loss stays the nft rule."""
        peers = self._peers(node, self.cluster.names)
        delay = netdelay.delay_command(netdelay.DelaySpec(
            spec.delay_ms, DELAYER_MAX_S, spec.jitter_ms, reorder_percent=spec.reorder_pct,
            peers=tuple(peers[n] for n in sorted(peers))))
        detail = f"{spec.describe()} to {', '.join(sorted(peers))} (nfqueue: no sch_netem)"
        if not spec.loss_pct:
            return NodeCommand("netem", detail, apply=delay.apply, undo=delay.undo)
        loss = netfaults.netem(peers, netfaults.Netem(loss_pct=spec.loss_pct))
        return NodeCommand("netem", detail, apply=f"{loss.apply} || exit 1\n{delay.apply}",
                           undo=f"{delay.undo}; {loss.undo}")
