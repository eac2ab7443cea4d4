"""Faults as stretches of time on their node: the fault lanes and labels of the picture.

An in-node fault (partition, netem, daemon, clock, storage cut) is recorded as one
``fault.begin`` and one ``fault.end`` per node it touches (harness/faults.py
``_node_fault``, ``end``); the lab-level freeze and link cut as ``fault.freeze`` ..
``fault.thaw`` and ``fault.link_down`` .. ``fault.link_up``. ``spans`` pairs them into
``FaultSpan``s; a fault never ended runs to the end of the record and says so, and the
teardown's ``undone: freeze node3`` note (FaultInjector.undo_all) ends a lab-level one
the scenario left in force. ``fault_lanes`` lays one node's spans out as bands, on as
many rows as overlapping faults need. Pure data, like harness/report/lanes.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from harness.events import Event, EventKind, FaultBegin, FaultEnd, NodeFault, Note

K = EventKind
# lab-level kinds that open (True) or close (False) a span, and the fault they name
LAB_SPANS = {K.FAULT_FREEZE: ("freeze", True), K.FAULT_THAW: ("freeze", False),
             K.FAULT_LINK_DOWN: ("link down", True), K.FAULT_LINK_UP: ("link down", False)}
# FaultInjector.undo_all's note "undone: <Effect value> <node>" for the lab-level spans
UNDONE_PREFIX = "undone: "
UNDONE_EFFECTS = {"freeze": "freeze", "link": "link down"}
NOT_ENDED = "not ended"
STATE_PREFIX = "fault "  # a fault band's state: "fault partition", "fault daemon.kill"


@dataclass(frozen=True)
class FaultSpan:
    """``fault`` ("partition", "daemon.pause", "freeze", "link down") was in force on
    ``node`` from ``start``; ``end`` None: still in force when the record ends."""

    node: str
    fault: str
    detail: str
    start: float
    end: float | None = None


def spans(events: Iterable[Event]) -> list[FaultSpan]:
    """Every fault span of the record, by start time. An end with no matching begin (a
    record cut short) is ignored, as is a second freeze of a node already frozen."""
    open_: list[FaultSpan] = []
    done: list[FaultSpan] = []

    def close(t: float, node: str, fault: str, detail: str | None = None) -> None:
        matching = [s for s in open_ if (s.node, s.fault) == (node, fault)]
        exact = [s for s in matching if s.detail == detail]
        chosen = (exact or matching)[-1:] if matching else []
        for span in chosen:
            open_.remove(span)
            done.append(replace(span, end=t))

    for e in events:
        p = e.payload
        if e.kind == K.FAULT_BEGIN and isinstance(p, FaultBegin):
            open_.append(FaultSpan(p.node, p.fault, p.detail, e.t))
        elif e.kind == K.FAULT_END and isinstance(p, FaultEnd):
            close(e.t, p.node, p.fault, p.detail)
        elif e.kind in LAB_SPANS and isinstance(p, NodeFault):
            fault, opens = LAB_SPANS[e.kind]  # type: ignore[index]
            if not opens:
                close(e.t, p.node, fault)
            elif not any((s.node, s.fault) == (p.node, fault) for s in open_):
                open_.append(FaultSpan(p.node, fault, "", e.t))
        elif isinstance(p, Note) and p.text.startswith(UNDONE_PREFIX):
            effect, _, node = p.text[len(UNDONE_PREFIX):].partition(" ")
            if effect in UNDONE_EFFECTS:
                close(e.t, node, UNDONE_EFFECTS[effect])
    return sorted(done + open_, key=lambda s: s.start)


def rows(node_spans: Sequence[FaultSpan], stop: float) -> list[list[FaultSpan]]:
    """The spans of one node on rows where none overlap: each goes on the first row
    free at its start (a span ending when the next begins leaves the row free)."""
    out: list[list[FaultSpan]] = []
    for span in sorted(node_spans, key=lambda s: s.start):
        for row in out:
            last = row[-1]
            if (last.end if last.end is not None else stop) <= span.start:
                row.append(span)
                break
        else:
            out.append([span])
    return out


def band_fields(span: FaultSpan, stop: float) -> tuple[float, float, str, str, str]:
    """(start, end, label, state, detail) of the band drawn for ``span``: to ``stop``
    when it never ended, with ``not ended`` in its detail."""
    detail = span.detail
    if span.end is None:
        detail = f"{detail}; {NOT_ENDED}" if detail else NOT_ENDED
    end = span.end if span.end is not None else stop
    return span.start, end, span.fault, STATE_PREFIX + span.fault, detail


def marker_words(payload: FaultBegin | FaultEnd) -> str:
    """What a fault marker says before its node: ``partition`` at a fault.begin, ``end
    partition`` at its fault.end."""
    return payload.fault if isinstance(payload, FaultBegin) else f"end {payload.fault}"
