"""The report writers' outputs for one timeline with every event kind, byte for byte.

The files under tests/expected/events/ were written by the writers as they were before
the events became typed (the untyped ``data`` dict); these tests prove the outputs did
not change: the timeline JSON (``timeline.json``, also attached to Allure), the events
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

from harness.clock import Clock
from harness.report import event_table, timeline_plot
from harness.timeline import EventKind, Timeline

K = EventKind
EXPECTED = Path(__file__).resolve().parent.parent / "expected" / "events"
NODES = ("node1", "node2", "node3")
SID, GUEST = "ct:100", "ct100"
TITLE = "events <golden> & \"every kind\""
OVERLAYS = [timeline_plot.RecoveryOverlay(10.0, 47.25, window=(30.0, 45.0), budget_s=60.0,
                                          label="ct100 time_to_recovery")]


def view(quorate: bool, members: tuple[str, ...]) -> dict[str, object]:
    return {"quorate": quorate, "members": list(members), "expected_votes": 3,
            "total_votes": len(members)}


def representative() -> Timeline:
    """Every kind, every optional part (first views, previous values, nodes leaving a
    view, a probe's initial silence, an action with and without a node), recorded out of
    time order with times that need rounding, as the watchers record them."""
    tl = Timeline(Clock())
    r = tl.record
    for node in NODES:
        r(K.MEMBERSHIP_CHANGED, node, t=0.5, **view(True, NODES), first_view=True)
    r(K.PROBE_DOWN, GUEST, t=0.75, guest=GUEST, reason="[Errno 111] Connection refused",
      initial=True)
    r(K.HA_MASTER, "node2", t=1.0, node="node1", status="active", fencing=None,
      previous_node=None, previous_status=None)
    r(K.HA_NODE_STATE, "node2", t=1.0, node="node1", status="active", watchdog="armed",
      previous=None)
    r(K.HA_SERVICE_STATE, "node2", t=1.0, sid=SID, node="node1", state="started",
      previous=None, previous_node=None, previous_state=None)
    r(K.PROBE_UP, GUEST, t=2.0004, guest=GUEST, node="node1", boot_id="b1", sid=SID, seq=1)
    r(K.ACTION, "harness", t=5.0, what="ha-manager set ct:100 --state started")
    r(K.ACTION, "harness", t=5.5, what="pvecm expected 1", node="node2")
    r(K.FAULT_POWER_CUT, "harness", t=10.0, node="node1")
    r(K.LAB_EVENT, "node1", t=10.123456, node="node1", event="stopped", detail="destroyed")
    r(K.NODE_UNREACHABLE, "node1", t=10.5, reason="ssh: timed out, after 4 s")
    r(K.PROBE_DOWN, GUEST, t=11.0, guest=GUEST, reason="no answer within 1 s",
      initial=False, node="node1", boot_id="b1")
    for node in ("node2", "node3"):
        r(K.MEMBERSHIP_CHANGED, node, t=14.0, **view(True, ("node2", "node3")),
          first_view=False)
    r(K.QUORUM_LOST, "node3", t=20.0, **view(False, ("node3",)))
    r(K.VOTES_CHANGED, "node3", t=21.0, **view(False, ("node3",)))
    r(K.NOTE, "node3", t=22.0, text="no quorum information: corosync not running")
    r(K.QUORUM_REGAINED, "node3", t=23.0, **view(True, ("node2", "node3")))
    dead = "old timestamp - dead?"
    r(K.HA_MASTER, "node2", t=30.0, node="node1", status=dead, fencing="armed",
      previous_node="node1", previous_status="active")
    r(K.HA_NODE_STATE, "node2", t=30.0, node="node1", status=dead, watchdog=None,
      previous="active")
    r(K.HA_SERVICE_STATE, "node2", t=30.0, sid=SID, node="node1", state="fence",
      previous={"node": "node1", "state": "started"}, previous_node="node1",
      previous_state="started")
    r(K.HA_MASTER, "node3", t=35.0, node=None, status=None, fencing=None,
      previous_node="node1", previous_status=dead)
    r(K.HA_SERVICE_STATE, "node2", t=40.0, sid=SID, node="node1", state="recovery",
      previous={"node": "node1", "state": "fence"}, previous_node="node1",
      previous_state="fence")
    r(K.HA_SERVICE_STATE, "node2", t=42.0, sid=SID, node="node2", state="starting",
      previous={"node": "node1", "state": "recovery"}, previous_node="node1",
      previous_state="recovery")
    r(K.HA_NODE_STATE, "node2", t=43.0, node="node1", status=None, watchdog=None,
      previous=dead)
    r(K.HA_SERVICE_STATE, "node3", t=44.0, sid="vm:101", node=None, state=None,
      previous={"node": "node3", "state": "stopped"}, previous_node="node3",
      previous_state="stopped")
    r(K.NOTE, "node1", t=44.5, text="no HA status: ipcc_send_rec[1] failed: Connection "
      "refused")
    r(K.PROBE_UP, GUEST, t=47.25, guest=GUEST, node="node2", boot_id="b2", sid=SID, seq=7,
      previous_node="node1", previous_boot_id="b1")
    r(K.INVARIANT_BROKEN, "harness", t=48.0, invariant="ran_after_fence", guest=GUEST,
      detail="boot b1 answered from node1 at 47.9 s, after node1 was fenced at 42.0 s")
    r(K.FAULT_POWER_ON, "harness", t=60.0, node="node1")
    for offset, kind in enumerate((K.FAULT_SHUTDOWN, K.FAULT_RESET, K.FAULT_FREEZE,
                                   K.FAULT_THAW, K.FAULT_LINK_DOWN, K.FAULT_LINK_UP)):
        r(kind, "harness", t=61.0 + offset, node="node3")
    r(K.NODE_REACHABLE, "node1", t=75.0)
    r(K.NOTE, "harness", t=76.0, text="<script>alert('x')</script> & \"quotes\", commas\n"
      "and a second line")
    r(K.NOTE, "harness", t=77.0, text="undone: power node1")
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
