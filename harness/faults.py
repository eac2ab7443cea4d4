"""Fault verbs for scenarios: checked against the lab, recorded, and undone at teardown.

The mechanism belongs to the lab; this module only guarantees the interlock (nothing
outside the lab is touched), the record on the timeline, and the undo stack.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import InterlockError, PvechaosError
from harness.events import Action, NodeFault, Note
from harness.lab_api import Capability, Lab, unsupported
from harness.steps import step
from harness.timeline import Event, EventKind, Timeline


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


@dataclass(frozen=True)
class Undo:
    """One entry of the undo stack: an effect still in force on a node."""

    effect: Effect
    node: str


class FaultInjector:
    def __init__(self, lab: Lab, timeline: Timeline) -> None:
        self.lab, self.timeline = lab, timeline
        self._undo: list[Undo] = []

    def _heal(self, effect: Effect) -> Callable[[str], None]:
        """The lab's verb that ends an effect (one per Effect, none by default)."""
        return {Effect.POWER: self.lab.power_on, Effect.FREEZE: self.lab.thaw,
                Effect.LINK: self.lab.link_up}[effect]

    def _ended(self, effect: Effect, node: str) -> None:
        """The scenario itself ended an effect: nothing left to undo for it."""
        self._undo = [u for u in self._undo if (u.effect, u.node) != (effect, node)]

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
        self._undo.append(Undo(Effect.POWER, node))
        return Fault("power_cut", node, event)

    def power_on(self, node: str) -> Fault:
        self._check(node)
        with step(f"power on {node}"):
            event = self.timeline.record(EventKind.FAULT_POWER_ON, "harness", NodeFault(node))
            self.lab.power_on(node)
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

    def action(self, what: str, node: str | None = None) -> Event:
        """Record a scenario step that is not a fault (`pvecm expected 1` on `node`)."""
        return self.timeline.record(EventKind.ACTION, "harness", Action(what, node))

    def undo_all(self) -> list[Exception]:
        """Undo every fault still in effect, newest first; errors are collected."""
        errors: list[Exception] = []
        while self._undo:
            undo = self._undo.pop()
            kind, target = undo.effect.value, undo.node
            try:
                self._heal(undo.effect)(target)
                self.timeline.record(EventKind.NOTE, "harness", Note(f"undone: {kind} {target}"))
            except (PvechaosError, OSError) as exc:
                errors.append(exc)
        return errors
