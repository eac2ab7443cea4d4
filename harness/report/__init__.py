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

from harness import event_json
from harness.event_json import kind_of
from harness.timeline import Event, Timeline

__all__ = ["EventSource", "as_events", "kind_of"]

# What every view accepts: a live timeline, its events, or its JSON rows.
EventSource = Timeline | Iterable[Event] | Iterable[Mapping[str, object]]


def as_events(source: EventSource) -> list[Event]:
    """The events of ``source`` in time order (ties keep their recorded order).

    JSON rows are read back into events (harness/event_json.py); a kind this version
    does not know (a newer harness wrote the file) is kept as its plain string, and data
    it does not write as ``Unparsed``, so views can still show them.
    """
    if isinstance(source, Timeline):
        return source.events()
    events = [item if isinstance(item, Event) else event_json.from_json(item)
              for item in source]
    return sorted(events, key=lambda e: e.t)
