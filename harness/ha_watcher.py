"""What each node's HA stack shows, polled with `ha-manager status` onto the timeline.

Like QuorumWatcher: one thread per node, each poll bounded by the command deadline, and
stop() joins with a bound. Every event has the polling node as `source` (its own view):

- HA_MASTER when the master node, its status or the fencing line changes (HaMaster);
- HA_NODE_STATE when an lrm line's status or watchdog changes (HaNodeState);
- HA_SERVICE_STATE when a service's (node, state) changes (HaServiceState).

The first view of a node records everything it shows, with no previous. Something that
leaves the view (a removed service, a deleted node) is recorded with None for the new
values. Unreachable nodes and timeouts record nothing; changes are counted against the
last view the node gave, so a node coming back reports only what differs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from harness.cluster import Cluster, Node
from harness.errors import CommandTimeout, NodeUnreachable, PvechaosError
from harness.events import HaMaster, HaNodeState, HaServiceState, Note, Placement
from harness.pve.ha_status import HaStatus, MasterLine, parse_ha_manager_status
from harness.timeline import Event, EventKind, Timeline
from harness.watchers import NodeWatcher

# `ha-manager status` exits 0 with an answer; anything else (pmxcfs down: 255) is an error.
OK_CODES = (0,)


class HaWatcher(NodeWatcher):
    kind = "ha-watcher"

    def __init__(self, cluster: Cluster, timeline: Timeline, **options: object) -> None:
        super().__init__(cluster, timeline, **options)
        self._lock = threading.Lock()
        self.views: dict[str, HaStatus | None] = {}  # None: no answer on the latest poll

    def _watch(self, node: Node) -> None:
        last: HaStatus | None = None
        problem: str | None = None
        while not self._stop.is_set():
            started = self.timeline.clock.now()
            try:
                out = node.check("ha-manager", "status", timeout_s=self.command_timeout_s,
                                 ok_codes=OK_CODES)
                status = parse_ha_manager_status(out)
            except (NodeUnreachable, CommandTimeout):
                self.views[node.name] = None
            except PvechaosError as exc:  # answered, but no HA status (pmxcfs down, ...)
                first_line = str(exc).splitlines()[0]
                if first_line != problem:
                    self.timeline.record(EventKind.NOTE, node.name,
                                         Note("no HA status: " + first_line), t=started)
                problem = first_line
                self.views[node.name] = None
            else:
                problem = None
                record_changes(self.timeline, node.name, last, status, started)
                last = status
                self.views[node.name] = status
            with self._lock:
                self.polls += 1
            self._stop.wait(self.interval_s)


def _master_key(master: MasterLine | None, fencing: str | None) -> tuple:
    return (master.node, master.status, fencing) if master else (None, None, fencing)


def record_changes(timeline: Timeline, source: str, old: HaStatus | None, new: HaStatus,
                   t: float) -> list[Event]:
    """Record on the timeline what differs from ``old`` (None: the first view) to ``new``."""
    events = []
    om, nm = (old.master if old else None), new.master
    ofence = old.fencing if old else None
    if _master_key(om, ofence) != _master_key(nm, new.fencing):
        events.append(timeline.record(EventKind.HA_MASTER, source, HaMaster(
            nm.node if nm else None, nm.status if nm else None, new.fencing,
            om.node if om else None, om.status if om else None), t=t))
    old_lrms = old.lrms if old else {}
    for name in sorted(old_lrms.keys() | new.lrms.keys()):
        o, n = old_lrms.get(name), new.lrms.get(name)
        if (o and (o.status, o.watchdog)) != (n and (n.status, n.watchdog)):
            events.append(timeline.record(EventKind.HA_NODE_STATE, source, HaNodeState(
                name, n.status if n else None, n.watchdog if n else None,
                o.status if o else None), t=t))
    old_services = old.services if old else {}
    for sid in sorted(old_services.keys() | new.services.keys()):
        o, n = old_services.get(sid), new.services.get(sid)
        if (o and (o.node, o.state)) != (n and (n.node, n.state)):
            events.append(timeline.record(EventKind.HA_SERVICE_STATE, source, HaServiceState(
                sid, n.node if n else None, n.state if n else None,
                Placement(o.node, o.state) if o else None), t=t))
    return events


# -- metrics helpers: pure functions of the timeline -----------------------------------------
def first_service_state(timeline: Timeline, sid: str, state: str | Iterable[str],
                        after: Event | float, node: str | None = None,
                        on: str | None = None) -> Event | None:
    """The first HA_SERVICE_STATE event from ``after`` on where ``sid`` entered ``state``
    (one state or several), optionally only while placed on ``node`` and only as seen by
    the node ``on`` (the event's source)."""
    states = {state} if isinstance(state, str) else set(state)
    def entered(e: Event) -> bool:
        p = e.payload
        return isinstance(p, HaServiceState) and p.sid == sid and p.state in states \
            and (node is None or p.node == node)
    return timeline.first(EventKind.HA_SERVICE_STATE, after=after, source=on, where=entered)


def service_node_changes(timeline: Timeline, sid: str, after: Event | float,
                         on: str | None = None) -> list[Event]:
    """HA_SERVICE_STATE events from ``after`` on where a node's view moved ``sid`` from one
    node to another (each observing node reports a move once; ``on`` keeps one of them).
    First views and removals are no moves."""
    start = after.t if isinstance(after, Event) else after
    return [e for e in timeline.events(EventKind.HA_SERVICE_STATE, source=on, after=start)
            if isinstance(p := e.payload, HaServiceState) and p.sid == sid
            and p.previous_node is not None and p.node is not None
            and p.node != p.previous_node]


# states a service leaves when recovery takes it from a dead node; `started`/`starting`
# count because fence, recovery and the new start can fall in one CRM round between polls
RECOVERED_FROM = ("fence", "recovery", "started", "starting")


def taken_from(event: Event) -> str | None:
    """The node an HA_SERVICE_STATE event shows a service taken from by recovery (the
    master got that node's agent lock: fence acknowledged), or None: the service left
    ``fence`` or ``recovery`` (or a running state) for another node, or went from
    ``fence`` to ``recovery``."""
    p = event.payload
    if not isinstance(p, HaServiceState):
        return None
    old, new = p.previous_node, p.node
    if not old:
        return None
    if new and new != old and p.previous_state in RECOVERED_FROM:
        return old
    if p.previous_state == "fence" and p.state == "recovery":
        return old
    return None
