"""Fault verbs for scenarios: checked against the lab, recorded, and undone at teardown.

The mechanism belongs to the lab; this module only guarantees the interlock (nothing
outside the lab is touched), the record on the timeline, and the undo stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import InterlockError, PvechaosError
from harness.lab_api import Lab
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
            event = self.timeline.record(EventKind.FAULT_POWER_CUT, "harness", node=node)
            self.lab.power_cut(node)
        self._undo.append(("power", node, lambda: self.lab.power_on(node)))
        return Fault("power_cut", node, event)

    def power_on(self, node: str) -> Fault:
        self._check(node)
        with step(f"power on {node}"):
            event = self.timeline.record(EventKind.FAULT_POWER_ON, "harness", node=node)
            self.lab.power_on(node)
        self._undo = [u for u in self._undo if u[:2] != ("power", node)]
        return Fault("power_on", node, event)

    def action(self, what: str, **data: object) -> Event:
        """Record a scenario step that is not a fault (`pvecm expected 1`, ...)."""
        return self.timeline.record(EventKind.ACTION, "harness", what=what, **data)

    def undo_all(self) -> list[Exception]:
        """Undo every fault still in effect, newest first; errors are collected."""
        errors: list[Exception] = []
        while self._undo:
            kind, target, undo = self._undo.pop()
            try:
                undo()
                self.timeline.record(EventKind.NOTE, "harness", text=f"undone: {kind} {target}")
            except (PvechaosError, OSError) as exc:
                errors.append(exc)
        return errors
