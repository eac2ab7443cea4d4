"""harness.report.timeline_plot: the lanes of a hand-built HA story, band by band, and the
PNG drawn from them (size, determinism, an empty timeline, unknown kinds)."""

from __future__ import annotations

import struct

import pytest

from harness.clock import Clock
from harness.events import (
    Action,
    InvariantBroken,
    MembershipChanged,
    NodeFault,
    Note,
    ProbeDown,
    ProbeUp,
    QuorumView,
    Reachable,
    Unreachable,
)
from harness.ha_watcher import record_changes
from harness.pve.ha_status import HaStatus, LrmLine, MasterLine, ServiceLine
from harness.report.timeline_plot import (
    Band,
    Lane,
    Marker,
    RecoveryOverlay,
    lanes,
    markers,
    render,
)
from harness.timeline import EventKind, Timeline

K = EventKind
ALL = ("node1", "node2", "node3")
SID, GUEST = "ct:100", "ct100"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OVERLAY = RecoveryOverlay(10.0, 47.0, window=(30.0, 45.0), budget_s=60.0,
                          label="ct100 recovery")


def view(tl: Timeline, kind: EventKind, node: str, t: float, members, *, quorate=True,
         first=False):
    payload = QuorumView(quorate, tuple(members), 3, len(members))
    if kind == K.MEMBERSHIP_CHANGED:
        payload = MembershipChanged.of(payload, first_view=first)
    tl.record(kind, node, payload, t=t)


class HaViews:
    """Each observing node's `ha-manager status` views through record_changes, as
    HaWatcher feeds them: only what changed lands on the timeline."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline, self.last = timeline, {}

    def show(self, t: float, sources, *, master=("node1", "active"), lrms=None,
             service=("node1", "started")) -> None:
        lrms = lrms or dict.fromkeys(ALL, "active")
        status = HaStatus(True, None, MasterLine(*master, "-"), None,
                          {n: LrmLine(n, s, None, "-") for n, s in lrms.items()},
                          {SID: ServiceLine(SID, *service)})
        for source in sources:
            record_changes(self.timeline, source, self.last.get(source), status, t)
            self.last[source] = status


def ha_story() -> Timeline:
    """node1 (master, running ct:100) loses power at 10 s; node2 and node3 see it go, HA
    fences and recovers the guest onto node2, the probe hears it there at 47 s; an
    invariant breaks at 48 s; node1 is powered on at 60 s and rejoins at 75-78 s."""
    tl = Timeline(Clock())
    ha = HaViews(tl)
    for node in ALL:
        view(tl, K.MEMBERSHIP_CHANGED, node, 0.5, ALL, first=True)
    ha.show(1.0, ALL)
    tl.record(K.PROBE_UP, GUEST, ProbeUp(GUEST, "node1", "b1", SID, 1), t=2.0)
    tl.record(K.ACTION, "harness", Action("ha-manager set ct:100 --state started"), t=5.0)
    tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node1"), t=10.0)
    tl.record(K.NODE_UNREACHABLE, "node1", Unreachable("ssh: timed out"), t=10.5)
    tl.record(K.PROBE_DOWN, GUEST, ProbeDown(GUEST, "no answer within 1 s", False, "node1",
                                             "b1"), t=11.0)
    for node in ("node2", "node3"):
        view(tl, K.MEMBERSHIP_CHANGED, node, 14.0, ("node2", "node3"))
    dead = "old timestamp - dead?"
    lost = {"node1": dead, "node2": "active", "node3": "active"}
    ha.show(30.0, ("node2", "node3"), master=("node1", dead), lrms=lost,
            service=("node1", "fence"))
    ha.show(40.0, ("node2", "node3"), master=("node2", "active"), lrms=lost,
            service=("node1", "recovery"))
    ha.show(42.0, ("node2", "node3"), master=("node2", "active"), lrms=lost,
            service=("node2", "starting"))
    ha.show(45.0, ("node2", "node3"), master=("node2", "active"), lrms=lost,
            service=("node2", "started"))
    tl.record(K.PROBE_UP, GUEST, ProbeUp(GUEST, "node2", "b2", SID, 1, "node1", "b1"), t=47.0)
    tl.record(K.INVARIANT_BROKEN, "harness", InvariantBroken(
        "ran_after_fence", GUEST, "boot b1 answered from node1 after node1 was fenced"),
        t=48.0)
    tl.record(K.FAULT_POWER_ON, "harness", NodeFault("node1"), t=60.0)
    tl.record(K.NODE_REACHABLE, "node1", Reachable(), t=75.0)
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 75.0, ("node1",), quorate=False, first=True)
    ha.show(76.0, ("node1",), master=("node2", "active"), lrms=lost,
            service=("node2", "started"))
    view(tl, K.QUORUM_REGAINED, "node1", 78.0, ALL)
    for node in ALL:
        view(tl, K.MEMBERSHIP_CHANGED, node, 78.0, ALL)
    ha.show(79.0, ALL, master=("node2", "active"), service=("node2", "started"))
    tl.record(K.NOTE, "harness", Note("end of the story"), t=80.0)
    return tl


@pytest.fixture
def story_lanes() -> dict[str, Lane]:
    return {lane.key: lane for lane in lanes(ha_story(), ALL)}


def spans(lane: Lane) -> list[tuple[float, float, str]]:
    return [(b.start, b.end, b.label) for b in lane.bands]


# -- lanes ---------------------------------------------------------------------------------
def test_lanes_per_node_then_the_probe_in_order(story_lanes):
    assert list(story_lanes) == [
        "node1/power", "node1/quorum", "node1/ha-nodes", "node1/ha/ct:100",
        "node2/power", "node2/quorum", "node2/ha-nodes", "node2/ha/ct:100",
        "node3/power", "node3/quorum", "node3/ha-nodes", "node3/ha/ct:100",
        "probe/ct100"]
    assert story_lanes["node2/ha/ct:100"].title == "node2 HA ct:100"
    assert story_lanes["probe/ct100"].group == "probes"


def test_power_is_off_between_the_cut_and_the_power_on(story_lanes):
    assert spans(story_lanes["node1/power"]) == [(0.0, 10.0, "on"), (10.0, 60.0, "off"),
                                                 (60.0, 80.0, "on")]
    assert spans(story_lanes["node2/power"]) == [(0.0, 80.0, "on")]


def test_a_node_off_at_the_start_is_off_until_powered_on():
    tl = Timeline(Clock())
    tl.record(K.FAULT_POWER_ON, "harness", NodeFault("node3"), t=5.0)
    tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node2"), t=7.0)
    got = {lane.key: spans(lane) for lane in lanes(tl, ["node2", "node3"], end=9.0,
                                                   off_at_start={"node3"})}
    assert got["node3/power"] == [(0.0, 5.0, "off"), (5.0, 9.0, "on")]
    assert got["node2/power"] == [(0.0, 7.0, "on"), (7.0, 9.0, "off")]


def test_quorum_view_bands_with_no_answer_while_the_node_is_unreachable(story_lanes):
    # at 75 s node1 answers and gives its first view in the same poll: no empty band
    assert spans(story_lanes["node1/quorum"]) == [
        (0.5, 10.5, "quorate"), (10.5, 75.0, "no answer"), (75.0, 78.0, "not quorate"),
        (78.0, 80.0, "quorate")]


def test_a_membership_change_starts_a_new_band_with_the_members_as_detail(story_lanes):
    bands = story_lanes["node2/quorum"].bands
    assert [(b.start, b.end, b.label, b.detail) for b in bands] == [
        (0.5, 14.0, "quorate", "node1 node2 node3 (3/3 votes)"),
        (14.0, 78.0, "quorate", "node2 node3 (2/3 votes)"),
        (78.0, 80.0, "quorate", "node1 node2 node3 (3/3 votes)")]


def test_the_quorum_lost_and_membership_events_of_one_poll_make_one_band():
    tl = Timeline(Clock())
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 1.0, ALL, first=True)
    view(tl, K.QUORUM_LOST, "node1", 4.0, ("node1",), quorate=False)
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 4.0, ("node1",), quorate=False)
    tl.record(K.NOTE, "node1", Note("no quorum information: corosync not running"), t=6.0)
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 8.0, ("node1",), quorate=False, first=True)
    (quorum,) = [lane for lane in lanes(tl, ["node1"], end=9.0) if lane.key == "node1/quorum"]
    assert spans(quorum) == [(1.0, 4.0, "quorate"), (4.0, 6.0, "not quorate"),
                             (6.0, 8.0, "no view"), (8.0, 9.0, "not quorate")]


def test_ha_service_state_bands_of_a_survivor(story_lanes):
    assert spans(story_lanes["node2/ha/ct:100"]) == [
        (1.0, 30.0, "started on node1"), (30.0, 40.0, "fence (node1)"),
        (40.0, 42.0, "recovery (node1)"), (42.0, 45.0, "starting on node2"),
        (45.0, 80.0, "started on node2")]
    started = story_lanes["node2/ha/ct:100"].bands[-1]
    assert (started.state, started.node) == ("started", "node2")


def test_the_cut_nodes_ha_view_is_no_answer_then_its_stale_view_until_it_polls(story_lanes):
    assert spans(story_lanes["node1/ha/ct:100"]) == [
        (1.0, 10.5, "started on node1"), (10.5, 75.0, "no answer"),
        (75.0, 76.0, "started on node1"), (76.0, 80.0, "started on node2")]


def test_ha_master_and_lrm_view(story_lanes):
    assert spans(story_lanes["node3/ha-nodes"]) == [
        (1.0, 30.0, "master node1"), (30.0, 40.0, "master node1 dead?, lrm node1 dead?"),
        (40.0, 79.0, "master node2, lrm node1 dead?"), (79.0, 80.0, "master node2")]
    assert [b.state for b in story_lanes["node3/ha-nodes"].bands] == [
        "ha ok", "ha degraded", "ha degraded", "ha ok"]


def test_probe_up_bands_per_node_that_answered(story_lanes):
    probe = story_lanes["probe/ct100"]
    assert spans(probe) == [(2.0, 11.0, "up on node1"), (11.0, 47.0, "down"),
                            (47.0, 80.0, "up on node2")]
    assert [b.node for b in probe.bands] == ["node1", None, "node2"]


def test_a_new_boot_on_the_same_node_is_a_new_band():
    tl = Timeline(Clock())
    for t, boot in ((1.0, "b1"), (5.0, "b2"), (6.0, "b2")):
        tl.record(K.PROBE_UP, GUEST, ProbeUp(GUEST, "node1", boot, SID, 1), t=t)
    (probe,) = lanes(tl, [], end=8.0)
    assert [(b.start, b.end, b.detail) for b in probe.bands] == [(1.0, 5.0, "boot b1"),
                                                                 (5.0, 8.0, "boot b2")]


def test_lanes_are_cut_at_end_and_the_same_from_the_json_rows():
    tl = ha_story()
    assert lanes(tl.to_json(), ALL) == lanes(tl, ALL)
    cut = {lane.key: spans(lane) for lane in lanes(tl, ALL, end=20.0)}
    assert cut["node1/power"] == [(0.0, 10.0, "on"), (10.0, 20.0, "off")]
    assert cut["probe/ct100"] == [(2.0, 11.0, "up on node1"), (11.0, 20.0, "down")]


def test_markers_for_faults_actions_and_broken_invariants():
    assert markers(ha_story()) == [
        Marker(5.0, "ha-manager set ct:100 --state started", "action"),
        Marker(10.0, "power cut node1", "fault"),
        Marker(48.0, "ran_after_fence broken", "invariant"),
        Marker(60.0, "power on node1", "fault")]


def test_unknown_kinds_and_odd_data_are_ignored_by_the_lanes():
    rows = [{"t": 1.0, "kind": "fault.partition", "source": "harness",
             "data": {"node": "node2"}},
            {"t": 2.0, "kind": "something.new", "source": "node1", "data": {"x": 1}},
            {"t": 3.0, "kind": "ha.service_state", "source": "node1", "data": {}}]
    got = lanes(rows, ["node1", "node2"])
    assert [spans(lane) for lane in got if lane.key.endswith("/power")] == [
        [(0.0, 3.0, "on")], [(0.0, 3.0, "on")]]
    assert markers(rows) == [Marker(1.0, "partition node2", "fault")]


def test_an_empty_timeline_has_empty_lanes():
    got = lanes(Timeline(Clock()), ALL)
    assert [lane.key for lane in got][:2] == ["node1/power", "node1/quorum"]
    assert all(lane.bands == () for lane in got)


def test_overlay_verdicts_follow_the_metric_rules():
    assert OVERLAY.duration_s == 37.0
    assert OVERLAY.verdict == "ok"
    assert RecoveryOverlay(10.0, 60.0, window=(30.0, 45.0)).verdict == "outside_window"
    assert RecoveryOverlay(10.0, 80.0, window=(30.0, 45.0), budget_s=60.0).verdict == \
        "outside_window+over_budget"
    assert RecoveryOverlay(10.0, 20.0).verdict == "measured"
    assert RecoveryOverlay(10.0, None, budget_s=60.0).verdict == "open"


def test_band_is_plain_data():
    assert Band(1.0, 2.0, "on") == Band(1.0, 2.0, "on", "", None, "")


# -- the picture ---------------------------------------------------------------------------
def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_renders_the_full_ha_story(tmp_path):
    png = render(ha_story(), nodes=ALL, overlays=[OVERLAY],
                 title="HA story: power cut of node1 (the master)")
    assert png_size(png) == (1600, 900)
    (tmp_path / "timeline.png").write_bytes(png)  # to look at: pytest --basetemp=DIR
    assert len(png) > 20_000  # lanes, labels and legend, not a blank canvas


def test_rendering_is_deterministic():
    tl = ha_story()
    assert render(tl, nodes=ALL, overlays=[OVERLAY]) == \
        render(tl.to_json(), nodes=ALL, overlays=[OVERLAY])


def test_renders_an_empty_timeline_and_no_nodes():
    assert png_size(render(Timeline(Clock()), nodes=ALL)) == (1600, 900)
    assert png_size(render([], nodes=[], title="nothing")) == (1600, 900)


def test_renders_unknown_kinds_open_overlays_and_other_sizes():
    rows = [{"t": 1.0, "kind": "fault.partition", "source": "harness",
             "data": {"node": "node2"}},
            {"t": 2.0, "kind": "something.new", "source": "node1", "data": {"x": 1}},
            {"t": 3.0, "kind": "probe.up", "source": "web", "data": {"node": "node9"}}]
    overlays = [RecoveryOverlay(1.0, None, budget_s=5.0, label="not back"),
                RecoveryOverlay(1.0, 2.5, window=(0.5, 1.0), label="late")]
    png = render(rows, nodes=["node1", "node2"], overlays=overlays, width_px=800,
                 height_px=450, dpi=50)
    assert png_size(png) == (800, 450)
