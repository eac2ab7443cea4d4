"""The record of a run: every fault, action and observation on one monotonic clock.

Metrics and verdicts are functions of the timeline, never of ad-hoc variables kept by a
scenario. Thread-safe: watchers append from their own threads. What an event of each
kind carries is harness/events.py; how it is written to JSON, harness/event_json.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from harness import event_json
from harness.clock import Clock
from harness.events import Event, EventKind, Payload

__all__ = ["Event", "EventKind", "Timeline"]


class Timeline:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def record(self, kind: EventKind, source: str, payload: Payload, *,
               t: float | None = None) -> Event:
        """Append an event (at the clock's now unless ``t``, the start of the poll that
        saw it); ``payload`` must be the type harness/events.py lists for ``kind``."""
        event = Event(self.clock.now() if t is None else t, kind, source, payload)
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
        return [event_json.to_json(e) for e in self.events()]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
