"""harness.timeline: the ordered, filterable record of a run."""

from __future__ import annotations

import json
import threading

from harness.clock import Clock
from harness.timeline import Event, EventKind, Timeline

K = EventKind


def make() -> Timeline:
    return Timeline(Clock())


def test_record_without_t_uses_the_clock():
    timeline = make()
    before = timeline.clock.now()
    event = timeline.record(K.NOTE, "harness", text="hello")
    assert before <= event.t <= timeline.clock.now()
    assert event.data == {"text": "hello"}


def test_events_are_kept_in_time_order_whatever_the_recording_order():
    timeline = make()
    timeline.record(K.NOTE, "a", t=3.0)
    timeline.record(K.NOTE, "b", t=1.0)
    timeline.record(K.NOTE, "c", t=2.0)
    assert [e.source for e in timeline.events()] == ["b", "c", "a"]


def test_equal_times_keep_recording_order():
    timeline = make()
    for source in ("first", "second", "third"):
        timeline.record(K.NOTE, source, t=5.0)
    assert [e.source for e in timeline.events()] == ["first", "second", "third"]


def test_events_filter_by_kind_source_and_after():
    timeline = make()
    timeline.record(K.QUORUM_LOST, "node1", t=1.0)
    timeline.record(K.QUORUM_LOST, "node2", t=2.0)
    timeline.record(K.MEMBERSHIP_CHANGED, "node1", t=3.0)
    timeline.record(K.QUORUM_REGAINED, "node1", t=4.0)
    assert [e.t for e in timeline.events(K.QUORUM_LOST)] == [1.0, 2.0]
    assert [e.t for e in timeline.events([K.QUORUM_LOST, K.QUORUM_REGAINED])] == [1.0, 2.0, 4.0]
    assert [e.t for e in timeline.events(source="node1")] == [1.0, 3.0, 4.0]
    assert [e.t for e in timeline.events(after=2.0)] == [2.0, 3.0, 4.0]  # inclusive
    assert [e.t for e in timeline.events(K.QUORUM_LOST, source="node1", after=1.5)] == []


def test_first_after_an_event_or_a_time_with_a_condition():
    timeline = make()
    cut = timeline.record(K.FAULT_POWER_CUT, "harness", t=10.0, node="node3")
    timeline.record(K.MEMBERSHIP_CHANGED, "node1", t=9.0, members=["node1", "node2"])
    timeline.record(K.MEMBERSHIP_CHANGED, "node1", t=11.0, members=["node1", "node2", "node3"])
    late = timeline.record(K.MEMBERSHIP_CHANGED, "node1", t=12.0, members=["node1", "node2"])
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=cut).t == 11.0
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=cut,
                          where=lambda e: "node3" not in e.data["members"]) is late
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=12.5) is None
    assert timeline.first(K.MEMBERSHIP_CHANGED, after=0.0, source="node2") is None


def test_json_rounds_time_and_names_the_kind(tmp_path):
    timeline = make()
    timeline.record(K.FAULT_POWER_CUT, "harness", t=1.23456, node="node1")
    timeline.record(K.QUORUM_LOST, "node2", t=2.0, quorate=False, members=["node2"])
    expected = [
        {"t": 1.235, "kind": "fault.power_cut", "source": "harness", "data": {"node": "node1"}},
        {"t": 2.0, "kind": "quorum.lost", "source": "node2",
         "data": {"quorate": False, "members": ["node2"]}},
    ]
    assert timeline.to_json() == expected
    path = tmp_path / "run" / "timeline.json"
    timeline.write(path)
    assert json.loads(path.read_text()) == expected


def test_concurrent_recording_loses_nothing():
    timeline = make()

    def writer(source: str) -> None:
        for i in range(200):
            timeline.record(K.NOTE, source, t=float(i))

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    events = timeline.events()
    assert len(events) == 800
    assert [e.t for e in events] == sorted(e.t for e in events)


def test_event_is_immutable():
    event = Event(1.0, K.NOTE, "harness")
    try:
        event.t = 2.0  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("Event should be frozen")
