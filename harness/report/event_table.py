"""The timeline as a table: CSV for tools, one self-contained HTML page for people.

A QA engineer reading a failed run wants the order of things and what each observation
said, in words ("vm:100 on node2: started, was node1: fence"), without decoding the
event's JSON; the JSON stays in its own column for whoever needs the exact data. The HTML
page has no external resource (it is attached to reports and opened offline), escapes
every value (data comes from node output), and tints rows by what kind of thing happened.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness import event_json
from harness.events import (
    Action,
    Event,
    EventKind,
    HaMaster,
    HaNodeState,
    HaServiceState,
    InvariantBroken,
    LabEvent,
    MembershipChanged,
    NodeFault,
    ProbeDown,
    ProbeUp,
    QuorumView,
    Unparsed,
)
from harness.report import EventSource, as_events

K = EventKind
COLUMNS = ("t_s", "kind", "source", "detail", "data")

# Row tints, by category (see ``category``); the invariant's row is the one to find first.
TINTS = {
    "fault": "#fde0c5",
    "action": "#dbe9f6",
    "quorum": "#e8f1fb",
    "ha": "#f0e6f6",
    "probe": "#e5f5e0",
    "invariant": "#f6b6b6",
    "other": "#ffffff",
}
LEGEND = {
    "fault": "fault injected",
    "action": "scenario action",
    "quorum": "node reachability, membership and quorum",
    "ha": "HA manager status",
    "probe": "guest probe",
    "invariant": "safety invariant broken",
    "other": "note / other",
}
_QUORUM = {K.NODE_UNREACHABLE, K.NODE_REACHABLE, K.MEMBERSHIP_CHANGED, K.QUORUM_LOST,
           K.QUORUM_REGAINED, K.VOTES_CHANGED}
# Events that mean something went away: shown in bold within their tint.
_ALERT_KINDS = {K.NODE_UNREACHABLE, K.QUORUM_LOST, K.PROBE_DOWN, K.INVARIANT_BROKEN}
_ALERT_SERVICE_STATES = {"fence", "recovery", "error"}


@dataclass(frozen=True)
class Row:
    """One event as the table shows it."""

    t_s: float
    kind: str
    source: str
    detail: str  # the event in words
    data: str  # the event's data as in timeline.json, compact, keys sorted
    category: str  # fault, action, quorum, ha, probe, invariant, other
    alert: bool  # something went away (quorum lost, probe down, fence, ...)

    def cells(self) -> tuple[str, str, str, str, str]:
        return (f"{self.t_s:.3f}", self.kind, self.source, self.detail, self.data)


def category(kind: EventKind | str) -> str:
    """The row tint of an event kind; unknown kinds are ``other``."""
    kind = str(kind)
    if kind.startswith("fault."):
        return "fault"
    if kind == K.ACTION:
        return "action"
    if kind in _QUORUM:
        return "quorum"
    if kind.startswith("ha."):
        return "ha"
    if kind.startswith("probe."):
        return "probe"
    if kind == K.INVARIANT_BROKEN:
        return "invariant"
    return "other"


def rows(events: EventSource) -> list[Row]:
    """One row per event, in time order."""
    return [_row(e) for e in as_events(events)]


def _row(event: Event) -> Row:
    p = event.payload
    alert = str(event.kind) in _ALERT_KINDS or (
        isinstance(p, HaServiceState) and p.state in _ALERT_SERVICE_STATES)
    return Row(event.t, str(event.kind), event.source, describe(event),
               event_json.compact(p), category(event.kind), alert)


# -- the event in words ------------------------------------------------------------------
def describe(event: Event) -> str:
    """What the event says, in a short sentence built from its payload.

    Data read back that this version does not write (a kind it does not know, a shape
    of another version: ``Unparsed``) is shown as ``key=value`` pairs, so nothing is
    hidden."""
    if isinstance(event.payload, Unparsed):
        return _pairs(event.payload.data)
    return _DESCRIBERS[event.kind](event.payload)


def _pairs(data: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in sorted(data.items()))


def _value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value, sort_keys=True, default=str)


def _fault(verb: str) -> Callable[[NodeFault], str]:
    return lambda p: f"{verb} {p.node}"


def _lab_event(p: LabEvent) -> str:
    return f"the lab saw {p.node}: {p.event} ({p.detail})"


def _action(p: Action) -> str:
    return p.what if p.node is None else f"{p.what} (node={p.node})"


def _view(p: QuorumView) -> str:
    """A node's quorum view: quorate or not, its members, its votes."""
    return (f"{'quorate' if p.quorate else 'not quorate'}; members {', '.join(p.members)}; "
            f"votes {p.total_votes} of {p.expected_votes} expected")


def _membership(p: MembershipChanged) -> str:
    return ("first view: " if p.first_view else "membership changed: ") + _view(p)


def _probe_up(p: ProbeUp) -> str:
    text = f"{p.guest} answers from {p.node} (boot {p.boot_id}, seq {p.seq})"
    if p.previous_node is not None:
        text += f", before from {p.previous_node} (boot {p.previous_boot_id})"
    return text


def _probe_down(p: ProbeDown) -> str:
    text = f"{p.guest} silent: {p.reason}"
    if p.initial:
        text += " (no answer yet)"
    elif p.node is not None:
        text += f" (last answered from {p.node}, boot {p.boot_id})"
    return text


def _placement(node: str | None, state: str | None) -> str:
    return f"{node or '---'}: {state}"


def _service(p: HaServiceState) -> str:
    if p.state is None:
        text = f"{p.sid} left the view"
    else:
        text = f"{p.sid} on {_placement(p.node, p.state)}"
    if p.previous is not None:
        text += f", was {_placement(p.previous.node, p.previous.state)}"
    return text


def _lrm(p: HaNodeState) -> str:
    if p.status is None:
        text = f"lrm {p.node} left the view"
    else:
        text = f"lrm {p.node}: {p.status}"
        if p.watchdog is not None:
            text += f", watchdog {p.watchdog}"
    if p.previous is not None:
        text += f" (was {p.previous})"
    return text


def _master(p: HaMaster) -> str:
    text = f"master {p.node} ({p.status})" if p.node is not None else "no master"
    if p.fencing is not None:
        text += f"; fencing {p.fencing}"
    if p.previous_node is not None:
        text += f" (was {p.previous_node}, {p.previous_status})"
    return text


def _invariant(p: InvariantBroken) -> str:
    return f"{p.invariant} ({p.guest}): {p.detail}"


# one wording per kind; each gets the payload harness/events.py lists for its kind
_DESCRIBERS: dict[EventKind, Callable] = {
    K.FAULT_POWER_CUT: _fault("power cut"),
    K.FAULT_POWER_ON: _fault("power on"),
    K.FAULT_SHUTDOWN: _fault("shutdown (ACPI)"),
    K.FAULT_RESET: _fault("reset"),
    K.FAULT_FREEZE: _fault("freeze"),
    K.FAULT_THAW: _fault("thaw"),
    K.FAULT_LINK_DOWN: _fault("link down"),
    K.FAULT_LINK_UP: _fault("link up"),
    K.FAULT_BEGIN: lambda p: f"{p.fault} on {p.node}" + (f": {p.detail}" if p.detail else ""),
    K.FAULT_END: lambda p: f"{p.fault} on {p.node} ends" + (f": {p.detail}" if p.detail
                                                             else ""),
    K.LAB_EVENT: _lab_event,
    K.ACTION: _action,
    K.NODE_UNREACHABLE: lambda p: f"no answer: {p.reason}",
    K.NODE_REACHABLE: lambda p: "answers again",
    K.MEMBERSHIP_CHANGED: _membership,
    K.QUORUM_LOST: lambda p: "quorum lost: " + _view(p),
    K.QUORUM_REGAINED: lambda p: "quorum regained: " + _view(p),
    K.VOTES_CHANGED: lambda p: "votes changed: " + _view(p),
    K.PROBE_UP: _probe_up,
    K.PROBE_DOWN: _probe_down,
    K.HA_SERVICE_STATE: _service,
    K.HA_NODE_STATE: _lrm,
    K.HA_MASTER: _master,
    K.INVARIANT_BROKEN: _invariant,
    K.NOTE: lambda p: p.text,
}


# -- CSV -----------------------------------------------------------------------------------
def to_csv(events: EventSource) -> str:
    """``t_s,kind,source,detail,data``: one line per event in time order (the csv
    module's quoting, so details and JSON with commas or newlines read back whole)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows(events):
        writer.writerow(row.cells())
    return out.getvalue()


# -- HTML ----------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em;
       color: #1b1b1b; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
p.summary { margin: 0 0 .8em; color: #555; }
ul.legend { list-style: none; padding: 0; margin: 0 0 1em; display: flex; flex-wrap: wrap;
            gap: .4em 1.2em; font-size: .85em; }
ul.legend li span { display: inline-block; width: 1.1em; height: .9em; margin-right: .35em;
                    border: 1px solid #aaa; vertical-align: middle; }
table { border-collapse: collapse; width: 100%; font-size: .85em; }
th, td { border-bottom: 1px solid #ddd; padding: .25em .5em; text-align: left;
         vertical-align: top; }
th { position: sticky; top: 0; background: #333; color: #fff; }
td.t { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.kind, td.source { white-space: nowrap; }
td.data code { font-size: .9em; color: #444; word-break: break-all; }
tr.alert td.detail { font-weight: 600; }
tr.invariant td:first-child { border-left: 4px solid #c00; }
""" + "".join(f"tr.{name} td {{ background: {colour}; }}\n" for name, colour in TINTS.items())


def to_html(events: EventSource, *, title: str = "Timeline") -> str:
    """A whole HTML page: title, legend of the row tints, and the table."""
    table_rows = rows(events)
    span = (f"{table_rows[0].t_s:.1f} s to {table_rows[-1].t_s:.1f} s" if table_rows
            else "nothing recorded")
    esc = html.escape
    legend = "".join(f'<li><span style="background: {TINTS[name]}"></span>{esc(text)}</li>'
                     for name, text in LEGEND.items())
    body = "".join(_html_row(row) for row in table_rows)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n"
        f"<p class=\"summary\">{len(table_rows)} events, {span}</p>\n"
        f"<ul class=\"legend\">{legend}</ul>\n"
        "<table>\n<thead><tr><th>t (s)</th><th>kind</th><th>source</th><th>detail</th>"
        "<th>data</th></tr></thead>\n"
        f"<tbody>\n{body}</tbody>\n</table>\n</body>\n</html>\n")


def _html_row(row: Row) -> str:
    esc = html.escape
    classes = row.category + (" alert" if row.alert else "")
    t, kind, source, detail, data = (esc(cell) for cell in row.cells())
    return (f'<tr class="{classes}"><td class="t">{t}</td><td class="kind">{kind}</td>'
            f'<td class="source">{source}</td><td class="detail">{detail}</td>'
            f'<td class="data"><code>{data}</code></td></tr>\n')
