"""harness.timeline: the ordered, filterable record of a run."""

from __future__ import annotations

import json
import threading

from harness.clock import Clock
from harness.events import MembershipChanged, NodeFault, Note, QuorumView
from harness.timeline import Event, EventKind, Timeline

K = EventKind


def make() -> Timeline:
    return Timeline(Clock())


def view(*members: str, quorate: bool = True) -> QuorumView:
    return QuorumView(quorate, members, 3, len(members))


def membership(*members: str) -> MembershipChanged:
    return MembershipChanged.of(view(*members), first_view=False)


def test_record_without_t_uses_the_clock():
    timeline = make()
    before = timeline.clock.now()
    event = timeline.record(K.NOTE, "harness", Note("hello"))
    assert before <= event.t <= timeline.clock.now()
    assert event.payload == Note("hello")


def test_events_are_kept_in_time_order_whatever_the_recording_order():
    timeline = make()
    timeline.record(K.NOTE, "a", Note(""), t=3.0)
    timeline.record(K.NOTE, "b", Note(""), t=1.0)
    timeline.record(K.NOTE, "c", Note(""), t=2.0)
    assert [e.source for e in timeline.events()] == ["b", "c", "a"]


def test_equal_times_keep_recording_order():
    timeline = make()
    for source in ("first", "second", "third"):
        timeline.record(K.NOTE, source, Note(""), t=5.0)
    assert [e.source for e in timeline.events()] == ["first", "second", "third"]


def test_events_filter_by_kind_source_and_after():
    timeline = make()
    timeline.record(K.QUORUM_LOST, "node1", view("node1", quorate=False), t=1.0)
    timeline.record(K.QUORUM_LOST, "node2", view("node2", quorate=False), t=2.0)
    timeline.record(K.MEMBERSHIP_CHANGED, "node1", membership("node1"), t=3.0)
    timeline.record(K.QUORUM_REGAINED, "node1", view("node1", "node2"), t=4.0)
    assert [e.t for e in timeline.events(K.QUORUM_LOST)] == [1.0, 2.0]
    assert [e.t for e in timeline.events([K.QUORUM_LOST, K.QUORUM_REGAINED])] == [1.0, 2.0, 4.0]
    assert [e.t for e in timeline.events(source="node1")] == [1.0, 3.0, 4.0]
    assert [e.t for e in timeline.events(after=2.0)] == [2.0, 3.0, 4.0]  # inclusive
    assert [e.t for e in timeline.events(K.QUORUM_LOST, source="node1", after=1.5)] == []


def test_first_after_an_event_or_a_time_with_a_condition():
    timeline = make()
    cut = timeline.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    timeline.record(K.MEMBERSHIP_CHANGED, "node1", membership("node1", "node2"), t=9.0)
    timeline.record(K.MEMBERSHIP_CHANGED, "node1", membership("node1", "node2", "node3"),
                    t=11.0)
    late = timeline.record(K.MEMBERSHIP_CHANGED, "node1", membership("node1", "node2"), t=12.0)
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=cut).t == 11.0
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=cut,
                          where=lambda e: "node3" not in e.payload.members) is late
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=12.5) is None
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=0.0, source="node2") is None


def test_json_rounds_time_and_names_the_kind(tmp_path):
    timeline = make()
    timeline.record(K.FAULT_POWER_CUT, "harness", NodeFault("node1"), t=1.23456)
    timeline.record(K.QUORUM_LOST, "node2", view("node2", quorate=False), t=2.0)
    expected = [
        {"t": 1.235, "kind": "fault.power_cut", "source": "harness", "data": {"node": "node1"}},
        {"t": 2.0, "kind": "quorum.lost", "source": "node2",
         "data": {"quorate": False, "members": ["node2"], "expected_votes": 3,
                  "total_votes": 1}},
    ]
    assert timeline.to_json() == expected
    path = tmp_path / "run" / "timeline.json"
    timeline.write(path)
    assert json.loads(path.read_text()) == expected


def test_concurrent_recording_loses_nothing():
    timeline = make()

    def writer(source: str) -> None:
        for i in range(200):
            timeline.record(K.NOTE, source, Note(""), t=float(i))

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    events = timeline.events()
    assert len(events) == 800
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_event_is_immutable():
    event = Event(1.0, K.NOTE, "harness", Note(""))
    try:
        event.t = 2.0  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("Event should be frozen")
