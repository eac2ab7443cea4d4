"""The report writers' outputs for one timeline with every event kind, byte for byte.

The files under tests/expected/events/ were first written by the writers as they were
before the events became typed (the untyped ``data`` dict), and rewritten on purpose when
the picture gained its fault lanes (issue 13); these tests prove the outputs did not
change since: the timeline JSON (``timeline.json``, also attached to Allure), the events
CSV and HTML page (Allure attachments), the plot's lanes and markers, and the PNG (when
drawn by the matplotlib version that drew the expected one). Each output is also rebuilt
from the JSON rows, as a report read back from ``timeline.json`` is.

To see a difference: ``diff`` the file the failing test wrote under its tmp_path.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness import event_json
from harness.clock import Clock
from harness.events import (
    PAYLOADS,
    Action,
    FaultBegin,
    FaultEnd,
    HaMaster,
    HaNodeState,
    HaServiceState,
    InvariantBroken,
    LabEvent,
    MembershipChanged,
    NodeFault,
    Note,
    Placement,
    ProbeDown,
    ProbeUp,
    QuorumView,
    Reachable,
    Unparsed,
    Unreachable,
)
from harness.report import event_table, timeline_plot
from harness.timeline import EventKind, Timeline

K = EventKind
EXPECTED = Path(__file__).resolve().parent.parent / "expected" / "events"
NODES = ("node1", "node2", "node3")
SID, GUEST = "ct:100", "ct100"
TITLE = "events <golden> & \"every kind\""
OVERLAYS = [timeline_plot.RecoveryOverlay(10.0, 47.25, window=(30.0, 45.0), budget_s=60.0,
                                          label="ct100 time_to_recovery")]


def view(quorate: bool, members: tuple[str, ...]) -> QuorumView:
    return QuorumView(quorate, members, 3, len(members))


def representative() -> Timeline:
    """Every kind, every optional part (first views, previous values, nodes leaving a
    view, a probe's initial silence, an action with and without a node), recorded out of
    time order with times that need rounding, as the watchers record them."""
    tl = Timeline(Clock())
    r = tl.record
    for node in NODES:
        r(K.MEMBERSHIP_CHANGED, node, MembershipChanged.of(view(True, NODES), first_view=True),
          t=0.5)
    r(K.PROBE_DOWN, GUEST, ProbeDown(GUEST, "[Errno 111] Connection refused", True), t=0.75)
    r(K.HA_MASTER, "node2", HaMaster("node1", "active", None), t=1.0)
    r(K.HA_NODE_STATE, "node2", HaNodeState("node1", "active", "armed"), t=1.0)
    r(K.HA_SERVICE_STATE, "node2", HaServiceState(SID, "node1", "started"), t=1.0)
    r(K.PROBE_UP, GUEST, ProbeUp(GUEST, "node1", "b1", SID, 1), t=2.0004)
    r(K.ACTION, "harness", Action("ha-manager set ct:100 --state started"), t=5.0)
    r(K.ACTION, "harness", Action("pvecm expected 1", node="node2"), t=5.5)
    r(K.FAULT_POWER_CUT, "harness", NodeFault("node1"), t=10.0)
    r(K.LAB_EVENT, "node1", LabEvent("node1", "stopped", "destroyed"), t=10.123456)
    r(K.NODE_UNREACHABLE, "node1", Unreachable("ssh: timed out, after 4 s"), t=10.5)
    r(K.PROBE_DOWN, GUEST, ProbeDown(GUEST, "no answer within 1 s", False, "node1", "b1"),
      t=11.0)
    for node in ("node2", "node3"):
        r(K.MEMBERSHIP_CHANGED, node,
          MembershipChanged.of(view(True, ("node2", "node3")), first_view=False), t=14.0)
    r(K.QUORUM_LOST, "node3", view(False, ("node3",)), t=20.0)
    r(K.VOTES_CHANGED, "node3", view(False, ("node3",)), t=21.0)
    r(K.NOTE, "node3", Note("no quorum information: corosync not running"), t=22.0)
    r(K.QUORUM_REGAINED, "node3", view(True, ("node2", "node3")), t=23.0)
    dead = "old timestamp - dead?"
    r(K.HA_MASTER, "node2", HaMaster("node1", dead, "armed", "node1", "active"), t=30.0)
    r(K.HA_NODE_STATE, "node2", HaNodeState("node1", dead, None, "active"), t=30.0)
    r(K.HA_SERVICE_STATE, "node2",
      HaServiceState(SID, "node1", "fence", Placement("node1", "started")), t=30.0)
    r(K.HA_MASTER, "node3", HaMaster(None, None, None, "node1", dead), t=35.0)
    r(K.HA_SERVICE_STATE, "node2",
      HaServiceState(SID, "node1", "recovery", Placement("node1", "fence")), t=40.0)
    r(K.HA_SERVICE_STATE, "node2",
      HaServiceState(SID, "node2", "starting", Placement("node1", "recovery")), t=42.0)
    r(K.HA_NODE_STATE, "node2", HaNodeState("node1", None, None, dead), t=43.0)
    r(K.HA_SERVICE_STATE, "node3",
      HaServiceState("vm:101", None, None, Placement("node3", "stopped")), t=44.0)
    r(K.NOTE, "node1", Note("no HA status: ipcc_send_rec[1] failed: Connection refused"),
      t=44.5)
    r(K.PROBE_UP, GUEST, ProbeUp(GUEST, "node2", "b2", SID, 7, "node1", "b1"), t=47.25)
    r(K.INVARIANT_BROKEN, "harness", InvariantBroken(
        "ran_after_fence", GUEST,
        "boot b1 answered from node1 at 47.9 s, after node1 was fenced at 42.0 s"), t=48.0)
    r(K.FAULT_POWER_ON, "harness", NodeFault("node1"), t=60.0)
    for offset, kind in enumerate((K.FAULT_SHUTDOWN, K.FAULT_RESET, K.FAULT_FREEZE,
                                   K.FAULT_THAW, K.FAULT_LINK_DOWN, K.FAULT_LINK_UP)):
        r(kind, "harness", NodeFault("node3"), t=61.0 + offset)
    # one partition set on two nodes (one marker label), a daemon pause overlapping it on
    # node2 (a second fault row) and never ended (its band runs to the end of the record)
    r(K.FAULT_BEGIN, "harness", FaultBegin("partition", "node2", "cut from node3"), t=68.0)
    r(K.FAULT_BEGIN, "harness", FaultBegin("partition", "node3", "cut from node2"), t=68.25)
    r(K.FAULT_BEGIN, "harness", FaultBegin("daemon.pause", "node2", "corosync (SIGSTOP)"),
      t=70.0)
    r(K.FAULT_END, "harness", FaultEnd("partition", "node2", "cut from node3"), t=72.5)
    r(K.FAULT_END, "harness", FaultEnd("partition", "node3", "cut from node2"), t=72.75)
    r(K.NODE_REACHABLE, "node1", Reachable(), t=75.0)
    r(K.NOTE, "harness", Note("<script>alert('x')</script> & \"quotes\", commas\n"
                              "and a second line"), t=76.0)
    r(K.NOTE, "harness", Note("undone: power node1"), t=77.0)
    return tl


def outputs(source) -> dict[str, str]:
    """Every text output of the writers, by the name of its expected file."""
    return {
        "events.csv": event_table.to_csv(source),
        "events.html": event_table.to_html(source, title=TITLE),
        "lanes.json": json.dumps({
            "lanes": [dataclasses.asdict(lane) for lane in timeline_plot.lanes(source, NODES)],
            "markers": [dataclasses.asdict(m) for m in timeline_plot.markers(source)],
        }, indent=1) + "\n",
    }


def timeline_json(tl: Timeline, tmp_path: Path) -> str:
    path = tmp_path / "timeline.json"
    tl.write(path)
    return path.read_text()


def check(name: str, got: str | bytes, tmp_path: Path) -> None:
    expected = EXPECTED / name
    want = expected.read_bytes() if isinstance(got, bytes) else expected.read_text()
    if got != want:
        out = tmp_path / name
        out.write_bytes(got) if isinstance(got, bytes) else out.write_text(got)
        raise AssertionError(f"{name} differs from {expected}: diff {expected} {out}")


def test_the_representative_timeline_has_every_kind():
    assert {e.kind for e in representative().events()} == set(EventKind)


def test_every_kind_has_a_payload_type_and_every_type_reads_back_as_itself():
    assert set(PAYLOADS) == set(EventKind)
    for event in representative().events():
        back = event_json.from_json(event_json.to_json(event))
        assert type(back.payload) is type(event.payload), event
        assert back.payload == event.payload or back.t != event.t


def test_a_payload_of_the_wrong_type_is_refused():
    tl = Timeline(Clock())
    with pytest.raises(TypeError, match="carries Note .*not NodeFault"):
        tl.record(K.NOTE, "harness", NodeFault("node1"))  # type: ignore[arg-type]
    assert tl.events() == []


def test_data_this_version_does_not_write_reads_back_unparsed_and_writes_back_the_same():
    rows = [{"t": 1.0, "kind": "quorum.lost", "source": "node1",
             "data": {"quorate": False, "members": ["node1"]}},  # no votes
            {"t": 2.0, "kind": "note", "source": "node1", "data": {"text": "x", "more": 1}},
            {"t": 3.0, "kind": "fault.partition", "source": "harness",
             "data": {"side": ["node1"]}},
            {"t": 4.0, "kind": "membership.changed", "source": "node1",
             "data": {"quorate": 1, "members": ["node1"], "expected_votes": 3,
                      "total_votes": 1, "first_view": False}}]  # 1 is not true
    events = [event_json.from_json(row) for row in rows]
    assert all(isinstance(e.payload, Unparsed) for e in events)
    assert [event_json.to_json(e) for e in events] == rows


def test_a_views_poll_lengths_are_written_when_measured_and_read_back_exactly():
    """The quorum watcher's poll lengths (what bounds the stamp's error) ride on the view;
    a view without them is written as before they existed."""
    tl = Timeline(Clock())
    tl.record(K.MEMBERSHIP_CHANGED, "node1", MembershipChanged(
        True, ("node1", "node2"), 3, 2, False, poll_s=1.25, previous_poll_s=0.5), t=1.0)
    tl.record(K.QUORUM_LOST, "node2", QuorumView(False, ("node2",), 3, 1, poll_s=0.2), t=2.0)
    rows = tl.to_json()
    assert [r["data"] for r in rows] == [
        {"quorate": True, "members": ["node1", "node2"], "expected_votes": 3,
         "total_votes": 2, "first_view": False, "poll_s": 1.25, "previous_poll_s": 0.5},
        {"quorate": False, "members": ["node2"], "expected_votes": 3, "total_votes": 1,
         "poll_s": 0.2}]
    back = [event_json.from_json(row) for row in rows]
    assert [(e.payload.poll_s, e.payload.previous_poll_s) for e in back] == \
        [(1.25, 0.5), (0.2, None)]
    assert [event_json.to_json(e) for e in back] == rows


def test_the_timeline_json_is_unchanged(tmp_path):
    tl = representative()
    check("timeline.json", timeline_json(tl, tmp_path), tmp_path)
    # the Allure attachment is the same document
    assert json.dumps(tl.to_json(), indent=1) + "\n" == (EXPECTED / "timeline.json").read_text()


@pytest.mark.parametrize("name", ["events.csv", "events.html", "lanes.json"])
def test_the_report_outputs_are_unchanged(name, tmp_path):
    check(name, outputs(representative())[name], tmp_path)


# times are rounded to the millisecond in the JSON: the lanes' band edges move with them
READ_BACK = {"events.csv": "events.csv", "events.html": "events.html",
             "lanes.json": "lanes.read-back.json"}


@pytest.mark.parametrize("name", list(READ_BACK))
def test_the_report_outputs_read_back_from_the_json_are_unchanged(name, tmp_path):
    rows = json.loads((EXPECTED / "timeline.json").read_text())
    check(READ_BACK[name], outputs(rows)[name], tmp_path)


def test_the_picture_is_unchanged(tmp_path):
    import matplotlib

    drawn_by = (EXPECTED / "timeline.png.matplotlib").read_text().strip()
    if matplotlib.__version__ != drawn_by:
        pytest.skip(f"the expected PNG was drawn by matplotlib {drawn_by}, "
                    f"this is {matplotlib.__version__}")
    png = timeline_plot.render(representative(), nodes=NODES, overlays=OVERLAYS, title=TITLE)
    check("timeline.png", png, tmp_path)


def write_expected() -> None:
    """Write the expected files from the writers as they are now (run once, by hand,
    before a change that must not alter them: ``python3 -m tests.unit.test_event_outputs``)."""
    import tempfile

    import matplotlib

    tl = representative()
    EXPECTED.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (EXPECTED / "timeline.json").write_text(timeline_json(tl, Path(tmp)))
    for name, text in outputs(tl).items():
        (EXPECTED / name).write_text(text)
    rows = json.loads((EXPECTED / "timeline.json").read_text())
    for name, text in outputs(rows).items():
        (EXPECTED / READ_BACK[name]).write_text(text)
    (EXPECTED / "timeline.png").write_bytes(
        timeline_plot.render(tl, nodes=NODES, overlays=OVERLAYS, title=TITLE))
    (EXPECTED / "timeline.png.matplotlib").write_text(matplotlib.__version__ + "\n")


if __name__ == "__main__":
    write_expected()
