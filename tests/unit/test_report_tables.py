"""harness.report.event_table: a hand-built timeline as CSV and as an HTML page."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from harness import event_json
from harness.clock import Clock
from harness.events import (
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
from harness.report import as_events, kind_of
from harness.report.event_table import (
    COLUMNS,
    category,
    describe,
    rows,
    to_csv,
    to_html,
)
from harness.timeline import Event, EventKind, Timeline

K = EventKind
ALL = ("node1", "node2", "node3")
SID, GUEST = "ct:100", "ct100"


def quorum(quorate: bool, members) -> QuorumView:
    return QuorumView(quorate, tuple(members), 3, len(members))


@pytest.fixture
def timeline() -> Timeline:
    """One event of every kind, recorded out of time order (watchers append late)."""
    tl = Timeline(Clock())
    tl.record(K.PROBE_UP, GUEST, ProbeUp(GUEST, "node2", "b2", SID, 1, "node1", "b1"), t=47.0)
    tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node1"), t=10.0)
    tl.record(K.MEMBERSHIP_CHANGED, "node2",
              MembershipChanged.of(quorum(True, ALL), first_view=True), t=0.5)
    tl.record(K.ACTION, "harness", Action("pvecm expected 1", node="node2"), t=5.0)
    tl.record(K.NODE_UNREACHABLE, "node1", Unreachable("ssh: timed out"), t=10.5)
    tl.record(K.PROBE_DOWN, GUEST, ProbeDown(GUEST, "no answer within 1 s", False, "node1",
                                             "b1"), t=11.0)
    tl.record(K.QUORUM_LOST, "node2", quorum(False, ["node2"]), t=14.0)
    tl.record(K.VOTES_CHANGED, "node2", quorum(False, ["node2"]), t=20.0)
    tl.record(K.HA_MASTER, "node2", HaMaster("node2", "active", None, "node1",
                                             "old timestamp - dead?"), t=30.0)
    tl.record(K.HA_NODE_STATE, "node2", HaNodeState("node1", "old timestamp - dead?", None,
                                                    "active"), t=30.0)
    tl.record(K.HA_SERVICE_STATE, "node2",
              HaServiceState(SID, "node1", "fence", Placement("node1", "started")), t=30.0)
    tl.record(K.QUORUM_REGAINED, "node2", quorum(True, ["node2", "node3"]), t=31.0)
    tl.record(K.INVARIANT_BROKEN, "harness", InvariantBroken(
        "ran_after_fence", GUEST, "boot b1 answered from node1 after node1 was fenced"),
        t=48.0)
    tl.record(K.FAULT_POWER_ON, "harness", NodeFault("node1"), t=60.0)
    for offset, kind in enumerate((K.FAULT_SHUTDOWN, K.FAULT_RESET, K.FAULT_FREEZE,
                                   K.FAULT_THAW, K.FAULT_LINK_DOWN, K.FAULT_LINK_UP)):
        tl.record(kind, "harness", NodeFault("node3"), t=61.0 + offset)
    tl.record(K.FAULT_BEGIN, "harness", FaultBegin("netem", "node2", "delay 5ms"), t=68.0)
    tl.record(K.FAULT_END, "harness", FaultEnd("netem", "node2", "delay 5ms"), t=70.0)
    tl.record(K.LAB_EVENT, "node1", LabEvent("node1", "stopped", "destroyed"), t=10.2)
    tl.record(K.NODE_REACHABLE, "node1", Reachable(), t=75.0)
    tl.record(K.NOTE, "node1", Note("<script>alert('x')</script> & \"quotes\""), t=76.0)
    return tl


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_fixture_has_every_kind(timeline):
    assert {e.kind for e in timeline.events()} == set(EventKind)


# -- CSV -----------------------------------------------------------------------------------
def test_csv_parses_back_one_row_per_event_in_time_order(timeline):
    parsed = parse(to_csv(timeline))
    assert list(parsed[0]) == list(COLUMNS)
    assert len(parsed) == len(timeline.events())
    times = [float(r["t_s"]) for r in parsed]
    assert times == sorted(times)
    assert [(float(r["t_s"]), r["kind"], r["source"]) for r in parsed] == [
        (e.t, str(e.kind), e.source) for e in timeline.events()]


def test_csv_data_column_is_the_events_data_as_json(timeline):
    for row, event in zip(parse(to_csv(timeline)), timeline.events(), strict=True):
        assert json.loads(row["data"]) == event_json.to_json(event)["data"]
        assert "\n" not in row["data"] and ", " not in row["data"]  # compact


def test_csv_keeps_commas_quotes_and_newlines_in_a_cell():
    tl = Timeline(Clock())
    tl.record(K.NOTE, "harness", Note('one, "two"\nthree'), t=1.0)
    (row,) = parse(to_csv(tl))
    assert row["detail"] == 'one, "two"\nthree'


def test_csv_is_the_same_from_the_timeline_its_events_and_its_json(timeline):
    text = to_csv(timeline)
    assert to_csv(timeline.events()) == text
    assert to_csv(timeline.to_json()) == text
    shuffled = parse(to_csv(list(reversed(timeline.to_json()))))
    assert [float(r["t_s"]) for r in shuffled] == [e.t for e in timeline.events()]


def test_csv_of_an_empty_timeline_is_the_header():
    assert to_csv(Timeline(Clock())) == ",".join(COLUMNS) + "\n"


# -- the detail column ----------------------------------------------------------------------
def test_details_in_words(timeline):
    detail = {(str(r.kind), r.source): r.detail for r in rows(timeline)}
    assert detail[(K.FAULT_POWER_CUT, "harness")] == "power cut node1"
    assert detail[(K.ACTION, "harness")] == "pvecm expected 1 (node=node2)"
    assert detail[(K.NODE_UNREACHABLE, "node1")] == "no answer: ssh: timed out"
    assert detail[(K.MEMBERSHIP_CHANGED, "node2")] == \
        "first view: quorate; members node1, node2, node3; votes 3 of 3 expected"
    assert detail[(K.QUORUM_LOST, "node2")] == \
        "quorum lost: not quorate; members node2; votes 1 of 3 expected"
    assert detail[(K.HA_SERVICE_STATE, "node2")] == "ct:100 on node1: fence, was node1: started"
    assert detail[(K.HA_NODE_STATE, "node2")] == "lrm node1: old timestamp - dead? (was active)"
    assert detail[(K.HA_MASTER, "node2")] == \
        "master node2 (active) (was node1, old timestamp - dead?)"
    assert detail[(K.PROBE_UP, GUEST)] == \
        "ct100 answers from node2 (boot b2, seq 1), before from node1 (boot b1)"
    assert detail[(K.PROBE_DOWN, GUEST)] == \
        "ct100 silent: no answer within 1 s (last answered from node1, boot b1)"
    assert detail[(K.INVARIANT_BROKEN, "harness")] == \
        "ran_after_fence (ct100): boot b1 answered from node1 after node1 was fenced"


def test_a_service_leaving_the_view_and_an_initial_probe_down():
    assert describe(Event(1.0, K.HA_SERVICE_STATE, "node1", HaServiceState(
        SID, None, None, Placement("node2", "started")))) == \
        "ct:100 left the view, was node2: started"
    assert describe(Event(1.0, K.PROBE_DOWN, GUEST, ProbeDown(GUEST, "refused", True))) == \
        "ct100 silent: refused (no answer yet)"


def test_unknown_kinds_and_odd_data_are_shown_as_pairs():
    (unknown, odd) = as_events([
        {"t": 1.0, "kind": "fault.partition", "source": "harness",
         "data": {"side": ["node1"], "b": 2}},
        {"t": 2.0, "kind": "membership.changed", "source": "node1", "data": {"members": 3}}])
    assert describe(unknown) == "b=2, side=[node1]"
    assert describe(odd) == "members=3"


def test_categories():
    assert [category(k) for k in (K.FAULT_POWER_CUT, "fault.partition", K.ACTION,
                                  K.QUORUM_LOST, K.NODE_UNREACHABLE, K.HA_MASTER,
                                  K.PROBE_DOWN, K.INVARIANT_BROKEN, K.NOTE, "x.y")] == [
        "fault", "fault", "action", "quorum", "quorum", "ha", "probe", "invariant",
        "other", "other"]


def test_json_rows_of_unknown_kinds_are_read_back():
    (event,) = as_events([{"t": 2, "kind": "something.new", "source": "n", "data": None}])
    assert (event.t, event.kind, event.source, event.payload) == (
        2.0, "something.new", "n", Unparsed({}))
    assert kind_of("probe.up") is K.PROBE_UP


# -- HTML ----------------------------------------------------------------------------------
def test_html_escapes_the_data(timeline):
    page = to_html(timeline, title="<b>story</b>")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "<title>&lt;b&gt;story&lt;/b&gt;</title>" in page


def test_html_has_every_event_kind_and_one_row_each(timeline):
    page = to_html(timeline)
    for kind in EventKind:
        assert f'<td class="kind">{kind}</td>' in page
    assert page.count("<tr class=") == len(timeline.events())


def test_html_rows_are_tinted_by_kind(timeline):
    page = to_html(timeline)
    classes = re.findall(r'<tr class="([^"]+)"><td class="t">[^<]*</td>'
                         r'<td class="kind">([^<]+)</td>', page)
    by_kind = dict((kind, cls) for cls, kind in classes)
    assert by_kind[K.FAULT_POWER_CUT] == "fault"
    assert by_kind[K.QUORUM_LOST] == "quorum alert"
    assert by_kind[K.HA_SERVICE_STATE] == "ha alert"  # fence
    assert by_kind[K.PROBE_UP] == "probe"
    assert by_kind[K.INVARIANT_BROKEN] == "invariant alert"
    for name in ("fault", "quorum", "ha", "probe", "invariant"):
        assert re.search(rf"tr\.{name} td \{{ background: #[0-9a-f]{{6}}; \}}", page)


def test_html_is_self_contained(timeline):
    page = to_html(timeline)
    assert page.startswith("<!DOCTYPE html>")
    for external in ("<link", "<script", "src=", "href=", "http://", "https://", "@import",
                     "url("):
        assert external not in page


def test_html_of_an_empty_timeline():
    page = to_html([])
    assert "0 events, nothing recorded" in page
    assert "<tr class=" not in page
