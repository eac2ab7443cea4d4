"""harness.report.fault_bands and the fault lanes and markers of the timeline picture:
begin/end pairs per node, lab-level freeze and link cuts, faults never ended, overlapping
faults on their own rows, one label for a fault set on several nodes."""

from __future__ import annotations

from harness.clock import Clock
from harness.events import Action, FaultBegin, FaultEnd, NodeFault, Note
from harness.report import fault_bands
from harness.report.fault_bands import FaultSpan, spans
from harness.report.lanes import Marker, lanes, markers
from harness.report.plot_style import band_style, fault_colour
from harness.report.timeline_plot import render
from harness.timeline import EventKind, Timeline

K = EventKind
ALL = ("node1", "node2", "node3")


def begin(tl: Timeline, t: float, fault: str, node: str, detail: str = "") -> None:
    tl.record(K.FAULT_BEGIN, "harness", FaultBegin(fault, node, detail), t=t)


def end(tl: Timeline, t: float, fault: str, node: str, detail: str = "") -> None:
    tl.record(K.FAULT_END, "harness", FaultEnd(fault, node, detail), t=t)


def isolation() -> Timeline:
    """node1 isolated (a begin per node) at 10 s, corosync paused on node1 from 20 s and
    never resumed, the partition healed at 40 s; node3 frozen 50..55 s, its link cut at
    56 s and only undone by the teardown at 70 s."""
    tl = Timeline(Clock())
    begin(tl, 10.0, "partition", "node1", "cut from node2 node3")
    begin(tl, 10.25, "partition", "node2", "cut from node1")
    begin(tl, 10.5, "partition", "node3", "cut from node1")
    begin(tl, 20.0, "daemon.pause", "node1", "corosync")
    tl.record(K.ACTION, "harness", Action("wait for the fence"), t=30.0)
    for i, (node, detail) in enumerate((("node1", "cut from node2 node3"),
                                        ("node2", "cut from node1"),
                                        ("node3", "cut from node1"))):
        end(tl, 40.0 + i / 4, "partition", node, detail)
    tl.record(K.FAULT_FREEZE, "harness", NodeFault("node3"), t=50.0)
    tl.record(K.FAULT_THAW, "harness", NodeFault("node3"), t=55.0)
    tl.record(K.FAULT_LINK_DOWN, "harness", NodeFault("node3"), t=56.0)
    tl.record(K.NOTE, "harness", Note("undone: link node3"), t=70.0)
    tl.record(K.NOTE, "harness", Note("end"), t=80.0)
    return tl


def test_spans_pair_begin_and_end_per_node_and_fault():
    got = spans(isolation().events())
    assert got == [
        FaultSpan("node1", "partition", "cut from node2 node3", 10.0, 40.0),
        FaultSpan("node2", "partition", "cut from node1", 10.25, 40.25),
        FaultSpan("node3", "partition", "cut from node1", 10.5, 40.5),
        FaultSpan("node1", "daemon.pause", "corosync", 20.0, None),
        FaultSpan("node3", "freeze", "", 50.0, 55.0),
        FaultSpan("node3", "link down", "", 56.0, 70.0),  # ended by the teardown's undo
    ]


def test_an_end_matches_its_own_detail_and_an_unmatched_end_is_ignored():
    tl = Timeline(Clock())
    begin(tl, 1.0, "partition", "node1", "cut from node2")
    begin(tl, 2.0, "partition", "node1", "cut from node3")
    end(tl, 3.0, "partition", "node1", "cut from node2")
    end(tl, 4.0, "netem", "node1", "delay 100ms")  # never began
    tl.record(K.FAULT_THAW, "harness", NodeFault("node2"), t=5.0)  # never frozen
    assert spans(tl.events()) == [FaultSpan("node1", "partition", "cut from node2", 1.0, 3.0),
                                  FaultSpan("node1", "partition", "cut from node3", 2.0)]


def test_a_second_freeze_of_a_frozen_node_keeps_the_first_span():
    tl = Timeline(Clock())
    for t, kind in ((1.0, K.FAULT_FREEZE), (2.0, K.FAULT_FREEZE), (3.0, K.FAULT_THAW)):
        tl.record(kind, "harness", NodeFault("node1"), t=t)
    assert spans(tl.events()) == [FaultSpan("node1", "freeze", "", 1.0, 3.0)]


def by_key(tl: Timeline) -> dict[str, list[tuple[float, float, str, str]]]:
    return {lane.key: [(b.start, b.end, b.label, b.detail) for b in lane.bands]
            for lane in lanes(tl, ALL)}


def test_fault_lanes_follow_the_power_lane_one_row_per_overlapping_fault():
    got = by_key(isolation())
    keys = list(got)
    assert keys[:3] == ["node1/power", "node1/faults", "node1/faults/2"]
    assert got["node1/faults"] == [(10.0, 40.0, "partition", "cut from node2 node3")]
    # never ended: to the end of the record, and it says so
    assert got["node1/faults/2"] == [(20.0, 80.0, "daemon.pause", "corosync; not ended")]
    assert got["node3/faults"] == [(10.5, 40.5, "partition", "cut from node1"),
                                   (50.0, 55.0, "freeze", ""), (56.0, 70.0, "link down", "")]


def test_a_node_without_faults_has_no_fault_lane():
    tl = Timeline(Clock())
    begin(tl, 1.0, "clock.step", "node2", "+90 s")
    keys = [lane.key for lane in lanes(tl, ALL, end=5.0)]
    assert "node1/faults" not in keys and "node3/faults" not in keys
    assert keys.index("node2/faults") == keys.index("node2/power") + 1


def test_fault_bands_are_coloured_by_family_and_named_in_the_legend():
    (lane,) = [lane for lane in lanes(isolation(), ALL) if lane.key == "node1/faults/2"]
    face, entry = band_style(lane.bands[0], {})
    assert (face, entry) == (fault_colour("daemon.kill"), "fault daemon.pause")
    assert fault_colour("daemon.pause") == fault_colour("daemon.stop") != \
        fault_colour("partition")
    assert fault_colour("something.new") == fault_colour("other")


def test_one_fault_set_on_several_nodes_gets_one_label_and_a_line_each():
    assert markers(isolation()) == [
        Marker(10.0, "partition node1 node2 node3", "fault"),
        Marker(10.25, "", "fault"), Marker(10.5, "", "fault"),
        Marker(20.0, "daemon.pause node1", "fault"),
        Marker(30.0, "wait for the fence", "action"),
        Marker(40.0, "end partition node1 node2 node3", "fault"),
        Marker(40.25, "", "fault"), Marker(40.5, "", "fault"),
        Marker(50.0, "freeze node3", "fault"), Marker(55.0, "thaw node3", "fault"),
        Marker(56.0, "link down node3", "fault")]


def test_another_marker_between_two_begins_keeps_their_labels_apart():
    tl = Timeline(Clock())
    begin(tl, 1.0, "daemon.kill", "node1", "pve-ha-lrm")
    tl.record(K.ACTION, "harness", Action("look"), t=2.0)
    begin(tl, 3.0, "daemon.kill", "node2", "pve-ha-lrm")
    assert [m.label for m in markers(tl)] == ["daemon.kill node1", "look",
                                              "daemon.kill node2"]


def test_the_picture_draws_fault_lanes_and_shades():
    png = render(isolation(), nodes=ALL, title="isolation")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert render(isolation().to_json(), nodes=ALL, title="isolation") == png


def test_the_undone_note_names_the_effects_faults_records():
    # FaultInjector.undo_all writes "undone: <Effect value> <node>"
    from harness.faults import Effect

    assert set(fault_bands.UNDONE_EFFECTS) == {Effect.FREEZE.value, Effect.LINK.value}


def test_a_lab_level_fault_aimed_at_no_node_gets_its_own_lane_before_the_probes():
    tl = Timeline(Clock())
    begin(tl, 1.0, "storage.outage", "198.18.0.1", "server of storage 'shared' stops")
    end(tl, 4.0, "storage.outage", "198.18.0.1", "server of storage 'shared' stops")
    tl.record(K.NOTE, "harness", Note("end"), t=5.0)
    got = lanes(tl, ALL)
    lab = [lane for lane in got if lane.group == "lab"]
    assert [(lane.key, lane.title) for lane in lab] == [
        ("lab/198.18.0.1/faults", "198.18.0.1 faults")]
    assert [(b.start, b.end, b.label) for b in lab[0].bands] == [(1.0, 4.0, "storage.outage")]
    assert band_style(lab[0].bands[0], {})[0] == fault_colour("storage.cut")
    assert png_ok(render(tl, nodes=ALL))


def png_ok(png: bytes) -> bool:
    return png[:8] == b"\x89PNG\r\n\x1a\n"
