"""Fault verbs for scenarios: checked against the lab, recorded, and undone at teardown.

The mechanism belongs to the lab; this module only guarantees the interlock (nothing
outside the lab is touched), the record on the timeline, and the undo stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import InterlockError, PvechaosError, UnsupportedFault
from harness.events import Action, NodeFault, Note
from harness.lab_api import Capability, Lab
from harness.steps import step
from harness.timeline import Event, EventKind, Timeline


@dataclass(frozen=True)
class Fault:
    kind: str
    target: str
    started: Event
    params: dict[str, object] = field(default_factory=dict)


class FaultInjector:
    def __init__(self, lab: Lab, timeline: Timeline) -> None:
        self.lab, self.timeline = lab, timeline
        self._undo: list[tuple[str, str, Callable[[], None]]] = []  # (kind, target, undo)

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
        self._undo.append(("power", node, lambda: self.lab.power_on(node)))
        return Fault("power_cut", node, event)

    def power_on(self, node: str) -> Fault:
        self._check(node)
        with step(f"power on {node}"):
            event = self.timeline.record(EventKind.FAULT_POWER_ON, "harness", NodeFault(node))
            self.lab.power_on(node)
        self._undo = [u for u in self._undo if u[:2] != ("power", node)]
        return Fault("power_on", node, event)

    # -- verbs only some labs have (Capability) ------------------------------------------
    def _verb(self, capability: Capability, kind: EventKind, verb: str, node: str,
              undo: tuple[str, Callable[[], None]] | None = None,
              undoes: str | None = None) -> Fault:
        self._check(node)
        if capability not in self.lab.capabilities:
            raise UnsupportedFault(f"the {self.lab.kind} lab cannot {verb.replace('_', ' ')}",
                                   hint="skip this scenario on this lab, or run it on a lab "
                                        f"with {capability.name} (see README, 'Labs')")
        with step(f"{verb.replace('_', ' ')} {node}"):
            event = self.timeline.record(kind, "harness", NodeFault(node))
            getattr(self.lab, verb)(node)
        if undo is not None:
            self._undo.append((undo[0], node, undo[1]))
        if undoes is not None:
            self._undo = [u for u in self._undo if u[:2] != (undoes, node)]
        return Fault(verb, node, event)

    def shutdown(self, node: str) -> Fault:
        """ACPI power button: PVE shuts the node down cleanly; undone by power_on."""
        return self._verb(Capability.SHUTDOWN, EventKind.FAULT_SHUTDOWN, "shutdown", node,
                          undo=("power", lambda: self.lab.power_on(node)))

    def reset(self, node: str) -> Fault:
        """Reset button: no shutdown; the node boots again by itself."""
        return self._verb(Capability.RESET, EventKind.FAULT_RESET, "reset", node)

    def freeze(self, node: str) -> Fault:
        return self._verb(Capability.FREEZE, EventKind.FAULT_FREEZE, "freeze", node,
                          undo=("freeze", lambda: self.lab.thaw(node)))

    def thaw(self, node: str) -> Fault:
        return self._verb(Capability.FREEZE, EventKind.FAULT_THAW, "thaw", node,
                          undoes="freeze")

    def link_down(self, node: str) -> Fault:
        return self._verb(Capability.PARTITION, EventKind.FAULT_LINK_DOWN, "link_down", node,
                          undo=("link", lambda: self.lab.link_up(node)))

    def link_up(self, node: str) -> Fault:
        return self._verb(Capability.PARTITION, EventKind.FAULT_LINK_UP, "link_up", node,
                          undoes="link")

    def action(self, what: str, **data: object) -> Event:
        """Record a scenario step that is not a fault (`pvecm expected 1`, ...)."""
        return self.timeline.record(EventKind.ACTION, "harness", Action(what, **data))

    def undo_all(self) -> list[Exception]:
        """Undo every fault still in effect, newest first; errors are collected."""
        errors: list[Exception] = []
        while self._undo:
            kind, target, undo = self._undo.pop()
            try:
                undo()
                self.timeline.record(EventKind.NOTE, "harness", Note(f"undone: {kind} {target}"))
            except (PvechaosError, OSError) as exc:
                errors.append(exc)
        return errors
