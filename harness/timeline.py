"""The record of a run: every fault, action and observation on one monotonic clock.

Metrics and verdicts are functions of the timeline, never of ad-hoc variables kept by a
scenario. Thread-safe: watchers append from their own threads.
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.clock import Clock


class EventKind(enum.StrEnum):
    FAULT_POWER_CUT = "fault.power_cut"
    FAULT_POWER_ON = "fault.power_on"
    FAULT_SHUTDOWN = "fault.shutdown"
    FAULT_RESET = "fault.reset"
    FAULT_FREEZE = "fault.freeze"
    FAULT_THAW = "fault.thaw"
    FAULT_LINK_DOWN = "fault.link_down"
    FAULT_LINK_UP = "fault.link_up"
    LAB_EVENT = "lab.event"  # what the lab saw by itself (data: node, event, detail)
    ACTION = "action"  # a step of the scenario that is not a fault (pvecm expected, ...)
    NODE_UNREACHABLE = "node.unreachable"
    NODE_REACHABLE = "node.reachable"
    MEMBERSHIP_CHANGED = "membership.changed"
    QUORUM_LOST = "quorum.lost"
    QUORUM_REGAINED = "quorum.regained"
    VOTES_CHANGED = "votes.changed"
    PROBE_UP = "probe.up"  # a guest's service answers (data: guest, node that answered)
    PROBE_DOWN = "probe.down"
    HA_SERVICE_STATE = "ha.service_state"  # as one node's HA status shows it
    HA_NODE_STATE = "ha.node_state"
    HA_MASTER = "ha.master"
    INVARIANT_BROKEN = "invariant.broken"
    NOTE = "note"


@dataclass(frozen=True)
class Event:
    t: float  # seconds since the timeline's clock started
    kind: EventKind
    source: str  # "harness", "node2", ...
    data: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"t": round(self.t, 3), "kind": str(self.kind), "source": self.source,
                "data": dict(self.data)}


class Timeline:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def record(self, kind: EventKind, source: str, *, t: float | None = None,
               **data: object) -> Event:
        event = Event(self.clock.now() if t is None else t, kind, source, data)
        with self._lock:
            self._events.append(event)
            self._events.sort(key=lambda e: e.t)
        return event

    def events(self, kind: EventKind | Iterable[EventKind] | None = None, *,
               source: str | None = None, after: float | None = None) -> list[Event]:
        kinds = {kind} if isinstance(kind, EventKind) else set(kind) if kind else None
        with self._lock:
            snapshot = list(self._events)
        return [e for e in snapshot
                if (kinds is None or e.kind in kinds)
                and (source is None or e.source == source)
                and (after is None or e.t >= after)]

    def first(self, kind: EventKind, *, after: Event | float, source: str | None = None,
              where=None) -> Event | None:
        start = after.t if isinstance(after, Event) else after
        for event in self.events(kind, source=source, after=start):
            if where is None or where(event):
                return event
        return None

    def to_json(self) -> list[dict[str, object]]:
        return [e.to_json() for e in self.events()]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
