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

from harness.report import EventSource, as_events
from harness.timeline import Event, EventKind

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
    data: str  # the event's data, compact JSON with sorted keys
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
    data = dict(event.data)
    alert = str(event.kind) in _ALERT_KINDS or (
        event.kind == K.HA_SERVICE_STATE and data.get("state") in _ALERT_SERVICE_STATES)
    return Row(event.t, str(event.kind), event.source, describe(event), compact_json(data),
               category(event.kind), alert)


def compact_json(data: Mapping[str, object]) -> str:
    return json.dumps(dict(data), sort_keys=True, separators=(",", ":"), default=str)


# -- the event in words ------------------------------------------------------------------
def describe(event: Event) -> str:
    """What the event says, in a short sentence built from its data.

    Known kinds get their own wording; a kind this version does not know, or data a
    wording does not use, is shown as ``key=value`` pairs, so nothing is hidden."""
    describer = _DESCRIBERS.get(str(event.kind))
    data = dict(event.data)
    if describer is None:
        return _pairs(data)
    try:
        return describer(data)
    except (TypeError, ValueError, AttributeError):  # data of an unexpected shape
        return _pairs(data)


def _pairs(data: Mapping[str, object], skip: tuple[str, ...] = ()) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in sorted(data.items()) if k not in skip)


def _value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value, sort_keys=True, default=str)


def _with_rest(text: str, data: Mapping[str, object], used: tuple[str, ...]) -> str:
    rest = _pairs(data, used)
    return f"{text} ({rest})" if rest else text


def _power(verb: str) -> Callable[[Mapping[str, object]], str]:
    return lambda d: _with_rest(f"{verb} {d.get('node', '?')}", d, ("node",))


def _action(d: Mapping[str, object]) -> str:
    return _with_rest(str(d.get("what", "action")), d, ("what",))


def _view(d: Mapping[str, object]) -> str:
    """A node's quorum view: quorate or not, its members, its votes."""
    quorate = d.get("quorate")
    state = "quorate" if quorate else "not quorate" if quorate is False else "quorum unknown"
    members = d.get("members")
    listed = ", ".join(map(str, members)) if isinstance(members, list | tuple) else "?"
    return (f"{state}; members {listed}; "
            f"votes {d.get('total_votes', '?')} of {d.get('expected_votes', '?')} expected")


def _membership(d: Mapping[str, object]) -> str:
    return ("first view: " if d.get("first_view") else "membership changed: ") + _view(d)


def _probe_up(d: Mapping[str, object]) -> str:
    text = (f"{d.get('guest', '?')} answers from {d.get('node', '?')} "
            f"(boot {d.get('boot_id', '?')}, seq {d.get('seq', '?')})")
    if d.get("previous_node") is not None:
        text += f", before from {d['previous_node']} (boot {d.get('previous_boot_id', '?')})"
    return text


def _probe_down(d: Mapping[str, object]) -> str:
    text = f"{d.get('guest', '?')} silent: {d.get('reason', 'no answer')}"
    if d.get("initial"):
        text += " (no answer yet)"
    elif d.get("node") is not None:
        text += f" (last answered from {d['node']}, boot {d.get('boot_id', '?')})"
    return text


def _placement(node: object, state: object) -> str:
    return f"{node or '---'}: {state}"


def _service(d: Mapping[str, object]) -> str:
    sid = d.get("sid", "?")
    if d.get("state") is None:
        text = f"{sid} left the view"
    else:
        text = f"{sid} on {_placement(d.get('node'), d.get('state'))}"
    previous = d.get("previous")
    if isinstance(previous, Mapping):
        text += f", was {_placement(previous.get('node'), previous.get('state'))}"
    elif d.get("previous_state") is not None:
        text += f", was {_placement(d.get('previous_node'), d.get('previous_state'))}"
    return text


def _lrm(d: Mapping[str, object]) -> str:
    if d.get("status") is None:
        text = f"lrm {d.get('node', '?')} left the view"
    else:
        text = f"lrm {d.get('node', '?')}: {d['status']}"
        if d.get("watchdog") is not None:
            text += f", watchdog {d['watchdog']}"
    if d.get("previous") is not None:
        text += f" (was {d['previous']})"
    return text


def _master(d: Mapping[str, object]) -> str:
    text = (f"master {d['node']} ({d.get('status')})" if d.get("node") is not None
            else "no master")
    if d.get("fencing") is not None:
        text += f"; fencing {d['fencing']}"
    if d.get("previous_node") is not None:
        text += f" (was {d['previous_node']}, {d.get('previous_status')})"
    return text


def _invariant(d: Mapping[str, object]) -> str:
    return f"{d.get('invariant', '?')} ({d.get('guest', '?')}): {d.get('detail', '')}"


def _note(d: Mapping[str, object]) -> str:
    return _with_rest(str(d.get("text", "")), d, ("text",))


_DESCRIBERS: dict[str, Callable[[Mapping[str, object]], str]] = {
    K.FAULT_POWER_CUT: _power("power cut"),
    K.FAULT_POWER_ON: _power("power on"),
    K.FAULT_SHUTDOWN: _power("shutdown (ACPI)"),
    K.FAULT_RESET: _power("reset"),
    K.FAULT_FREEZE: _power("freeze"),
    K.FAULT_THAW: _power("thaw"),
    K.FAULT_LINK_DOWN: _power("link down"),
    K.FAULT_LINK_UP: _power("link up"),
    K.LAB_EVENT: lambda d: _with_rest(f"the lab saw {d.get('node', '?')}: {d.get('event', '?')}"
                                      f" ({d.get('detail', '')})", d,
                                      ("node", "event", "detail")),
    K.ACTION: _action,
    K.NODE_UNREACHABLE: lambda d: f"no answer: {d.get('reason', '?')}",
    K.NODE_REACHABLE: lambda d: _with_rest("answers again", d, ()),
    K.MEMBERSHIP_CHANGED: _membership,
    K.QUORUM_LOST: lambda d: "quorum lost: " + _view(d),
    K.QUORUM_REGAINED: lambda d: "quorum regained: " + _view(d),
    K.VOTES_CHANGED: lambda d: "votes changed: " + _view(d),
    K.PROBE_UP: _probe_up,
    K.PROBE_DOWN: _probe_down,
    K.HA_SERVICE_STATE: _service,
    K.HA_NODE_STATE: _lrm,
    K.HA_MASTER: _master,
    K.INVARIANT_BROKEN: _invariant,
    K.NOTE: _note,
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
