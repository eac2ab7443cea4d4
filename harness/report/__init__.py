"""What a QA engineer reads after a run: tables and pictures of a scenario's timeline.

Every view here is a pure function of the timeline (a ``Timeline``, its events, or the
``to_json()`` list written to ``timeline.json``), so a report can be rebuilt from the
file long after the lab is gone, and two renderings of one run are identical.

The views of the timeline (other modules of this package serve the report too):

- ``harness.report.event_table``: the events as CSV and as a self-contained HTML table;
- ``harness.report.timeline_plot``: one PNG with every node's lanes (matplotlib is
  imported only when a picture is drawn).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from harness.timeline import Event, EventKind, Timeline

# What every view accepts: a live timeline, its events, or its JSON rows.
EventSource = Timeline | Iterable[Event] | Iterable[Mapping[str, object]]


def as_events(source: EventSource) -> list[Event]:
    """The events of ``source`` in time order (ties keep their recorded order).

    JSON rows are read back into events; a kind this version does not know (a newer
    harness wrote the file) is kept as its plain string, so views can still show it.
    """
    if isinstance(source, Timeline):
        return source.events()
    events = [item if isinstance(item, Event) else _from_json(item) for item in source]
    return sorted(events, key=lambda e: e.t)


def kind_of(value: object) -> EventKind | str:
    """An EventKind, or the string itself for a kind this version does not know."""
    try:
        return EventKind(str(value))
    except ValueError:
        return str(value)


def _from_json(row: Mapping[str, object]) -> Event:
    data = row.get("data")
    return Event(float(row.get("t", 0.0)), kind_of(row.get("kind", "")),  # type: ignore[arg-type]
                 str(row.get("source", "")), dict(data) if isinstance(data, Mapping) else {})
