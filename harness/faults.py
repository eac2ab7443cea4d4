"""Fault verbs for scenarios: checked against the lab, recorded, and undone at teardown.

Two kinds of fault:
- lab faults (power, freeze, link): the mechanism belongs to the lab (Lab protocol);
- in-node faults (partitions, netem, daemon signals, clock steps, storage cuts): shell
  commands run on the node over SSH with standard Linux tools, the same on every lab, real
  PVE included. Each is a ``NodeCommand`` pair (apply, undo); ``_node_fault`` runs the
  apply, records ``fault.begin``, and keeps the undo; ``end`` (or teardown) runs it and
  records ``fault.end``. Each in-node fault module contributes a SWEEP command that
  removes whatever any run of it could leave on a node (``sweep_nodes``).

This module guarantees the interlock (nothing outside the lab is touched), the record on
the timeline, and the undo stack. Each fault done or undone is also one INFO line on the
``pvechaos.faults`` logger.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness import node_command
from harness.cluster import Cluster
from harness.errors import CommandError, InterlockError, PvechaosError, WaitTimeout
from harness.events import Action, FaultBegin, FaultEnd, NodeFault, Note
from harness.faults_clock import ClockFaults
from harness.faults_daemon import DaemonFaults
from harness.faults_net import NetFaults
from harness.faults_qdevice import QdeviceFaults
from harness.faults_storage import StorageFaults
from harness.lab_api import Capability, Lab, unsupported
from harness.node_command import NodeCommand
from harness.report.redact import redact
from harness.steps import step
from harness.timeline import Event, EventKind, Timeline
from harness.waits import wait_until

log = logging.getLogger("pvechaos.faults")


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str
    started: Event
    params: dict[str, object] = field(default_factory=dict)


class Effect(enum.Enum):
    """What a fault left in effect until it is undone (``FaultInjector._heal``)."""

    POWER = "power"  # the node is off (power_cut, shutdown): undone by power_on
    FREEZE = "freeze"  # undone by thaw
    LINK = "link"  # undone by link_up
    IN_NODE = "in-node"  # an in-node fault: undone by running its undo command on the node
    STORAGE = "storage"  # the lab's storage server stopped: undone by storage_restore
    QNETD = "qnetd"  # the lab's QDevice arbiter unreachable: undone by qnetd_back


@dataclass(frozen=True)
class Undo:
    """One entry of the undo stack: an effect still in force on a node."""

    effect: Effect
    node: str
    command: NodeCommand | None = None  # Effect.IN_NODE: what set it and how to end it
    boot: str | None = None  # Effect.IN_NODE: the node's boot id when it was set


# How long an in-node undo that failed waits for its node to answer again (real seconds),
# to tell a reset (a new boot id: the fault went with it) from a lost session
RESET_WAIT_S = 60.0
OFF = "powered off"  # what _answer_again returns for a node the lab has powered off


class FaultInjector(NetFaults, ClockFaults, DaemonFaults, StorageFaults, QdeviceFaults):
    def __init__(self, lab: Lab, timeline: Timeline, cluster: Cluster | None = None) -> None:
        self.lab, self.timeline = lab, timeline
        self._cluster = cluster
        self._undo: list[Undo] = []

    @property
    def cluster(self) -> Cluster:
        """The nodes reached over SSH (made from the lab when not given)."""
        if self._cluster is None:
            self._cluster = Cluster(self.lab)
        return self._cluster

    def _heal(self, effect: Effect) -> Callable[[str], None]:
        """The lab's verb that ends an effect (one per Effect, none by default)."""
        def in_node(node: str) -> None:
            raise PvechaosError("an in-node fault is undone by its own command")

        return {Effect.POWER: self.lab.power_on, Effect.FREEZE: self.lab.thaw,
                Effect.LINK: self.lab.link_up, Effect.IN_NODE: in_node,
                Effect.STORAGE: self._storage_restored,
                Effect.QNETD: self._qnetd_restored}[effect]

    def _ended(self, effect: Effect, node: str) -> None:
        """The scenario itself ended an effect: nothing left to undo for it."""
        self._undo = [u for u in self._undo if (u.effect, u.node) != (effect, node)]

    def _said(self, what: str) -> None:
        """One INFO line for a fault done or undone, naming the lab it was done on."""
        log.info("%s (%s lab %s)", what, self.lab.kind, self.lab.name)

    def _check(self, node: str) -> None:
        names = [n.name for n in self.lab.nodes()]
        if node not in names:
            raise InterlockError(f"refusing a fault on {node!r}: not a node of this lab",
                                 hint=f"nodes are {', '.join(names)}")

    def power_cut(self, node: str) -> Fault:
        self._check(node)
        with step(f"power cut {node}"):
            event = self.timeline.record(EventKind.FAULT_POWER_CUT, "harness", NodeFault(node))
            self.lab.power_cut(node)
        self._said(f"power cut {node}")
        self._undo.append(Undo(Effect.POWER, node))
        return Fault("power_cut", node, event)

    def power_on(self, node: str) -> Fault:
        self._check(node)
        with step(f"power on {node}"):
            event = self.timeline.record(EventKind.FAULT_POWER_ON, "harness", NodeFault(node))
            self.lab.power_on(node)
        self._said(f"power on {node}")
        self._ended(Effect.POWER, node)
        return Fault("power_on", node, event)

    # -- verbs only some labs have (Capability) ------------------------------------------
    def _verb(self, capability: Capability, kind: EventKind, verb: str, node: str,
              act: Callable[[str], None], *, leaves: Effect | None = None,
              ends: Effect | None = None) -> Fault:
        self._check(node)
        if capability not in self.lab.capabilities:
            raise unsupported(self.lab.kind, verb, capability)
        with step(f"{verb.replace('_', ' ')} {node}"):
            event = self.timeline.record(kind, "harness", NodeFault(node))
            act(node)
        self._said(f"{verb.replace('_', ' ')} {node}")
        if leaves is not None:
            self._undo.append(Undo(leaves, node))
        if ends is not None:
            self._ended(ends, node)
        return Fault(verb, node, event)

    def shutdown(self, node: str) -> Fault:
        """ACPI power button: PVE shuts the node down cleanly; undone by power_on."""
        return self._verb(Capability.SHUTDOWN, EventKind.FAULT_SHUTDOWN, "shutdown", node,
                          self.lab.shutdown, leaves=Effect.POWER)

    def reset(self, node: str) -> Fault:
        """Reset button: no shutdown; the node boots again by itself."""
        return self._verb(Capability.RESET, EventKind.FAULT_RESET, "reset", node,
                          self.lab.reset)

    def freeze(self, node: str) -> Fault:
        return self._verb(Capability.FREEZE, EventKind.FAULT_FREEZE, "freeze", node,
                          self.lab.freeze, leaves=Effect.FREEZE)

    def thaw(self, node: str) -> Fault:
        return self._verb(Capability.FREEZE, EventKind.FAULT_THAW, "thaw", node,
                          self.lab.thaw, ends=Effect.FREEZE)

    def link_down(self, node: str) -> Fault:
        return self._verb(Capability.PARTITION, EventKind.FAULT_LINK_DOWN, "link_down", node,
                          self.lab.link_down, leaves=Effect.LINK)

    def link_up(self, node: str) -> Fault:
        return self._verb(Capability.PARTITION, EventKind.FAULT_LINK_UP, "link_up", node,
                          self.lab.link_up, ends=Effect.LINK)

    # -- in-node faults (over SSH, every lab) --------------------------------------------
    def _node_fault(self, node: str, command: NodeCommand) -> Fault:
        """Set ``command`` on ``node``: run its apply, record fault.begin, keep its undo.

        A failed apply is undone at once (it may have half-applied) and raised."""
        self._check(node)
        refusal = self.lab.fault_refusal()
        if refusal is not None:
            raise InterlockError(f"refusing {command.fault} on {node}: {refusal}")
        target = self.cluster.node(node)
        with step(f"{command.fault} on {node}: {command.detail}"):
            boot = target.boot_id()
            # stamped when the command is issued, as the lab verbs' events are: the fault
            # can take effect anywhere inside it (`systemctl stop corosync` returns once
            # corosync has left the ring; its HA stack stalls before that, and a reset
            # measured from the return came 0.15 s before the window's earliest edge)
            issued = self.timeline.clock.now()
            result = target.run(command.apply, timeout_s=command.apply_timeout_s)
            if result.rc != 0:
                target.run(command.undo, timeout_s=20)
                raise CommandError(node, result.command, result.rc, result.stdout,
                                   result.stderr)
            event = self.timeline.record(EventKind.FAULT_BEGIN, "harness",
                                         FaultBegin(command.fault, node, command.detail),
                                         t=issued)
        self._said(f"fault begin: {command.fault} on {node}: {command.detail}")
        self._undo.append(Undo(Effect.IN_NODE, node, command, boot))
        return Fault(command.fault, node, event, {"detail": command.detail})

    def end(self, fault: Fault) -> None:
        """End an in-node fault before teardown (heal the partition, resume the daemon)."""
        for undo in reversed(self._undo):
            if undo.command is not None and undo.node == fault.target \
                    and undo.command.fault == fault.kind:
                self._undo.remove(undo)
                self._end_in_node(undo)
                return
        raise PvechaosError(f"no {fault.kind} in force on {fault.target}")

    def end_all(self, fault_kind: str | None = None) -> None:
        """End every in-node fault still in force (of one kind, or all), newest first.
        Every one is tried; the first failure is raised after the others were ended."""
        failures: list[Exception] = []
        for undo in reversed(list(self._undo)):
            if undo.command is not None and fault_kind in (None, undo.command.fault):
                self._undo.remove(undo)
                try:
                    self._end_in_node(undo)
                except (PvechaosError, OSError) as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]

    def _end_in_node(self, undo: Undo) -> None:
        """Run the undo; when it fails because the node reset meanwhile (or was powered
        off), the fault ended with that boot: rules, qdiscs, paused processes and clock
        steps live in the running kernel and userspace, none survives a reset."""
        assert undo.command is not None
        fault, node = undo.command.fault, undo.node
        with step(f"end {fault} on {node}"):
            try:
                self.cluster.node(node).check(undo.command.undo, timeout_s=20)
                how = ""
            except (PvechaosError, OSError) as exc:
                gone = self._gone_with_boot(undo)
                if gone is None:
                    raise
                how = f" ({gone}; the undo failed: {str(exc).splitlines()[0]})"
                self.timeline.record(EventKind.NOTE, "harness",
                                     Note(f"{fault} on {node} ended by {gone}"))
            self.timeline.record(EventKind.FAULT_END, "harness",
                                 FaultEnd(fault, node, undo.command.detail))
        self._said(f"fault end: {fault} on {node}: {undo.command.detail}{how}")

    def _gone_with_boot(self, undo: Undo) -> str | None:
        """Why ``undo``'s fault is no longer in force although its undo failed (the node is
        off, or answers on a new boot), or None when it may still be (the same boot)."""
        now = self._answer_again(undo.node)
        if now is None:
            return None
        if now == OFF:
            return "the node is powered off"
        if undo.boot is not None and now != undo.boot:
            return f"the node's reset (boot {undo.boot[:8]} -> {now[:8]})"
        try:  # the same boot: the session broke, not the node; one more try
            self.cluster.node(undo.node).check(undo.command.undo,  # type: ignore[union-attr]
                                               timeout_s=20)
        except (PvechaosError, OSError):
            return None
        return "a second try of the undo after a lost session"

    def _answer_again(self, name: str) -> str | None:
        """After a command on ``name`` failed: wait (bounded) until the node answers and
        return its boot id, OFF when it is powered off, None when it never answered."""
        if not self.lab.is_powered(name):
            return OFF
        target = self.cluster.node(name)

        def answers() -> str:
            if not self.lab.is_powered(name):
                return OFF
            return target.boot_id()

        try:
            return wait_until(f"{name} to answer after a failed command", answers,
                              timeout_s=RESET_WAIT_S, interval_s=1.0)
        except WaitTimeout:
            return None

    def leftovers(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """What any in-node fault still has in force on each powered node (rules, qdiscs,
        paused daemons, a delayer, clock markers): only nodes with something are named.
        Shows that an undo really ended its fault."""
        script = "; ".join(node_command.LEFTOVERS.values())
        wanted = tuple(n for n in (names or self.cluster.names) if self.lab.is_powered(n))
        if not wanted:
            return {}
        results = self.cluster.each(lambda node: self._probe(node.name, script),
                                    names=wanted, timeout_s=30 + RESET_WAIT_S)
        found = {}
        for name, result in results.items():
            if isinstance(result, Exception):
                raise result
            if result.strip():
                found[name] = result.strip()
        return found

    def _probe(self, name: str, script: str) -> str:
        """Run a read-only probe on ``name``; when the session breaks (the node reset under
        the probe, as a node under loss may), probe its new boot once, since a reset is
        not taken as proof that nothing is left. A node powered off meanwhile has
        nothing in force."""
        try:
            return self.cluster.node(name).check(script, timeout_s=20)
        except (PvechaosError, OSError):
            now = self._answer_again(name)
            if now is None:
                raise
            if now == OFF:
                return ""
            return self.cluster.node(name).check(script, timeout_s=20)

    def sweep_nodes(self) -> dict[str, str]:
        """Remove what any in-node fault may have left on any powered node (a killed
        run's rules, qdiscs, paused daemons). Returns the nodes it could not reach."""
        script = "; ".join(node_command.SWEEPS.values())
        if not script:
            return {}
        names = tuple(n for n in self.cluster.names if self.lab.is_powered(n))
        results = self.cluster.each(lambda node: node.run(script, timeout_s=20), names=names,
                                    timeout_s=30)
        return {name: str(r) for name, r in results.items() if isinstance(r, Exception)}

    def action(self, what: str, node: str | None = None) -> Event:
        """Record a scenario step that is not a fault (`pvecm expected 1` on `node`).
        Its text is redacted: it is the scenario's own words (a command line, perhaps a
        `pvecm add --password`), shown in the event table, the node logs' titles and
        timeline.json."""
        return self.timeline.record(EventKind.ACTION, "harness", Action(redact(what), node))

    def undo_all(self) -> list[Exception]:
        """Undo every fault still in effect, newest first; errors are collected."""
        errors: list[Exception] = []
        while self._undo:
            undo = self._undo.pop()
            kind, target = undo.effect.value, undo.node
            try:
                if undo.command is not None:
                    self._end_in_node(undo)
                    continue
                self._heal(undo.effect)(target)
                self.timeline.record(EventKind.NOTE, "harness", Note(f"undone: {kind} {target}"))
                self._said(f"undone at teardown: {kind} {target}")
            except (PvechaosError, OSError) as exc:
                log.warning("could not undo %s %s at teardown: %s", kind, target,
                            str(exc).replace("\n", " "))
                errors.append(exc)
        return errors
