"""The kinds of timeline events and what each one carries: the one place that lists them.

Every kind has one payload type, a frozen dataclass (``PAYLOADS``), so a reader writes
``event.payload.node`` and a type checker and a person can follow it. How a payload is
written to JSON (and read back) is harness/event_json.py; an event read back from a file
whose data this version does not write (a kind it does not know, a newer or older shape)
keeps that data as ``Unparsed``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar


class EventKind(enum.StrEnum):
    FAULT_POWER_CUT = "fault.power_cut"
    FAULT_POWER_ON = "fault.power_on"
    FAULT_SHUTDOWN = "fault.shutdown"
    FAULT_RESET = "fault.reset"
    FAULT_FREEZE = "fault.freeze"
    FAULT_THAW = "fault.thaw"
    FAULT_LINK_DOWN = "fault.link_down"
    FAULT_LINK_UP = "fault.link_up"
    # a fault set inside a node over SSH (partition, netem, daemon, clock, storage cut):
    # one begin and one end per node it touches, so the report shades it as a band
    FAULT_BEGIN = "fault.begin"
    FAULT_END = "fault.end"
    LAB_EVENT = "lab.event"  # what the lab saw by itself
    ACTION = "action"  # a step of the scenario that is not a fault (pvecm expected, ...)
    NODE_UNREACHABLE = "node.unreachable"
    NODE_REACHABLE = "node.reachable"
    MEMBERSHIP_CHANGED = "membership.changed"
    QUORUM_LOST = "quorum.lost"
    QUORUM_REGAINED = "quorum.regained"
    VOTES_CHANGED = "votes.changed"
    PROBE_UP = "probe.up"  # a guest's service answers
    PROBE_DOWN = "probe.down"
    HA_SERVICE_STATE = "ha.service_state"  # as one node's HA status shows it
    HA_NODE_STATE = "ha.node_state"
    HA_MASTER = "ha.master"
    INVARIANT_BROKEN = "invariant.broken"
    NOTE = "note"


# -- payloads ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeFault:
    """Every ``fault.*`` kind: the node the harness aimed the fault at."""

    node: str


@dataclass(frozen=True)
class FaultBegin:
    """A fault set inside ``node`` (``fault`` names it: "partition", "netem",
    "daemon.kill", ...; ``detail`` says what exactly, e.g. "cut from node3")."""

    fault: str
    node: str
    detail: str = ""


@dataclass(frozen=True)
class FaultEnd:
    """The fault ``fault`` on ``node`` ended (undone by the harness, or it ran out)."""

    fault: str
    node: str
    detail: str = ""


@dataclass(frozen=True)
class LabEvent:
    """A power event the lab saw by itself (Capability.EVENTS)."""

    node: str
    event: str
    detail: str


@dataclass(frozen=True)
class Action:
    """A scenario step that is not a fault (``pvecm expected 1`` on ``node``)."""

    what: str
    node: str | None = None


@dataclass(frozen=True)
class Unreachable:
    reason: str  # the first line of the error


@dataclass(frozen=True)
class Reachable:
    """The node answers its watcher again (nothing more to say)."""


@dataclass(frozen=True)
class QuorumView:
    """One node's view of the cluster, as its `pvecm status` showed it (QUORUM_LOST,
    QUORUM_REGAINED, VOTES_CHANGED; MEMBERSHIP_CHANGED adds whether it is the first)."""

    quorate: bool
    members: tuple[str, ...]  # node names
    expected_votes: int
    total_votes: int
    # How long the poll that showed this view took (its start is the event's stamp), and
    # the poll before it: the moment the view changed lies between the previous poll's
    # start and this poll's end. None: not measured (a view not from a watcher's poll).
    poll_s: float | None = field(default=None, compare=False, kw_only=True)
    previous_poll_s: float | None = field(default=None, compare=False, kw_only=True)


@dataclass(frozen=True)
class MembershipChanged(QuorumView):
    first_view: bool = False  # the watcher's first view of this node, not a change

    @classmethod
    def of(cls, view: QuorumView, *, first_view: bool) -> MembershipChanged:
        return cls(view.quorate, view.members, view.expected_votes, view.total_votes,
                   first_view, poll_s=view.poll_s, previous_poll_s=view.previous_poll_s)


@dataclass(frozen=True)
class ProbeUp:
    """The guest answered from ``node`` as boot ``boot_id`` for the first time (a start,
    a move, or the service coming back); ``previous_*``: the boot it answered as before."""

    guest: str
    node: str
    boot_id: str
    sid: str
    seq: int
    previous_node: str | None = None
    previous_boot_id: str | None = None


@dataclass(frozen=True)
class ProbeDown:
    """The guest fell silent; ``initial``: it never answered yet; ``node``/``boot_id``:
    where it last answered from (None: nowhere)."""

    guest: str
    reason: str
    initial: bool
    node: str | None = None
    boot_id: str | None = None


@dataclass(frozen=True)
class HaMaster:
    """The CRM master line (``node`` None: no master) and the fencing line changed."""

    node: str | None
    status: str | None
    fencing: str | None
    previous_node: str | None = None
    previous_status: str | None = None


@dataclass(frozen=True)
class HaNodeState:
    """An LRM line changed (``status`` None: the node left the view)."""

    node: str
    status: str | None
    watchdog: str | None
    previous: str | None = None  # the previous status


@dataclass(frozen=True)
class Placement:
    node: str | None
    state: str | None


@dataclass(frozen=True)
class HaServiceState:
    """A service's (node, state) changed (``state`` None: it left the view);
    ``previous`` None: the first view."""

    sid: str
    node: str | None
    state: str | None
    previous: Placement | None = None

    @property
    def previous_node(self) -> str | None:
        return None if self.previous is None else self.previous.node

    @property
    def previous_state(self) -> str | None:
        return None if self.previous is None else self.previous.state


@dataclass(frozen=True)
class InvariantBroken:
    invariant: str  # doubled_guest, started_without_quorum, ran_after_fence, lost_write
    guest: str
    detail: str


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Unparsed:
    """Data read back from a file that this version does not write for the event's kind
    (a kind it does not know, a shape of another version): kept as it was, shown as is."""

    data: Mapping[str, object] = field(default_factory=dict)


Payload = (NodeFault | FaultBegin | FaultEnd | LabEvent | Action | Unreachable | Reachable
           | QuorumView | ProbeUp | ProbeDown | HaMaster | HaNodeState | HaServiceState
           | InvariantBroken
           | Note | Unparsed)

K = EventKind
PAYLOADS: dict[EventKind, type] = {
    **{kind: NodeFault for kind in K if kind.value.startswith("fault.")},
    K.FAULT_BEGIN: FaultBegin,
    K.FAULT_END: FaultEnd,
    K.LAB_EVENT: LabEvent,
    K.ACTION: Action,
    K.NODE_UNREACHABLE: Unreachable,
    K.NODE_REACHABLE: Reachable,
    K.MEMBERSHIP_CHANGED: MembershipChanged,
    K.QUORUM_LOST: QuorumView,
    K.QUORUM_REGAINED: QuorumView,
    K.VOTES_CHANGED: QuorumView,
    K.PROBE_UP: ProbeUp,
    K.PROBE_DOWN: ProbeDown,
    K.HA_SERVICE_STATE: HaServiceState,
    K.HA_NODE_STATE: HaNodeState,
    K.HA_MASTER: HaMaster,
    K.INVARIANT_BROKEN: InvariantBroken,
    K.NOTE: Note,
}

P = TypeVar("P")


@dataclass(frozen=True)
class Event:
    t: float  # seconds since the timeline's clock started
    kind: EventKind  # or the plain string of a kind read back that this version lacks
    source: str  # "harness", "node2", ...
    payload: Payload

    def __post_init__(self) -> None:
        expected = PAYLOADS.get(self.kind)  # type: ignore[call-overload]
        if type(self.payload) is not Unparsed and type(self.payload) is not expected:
            raise TypeError(f"a {self.kind} event carries {_name(expected)}, "
                            f"not {type(self.payload).__name__}")

    def payload_of(self, cls: type[P]) -> P:
        """The payload as ``cls`` (TypeError if it is not one: another kind, or data
        read back that this version does not write)."""
        if not isinstance(self.payload, cls):
            raise TypeError(f"the {self.kind} event at {self.t:.3f} s carries "
                            f"{type(self.payload).__name__}, not {cls.__name__}")
        return self.payload


def _name(cls: type | None) -> str:
    return "only Unparsed data" if cls is None else f"{cls.__name__} (or Unparsed)"
