"""Timeline events as JSON: the one place that says how each payload is written and read.

The shapes are those of ``timeline.json`` (and of the CSV/HTML ``data`` column and the
Allure attachments) since before the events were typed, key order included, so files
written by either read the same; tests/unit/test_event_outputs.py holds them to that.
Reading back is exact: a row whose data this version would write differently for its
kind (an unknown kind, a shape of another version) keeps its data as ``Unparsed``, so
writing it again gives the same bytes.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Mapping

from harness.events import (
    PAYLOADS,
    Action,
    Event,
    EventKind,
    HaServiceState,
    MembershipChanged,
    Payload,
    Placement,
    ProbeDown,
    ProbeUp,
    QuorumView,
    Unparsed,
)


def data_of(payload: Payload) -> dict[str, object]:
    """The ``data`` object of an event's JSON row."""
    write = _WRITERS.get(type(payload))
    if write is not None:
        return write(payload)
    return dict(vars(payload))  # a plain payload: its fields, in their order


def _votes(p: QuorumView) -> dict[str, object]:
    return {"quorate": p.quorate, "members": list(p.members),
            "expected_votes": p.expected_votes, "total_votes": p.total_votes}


def _view(p: QuorumView) -> dict[str, object]:
    return {**_votes(p), **_polls(p)}


def _membership(p: MembershipChanged) -> dict[str, object]:
    return {**_votes(p), "first_view": p.first_view, **_polls(p)}


def _polls(p: QuorumView) -> dict[str, object]:
    """The poll lengths, each only when measured: a view without them (one of an older
    version's files) is written as it was."""
    return {key: value for key, value in (("poll_s", p.poll_s),
                                          ("previous_poll_s", p.previous_poll_s))
            if value is not None}


def _action(p: Action) -> dict[str, object]:
    return {"what": p.what} if p.node is None else {"what": p.what, "node": p.node}


def _probe_up(p: ProbeUp) -> dict[str, object]:
    data: dict[str, object] = {"guest": p.guest, "node": p.node, "boot_id": p.boot_id,
                               "sid": p.sid, "seq": p.seq}
    if p.previous_node is not None:
        data.update(previous_node=p.previous_node, previous_boot_id=p.previous_boot_id)
    return data


def _probe_down(p: ProbeDown) -> dict[str, object]:
    data: dict[str, object] = {"guest": p.guest, "reason": p.reason, "initial": p.initial}
    if p.node is not None:
        data.update(node=p.node, boot_id=p.boot_id)
    return data


def _service(p: HaServiceState) -> dict[str, object]:
    previous = p.previous
    return {"sid": p.sid, "node": p.node, "state": p.state,
            "previous": None if previous is None else {"node": previous.node,
                                                       "state": previous.state},
            "previous_node": p.previous_node, "previous_state": p.previous_state}


def _unparsed(p: Unparsed) -> dict[str, object]:
    return dict(p.data)


_WRITERS: dict[type, Callable] = {
    QuorumView: _view, MembershipChanged: _membership, Action: _action,
    ProbeUp: _probe_up, ProbeDown: _probe_down, HaServiceState: _service,
    Unparsed: _unparsed,
}


def compact(payload: Payload) -> str:
    """The data as the table's ``data`` column shows it: compact, keys sorted."""
    return json.dumps(data_of(payload), sort_keys=True, separators=(",", ":"), default=str)


def to_json(event: Event) -> dict[str, object]:
    return {"t": round(event.t, 3), "kind": str(event.kind), "source": event.source,
            "data": data_of(event.payload)}


# -- reading back ----------------------------------------------------------------------------
def kind_of(value: object) -> EventKind | str:
    """An EventKind, or the string itself for a kind this version does not know."""
    try:
        return EventKind(str(value))
    except ValueError:
        return str(value)


def payload_from(kind: EventKind | str, data: Mapping[str, object]) -> Payload:
    """The payload ``data`` describes for ``kind``, or ``Unparsed(data)`` when this
    version would not write exactly that data for it."""
    cls = PAYLOADS.get(kind)  # type: ignore[call-overload]
    if cls is None:
        return Unparsed(dict(data))
    fields = dict(data)
    if cls is HaServiceState:
        previous = fields.pop("previous", None)
        fields.pop("previous_node", None)
        fields.pop("previous_state", None)
        if isinstance(previous, Mapping):
            fields["previous"] = Placement(**previous)
    if issubclass(cls, QuorumView) and isinstance(fields.get("members"), list):
        fields["members"] = tuple(fields["members"])
    try:
        payload = cls(**fields)
    except (TypeError, ValueError):
        return Unparsed(dict(data))
    hints = typing.get_type_hints(cls)
    if not all(_fits(getattr(payload, name), hints[name]) for name in hints):
        return Unparsed(dict(data))
    same = json.dumps(data_of(payload), default=str) == json.dumps(dict(data), default=str)
    return payload if same else Unparsed(dict(data))


def _fits(value: object, hint: object) -> bool:
    """Whether ``value`` is of the field type ``hint`` (the few payloads use: str, int,
    bool, None, unions of them, tuple[str, ...], Placement)."""
    if isinstance(hint, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(
            _fits(v, typing.get_args(hint)[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else False


def from_json(row: Mapping[str, object]) -> Event:
    """One row of ``timeline.json`` (or of ``Timeline.to_json()``) as an event."""
    kind = kind_of(row.get("kind", ""))
    data = row.get("data")
    return Event(float(row.get("t", 0.0)), kind,  # type: ignore[arg-type]
                 str(row.get("source", "")),
                 payload_from(kind, data if isinstance(data, Mapping) else {}))
