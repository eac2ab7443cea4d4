"""The timeline's lanes as data: what each node believed, as bands of state in time.

The first step of harness/report/timeline_plot.py, kept apart so it can be tested
precisely: ``lanes`` turns the events into bands (per node its power, the faults in
force on it, its own quorum view, its HA view of the master and LRMs and of each service;
then each probe), and ``markers`` picks the moments drawn over every lane (faults,
actions, broken invariants). Lanes show what was *observed*: a node that is off shows whatever its
watchers recorded (``no answer``), never a state inferred from the power cut.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from harness.events import (
    Action,
    Event,
    EventKind,
    FaultBegin,
    FaultEnd,
    HaMaster,
    HaNodeState,
    HaServiceState,
    InvariantBroken,
    NodeFault,
    Note,
    ProbeDown,
    ProbeUp,
    QuorumView,
    Unparsed,
)
from harness.report import EventSource, as_events, fault_bands

K = EventKind
VIEW_KINDS = (K.MEMBERSHIP_CHANGED, K.QUORUM_LOST, K.QUORUM_REGAINED, K.VOTES_CHANGED)
# QuorumWatcher's note when a node answers but corosync gives no quorum information; its
# next view is recorded as a first view, so the band ends there.
NO_QUORUM_INFO = "no quorum information"
RUNNING_STATES = ("started", "starting")  # the service is placed and (being) run there
NORMAL_LRM = ("active", "idle")
FAULT_LANE = "faults"  # the key part of a fault lane
SHORT_STATUS = {"old timestamp - dead?": "dead?", "unable to read lrm status": "unreadable"}


@dataclass(frozen=True)
class Band:
    """A lane was in one state from ``start`` to ``end`` (seconds).

    ``label`` is the text written on the band; ``state`` picks its colour, with ``node``
    for the states coloured per node (the probe's answers, HA's running service);
    ``detail`` is shown after the label where there is room (members, boot id)."""

    start: float
    end: float
    label: str
    state: str = ""
    node: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Lane:
    """One row of the picture: ``key`` like ``node1/power``, ``node1/faults`` (then
    ``node1/faults/2`` ... while faults overlap), ``node1/quorum``, ``node1/ha-nodes``,
    ``node1/ha/ct:100`` or ``probe/ct100``; ``group`` the node it belongs to (``probes``
    for the probes), for the separators."""

    key: str
    title: str
    group: str
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class Marker:
    """A moment drawn as a vertical line over every lane: ``fault``, ``action`` or
    ``invariant`` (a broken safety invariant, in red). ``label`` is empty on the later
    lines of one fault set on several nodes at once: the first line names them all."""

    t: float
    label: str
    kind: str



class _Look(NamedTuple):
    label: str
    state: str = ""
    node: str | None = None
    detail: str = ""


NO_ANSWER = _Look("no answer", "no answer")
NO_VIEW = _Look("no view", "no view")


class _Track:
    """One lane's state through time: ``set`` changes it; the bands are the stretches
    between changes. Zero-length stretches (several events at one instant) vanish and
    equal neighbours merge, so a band is one visible state."""

    def __init__(self) -> None:
        self.bands: list[Band] = []
        self._look: _Look | None = None
        self._since = 0.0

    def set(self, t: float, look: _Look | None) -> None:
        if look == self._look:
            return
        self._close(t)
        self._look, self._since = look, t

    def finish(self, end: float) -> tuple[Band, ...]:
        self._close(end)
        self._look = None
        return tuple(self.bands)

    def _close(self, t: float) -> None:
        if self._look is None or t <= self._since:
            return
        band = Band(self._since, t, *self._look)
        last = self.bands[-1] if self.bands else None
        if last is not None and last.end == band.start and \
                (last.label, last.state, last.node, last.detail) == tuple(self._look):
            self.bands[-1] = Band(last.start, band.end, *self._look)
        else:
            self.bands.append(band)


def lanes(events: EventSource, nodes: Sequence[str], *, end: float | None = None,
          off_at_start: Collection[str] = ()) -> list[Lane]:
    """The picture's rows as data, closed at ``end`` (default: the last event).

    Per node, in the order given: its power (on from t=0 unless in ``off_at_start``),
    the faults in force on it (harness/report/fault_bands.py; only for a node that had
    one), its own quorum view, its HA view of the master and LRMs (when any was recorded) and
    of each service; then the faults aimed at anything else (``lab/<target>/faults``: the
    shared storage's server), and one lane per probe. Events after ``end`` are ignored."""
    evs = as_events(events)
    start = min(0.0, evs[0].t) if evs else 0.0
    stop = (evs[-1].t if evs else start) if end is None else end
    evs = [e for e in evs if e.t <= stop]
    sids = sorted({e.payload.sid for e in evs if isinstance(e.payload, HaServiceState)})
    has_ha_nodes = any(e.kind in (K.HA_MASTER, K.HA_NODE_STATE) for e in evs)
    faults = fault_bands.spans(evs)
    out: list[Lane] = []
    for node in nodes:
        own = [e for e in evs if e.source == node]
        out.append(Lane(f"{node}/power", f"{node} power", node,
                        _power(evs, node, start, node in off_at_start).finish(stop)))
        out += _fault_lanes([s for s in faults if s.node == node], node, stop)
        out.append(Lane(f"{node}/quorum", f"{node} quorum view", node,
                        _quorum(own).finish(stop)))
        if has_ha_nodes:
            out.append(Lane(f"{node}/ha-nodes", f"{node} HA master/LRMs", node,
                            _ha_nodes(own).finish(stop)))
        for sid in sids:
            out.append(Lane(f"{node}/ha/{sid}", f"{node} HA {sid}", node,
                            _ha_service(own, sid).finish(stop)))
    for target in dict.fromkeys(s.node for s in faults if s.node not in nodes):
        # a lab-level fault aimed at no node of the picture (the storage server's outage)
        out += [Lane(f"lab/{lane.key}", lane.title, "lab", lane.bands) for lane in
                _fault_lanes([s for s in faults if s.node == target], target, stop)]
    probes = sorted({e.source for e in evs if e.kind in (K.PROBE_UP, K.PROBE_DOWN)})
    for probe in probes:
        out.append(Lane(f"probe/{probe}", f"probe {probe}", "probes",
                        _probe(e for e in evs if e.source == probe).finish(stop)))
    return out


def _power(events: Iterable[Event], node: str, start: float, off: bool) -> _Track:
    track = _Track()
    track.set(start, _Look("off", "off") if off else _Look("on", "on"))
    for e in events:
        if not isinstance(e.payload, NodeFault) or e.payload.node != node:
            continue
        if e.kind == K.FAULT_POWER_CUT:
            track.set(e.t, _Look("off", "off"))
        elif e.kind == K.FAULT_POWER_ON:
            track.set(e.t, _Look("on", "on"))
    return track


def is_fault_lane(lane: Lane) -> bool:
    """``node1/faults``, ``node1/faults/2``, ``lab/<target>/faults``."""
    return FAULT_LANE in lane.key.split("/")


def _fault_lanes(node_spans: Sequence[fault_bands.FaultSpan], node: str,
                 stop: float) -> list[Lane]:
    """The node's faults as bands, one row per fault in force at once."""
    out = []
    for i, row in enumerate(fault_bands.rows(node_spans, stop)):
        key = f"{node}/{FAULT_LANE}" + (f"/{i + 1}" if i else "")
        bands = tuple(Band(start, end, label, state, None, detail)
                      for start, end, label, state, detail in
                      (fault_bands.band_fields(span, stop) for span in row))
        out.append(Lane(key, f"{node} faults", node, bands))
    return out


def _members(view: QuorumView) -> str:
    return f"{' '.join(view.members)} ({view.total_votes}/{view.expected_votes} votes)"


def _quorum(own: Iterable[Event]) -> _Track:
    """The node's own quorum view: quorate / not quorate (with its members as detail),
    ``no answer`` while its watcher cannot reach it, ``no view`` while it answers without
    quorum information."""
    track = _Track()
    for e in own:
        if e.kind == K.NODE_UNREACHABLE:
            track.set(e.t, NO_ANSWER)
        elif e.kind == K.NODE_REACHABLE:
            track.set(e.t, NO_VIEW)  # the view of the same poll, if any, follows at once
        elif e.kind in VIEW_KINDS and isinstance(e.payload, QuorumView):
            label = "quorate" if e.payload.quorate else "not quorate"
            track.set(e.t, _Look(label, label, None, _members(e.payload)))
        elif isinstance(e.payload, Note) and e.payload.text.startswith(NO_QUORUM_INFO):
            track.set(e.t, NO_VIEW)
    return track


def _service_look(service: HaServiceState) -> _Look | None:
    state, node = service.state, service.node
    if state is None:
        return None  # the service left this node's view
    if node is None:
        return _Look(state, state)
    label = f"{state} on {node}" if state in RUNNING_STATES else f"{state} ({node})"
    return _Look(label, state, node)


def _ha_service(own: Iterable[Event], sid: str) -> _Track:
    """The service's state as this node's HA status shows it; ``no answer`` while the
    node cannot be reached (the watcher then resumes from the last view it gave)."""
    track, look, reachable = _Track(), None, True
    for e in own:
        if isinstance(e.payload, HaServiceState) and e.payload.sid == sid:
            look = _service_look(e.payload)
        elif e.kind in (K.NODE_UNREACHABLE, K.NODE_REACHABLE):
            reachable = e.kind == K.NODE_REACHABLE
        else:
            continue
        track.set(e.t, look if reachable else NO_ANSWER)
    return track


def _short(status: object) -> str:
    return SHORT_STATUS.get(str(status), str(status))


def _ha_nodes(own: Iterable[Event]) -> _Track:
    """This node's view of the CRM master and of the LRMs that are not active or idle:
    ``master node1`` while all is well, ``master node1 dead?, lrm node1 dead?`` after a
    cut."""
    track, reachable = _Track(), True
    master: HaMaster | None = None  # its node None: no master
    lrms: dict[str, str] = {}
    for e in own:
        p = e.payload
        if isinstance(p, HaMaster):
            master = p
        elif isinstance(p, HaNodeState):
            if p.status is None:
                lrms.pop(p.node, None)
            else:
                lrms[p.node] = p.status
        elif e.kind in (K.NODE_UNREACHABLE, K.NODE_REACHABLE):
            reachable = e.kind == K.NODE_REACHABLE
        else:
            continue
        parts, degraded = [], False
        if master is not None:
            if master.node is None:
                parts.append("no master")
                degraded = True
            elif master.status == "active":
                parts.append(f"master {master.node}")
            else:
                parts.append(f"master {master.node} {_short(master.status)}")
                degraded = True
        for name, status in sorted(lrms.items()):
            if status not in NORMAL_LRM:
                parts.append(f"lrm {name} {_short(status)}")
                degraded = True
        label = ", ".join(parts) or "lrms ok"
        look = _Look(label, "ha degraded" if degraded else "ha ok")
        track.set(e.t, look if reachable else NO_ANSWER)
    return track


def _probe(events: Iterable[Event]) -> _Track:
    """``up on <node>`` (per boot: a restart in place is a new band) or ``down``."""
    track = _Track()
    for e in events:
        if isinstance(e.payload, ProbeUp):
            node = e.payload.node
            track.set(e.t, _Look(f"up on {node}", "up", node, f"boot {e.payload.boot_id}"))
        elif isinstance(e.payload, ProbeDown):
            track.set(e.t, _Look("down", "down"))
    return track


def markers(events: EventSource) -> list[Marker]:
    """Faults (every ``fault.*`` kind), scenario actions and broken invariants.

    One fault set on several nodes in a row (``isolate`` records a begin per node, one
    SSH command apart) is labelled once, on its first line, with every node: the next
    fault marker of the same fault and kind, with no other marker between, adds its node
    there and keeps its own line unlabelled."""
    out: list[Marker] = []
    group: tuple[str, int] | None = None  # (the fault's words, index of its first line)
    for e in as_events(events):
        kind, p = str(e.kind), e.payload
        if kind.startswith("fault."):
            words, target = _fault_words(kind, p)
            if group is not None and group[0] == words and target:
                first = out[group[1]]
                out[group[1]] = Marker(first.t, f"{first.label} {target}", first.kind)
                out.append(Marker(e.t, "", "fault"))
                continue
            out.append(Marker(e.t, f"{words} {target}".strip(), "fault"))
            group = (words, len(out) - 1) if target else None
        elif isinstance(p, Action):
            out.append(Marker(e.t, p.what, "action"))
            group = None
        elif isinstance(p, InvariantBroken):
            out.append(Marker(e.t, f"{p.invariant} broken", "invariant"))
            group = None
    return out


def _fault_words(kind: str, payload: object) -> tuple[str, str]:
    """(what, node): ``power cut`` and ``node1``; ``partition`` / ``end partition`` and
    the node for an in-node fault; a fault kind this version does not know names its
    ``node`` (or ``target``) if its data has one."""
    if isinstance(payload, FaultBegin | FaultEnd):
        return fault_bands.marker_words(payload), payload.node
    if isinstance(payload, NodeFault):
        target = payload.node
    elif isinstance(payload, Unparsed):
        target = str(payload.data.get("node", payload.data.get("target", "")))
    else:
        target = ""
    return kind[6:].replace("_", " "), target

