"""harness.metrics: figures computed from a timeline built by hand, and metrics.json."""

from __future__ import annotations

import json

import pytest

from harness.clock import Clock
from harness.events import (
    Action,
    MembershipChanged,
    NodeFault,
    Note,
    ProbeUp,
    QuorumView,
    Unreachable,
)
from harness.expectations import ClusterConstants, detect_window
from harness.ha_watcher import record_changes
from harness.metrics import (
    Metric,
    MetricsFile,
    detect_poll_s,
    detect_window_seen,
    quorum_loss_poll_s,
    quorum_loss_window_seen,
    time_to_detect,
    time_to_fence,
    time_to_fence_ack,
    time_to_heal,
    time_to_quorum,
    time_to_quorum_loss,
    time_to_recovery,
    time_to_restart,
)
from harness.pve.ha_status import HaStatus, MasterLine, ServiceLine
from harness.timeline import EventKind, Timeline
from harness.timescale import REAL_TIME

K = EventKind
ALL = ("node1", "node2", "node3")


def view(timeline, kind, node, t, members, *, quorate=True, expected=3):
    payload = QuorumView(quorate, tuple(members), expected, len(members))
    if kind == K.MEMBERSHIP_CHANGED:
        payload = MembershipChanged.of(payload, first_view=False)
    return timeline.record(kind, node, payload, t=t)


@pytest.fixture
def story() -> tuple[Timeline, dict]:
    """The quorum story: node3 off, node2 off, `pvecm expected 1`, both back on."""
    tl = Timeline(Clock())
    marks = {}
    for node in ALL:
        view(tl, K.MEMBERSHIP_CHANGED, node, 1.0, ALL)
    marks["cut3"] = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    tl.record(K.NODE_UNREACHABLE, "node3", Unreachable("off"), t=10.5)
    tl.record(K.NOTE, "node2", Note("not a view"), t=11.0)
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 12.0, ("node1", "node2"))
    view(tl, K.MEMBERSHIP_CHANGED, "node2", 12.5, ("node1", "node2"))
    marks["cut2"] = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node2"), t=20.0)
    view(tl, K.QUORUM_LOST, "node1", 22.0, ("node1",), quorate=False)
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 22.0, ("node1",), quorate=False)
    marks["expected"] = tl.record(K.ACTION, "harness", Action("pvecm expected 1"), t=30.0)
    view(tl, K.QUORUM_REGAINED, "node1", 30.4, ("node1",), expected=1)
    marks["on"] = tl.record(K.FAULT_POWER_ON, "harness", NodeFault("node2"), t=40.0)
    tl.record(K.FAULT_POWER_ON, "harness", NodeFault("node3"), t=40.0)
    # every member, but expected votes still 1: not healed yet
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 53.0, ALL, expected=1)
    view(tl, K.VOTES_CHANGED, "node1", 55.0, ALL)
    view(tl, K.MEMBERSHIP_CHANGED, "node2", 50.0, ("node1", "node2"))
    view(tl, K.MEMBERSHIP_CHANGED, "node2", 55.5, ALL)
    view(tl, K.MEMBERSHIP_CHANGED, "node3", 56.0, ("node3", "node1", "node2"))  # any order
    return tl, marks


def test_time_to_detect_is_the_slowest_survivor(story):
    tl, marks = story
    assert time_to_detect(tl, marks["cut3"], ["node1", "node2"]) == pytest.approx(2.5)
    assert time_to_detect(tl, marks["cut3"], ["node1"]) == pytest.approx(2.0)
    assert time_to_detect(tl, marks["cut2"], ["node1"]) == pytest.approx(2.0)


def test_time_to_detect_is_none_when_a_survivor_never_drops_the_node(story):
    tl, marks = story
    assert time_to_detect(tl, marks["cut2"], ["node1", "node3"]) is None


def test_time_to_quorum_loss(story):
    tl, marks = story
    assert time_to_quorum_loss(tl, marks["cut2"], "node1") == pytest.approx(2.0)
    assert time_to_quorum_loss(tl, marks["cut3"], "node2") is None  # node2 stayed quorate


def test_the_longest_poll_behind_a_figure_is_of_the_views_that_decided_it():
    tl = Timeline(Clock())
    for node in ALL:
        view(tl, K.MEMBERSHIP_CHANGED, node, 1.0, ALL)
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    assert detect_poll_s(tl, cut, ["node1", "node2"]) is None  # not seen yet
    lone = ("node1", "node2")
    for node, t, poll, before in (("node1", 17.0, 1.4, 0.2), ("node2", 18.0, 0.3, 0.9)):
        tl.record(K.MEMBERSHIP_CHANGED, node, MembershipChanged(
            True, lone, 3, 2, False, poll_s=poll, previous_poll_s=before), t=t)
    # a later, slower poll of a view that decided nothing does not count
    tl.record(K.VOTES_CHANGED, "node1", QuorumView(True, lone, 2, 2, poll_s=3.0), t=19.0)
    assert detect_poll_s(tl, cut, ["node1", "node2"]) == 1.4
    assert detect_poll_s(tl, cut, ["node2"]) == 0.9  # the poll before the one that saw it
    stock = ClusterConstants.stock(3, REAL_TIME)
    assert detect_window_seen(stock, tl, cut, ["node1", "node2"]) == \
        detect_window(stock, command_latency_s=1.4)
    cut2 = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node2"), t=20.0)
    view(tl, K.QUORUM_LOST, "node1", 22.0, ("node1",), quorate=False)  # no lengths
    assert time_to_quorum_loss(tl, cut2, "node1") == 2.0
    assert quorum_loss_poll_s(tl, cut2, "node1") is None
    assert quorum_loss_window_seen(stock, tl, cut2, "node1") == detect_window(stock)


def test_time_to_quorum(story):
    tl, marks = story
    assert time_to_quorum(tl, marks["expected"], "node1") == pytest.approx(0.4)
    assert time_to_quorum(tl, marks["on"], "node3") == pytest.approx(16.0)


def test_a_poll_that_began_just_before_the_action_and_saw_its_effect_counts():
    """`pvecm expected 1` takes effect in milliseconds: the watcher's poll that saw it may
    have started before the action was stamped (views are stamped at their poll's start).
    It counts, from the action (0 s); a poll that ended before the action does not."""
    tl, lone = Timeline(Clock()), ("node1",)
    tl.record(K.QUORUM_LOST, "node1", QuorumView(False, lone, 3, 1, poll_s=0.2), t=20.0)
    tl.record(K.QUORUM_REGAINED, "node1", QuorumView(True, lone, 1, 1, poll_s=0.1), t=32.8)
    later = tl.record(K.ACTION, "harness", Action("pvecm expected 1"), t=33.0)
    assert time_to_quorum(tl, later, "node1") is None  # that poll ended at 32.9
    tl.record(K.QUORUM_LOST, "node1", QuorumView(False, lone, 3, 1, poll_s=0.2), t=34.0)
    action = tl.record(K.ACTION, "harness", Action("pvecm expected 1"), t=35.0)
    tl.record(K.QUORUM_REGAINED, "node1", QuorumView(True, lone, 1, 1, poll_s=0.3), t=34.8)
    assert time_to_quorum(tl, action, "node1") == 0.0
    assert time_to_quorum(tl, tl.record(K.ACTION, "harness", Action("again"), t=36.0),
                          "node1") is None


def test_time_to_heal_waits_for_every_member_and_whole_expected_votes(story):
    tl, marks = story
    assert time_to_heal(tl, marks["on"], ALL) == pytest.approx(16.0)
    assert time_to_heal(tl, marks["on"], ["node1", "node2"]) is None  # they see node3 too


def test_time_to_heal_counts_a_qdevice_vote_in_the_whole_expected_votes():
    """Two nodes and a QDevice: whole is 3 expected votes, not the node count."""
    tl = Timeline(Clock())
    on = tl.record(K.FAULT_POWER_ON, "harness", NodeFault("node1"), t=10.0)
    both = ("node1", "node2")
    for node in both:
        view(tl, K.MEMBERSHIP_CHANGED, node, 20.0 + len(node), both, expected=3)
    assert time_to_heal(tl, on, both) is None  # 3 is not two nodes' one vote each
    assert time_to_heal(tl, on, both, expected_votes=3) == pytest.approx(15.0)


def test_time_to_heal_is_none_when_a_node_never_heals(story):
    tl, marks = story
    tl2 = Timeline(Clock())
    for event in tl.events():
        if not (event.source == "node3" and event.t > 40):
            tl2.record(event.kind, event.source, event.payload, t=event.t)
    assert time_to_heal(tl2, marks["on"], ALL) is None


def test_observations_before_the_fault_do_not_count():
    tl = Timeline(Clock())
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 5.0, ("node1", "node2"))  # before the cut
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    assert time_to_detect(tl, cut, ["node1"]) is None
    view(tl, K.MEMBERSHIP_CHANGED, "node1", 10.0, ("node1", "node2"))  # same poll as the cut
    assert time_to_detect(tl, cut, ["node1"]) == 0.0


# -- recovery figures from the HA watcher's views and the probe ---------------------------
SID = "vm:100"


class HaViews:
    """Feeds each observing node's successive `ha-manager status` views through
    record_changes, as HaWatcher does: only what changed lands on the timeline."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.last: dict[str, HaStatus] = {}

    def show(self, t: float, source: str, services: dict[str, tuple[str, str]]) -> None:
        status = HaStatus(True, None, MasterLine("node1", "active", "-"), None, {},
                          {sid: ServiceLine(sid, node, state)
                           for sid, (node, state) in services.items()})
        record_changes(self.timeline, source, self.last.get(source), status, t)
        self.last[source] = status


def probe_up(tl, t, node, boot, guest=SID):
    tl.record(K.PROBE_UP, "probe", ProbeUp(guest, node, boot, guest, 1), t=t)


@pytest.fixture
def failover() -> tuple[Timeline, dict]:
    """node3 (not the master) runs vm:100 and ct:101 and loses power at 10 s; node1 and
    node2 watch HA fence both services and restart them elsewhere."""
    tl = Timeline(Clock())
    ha = HaViews(tl)
    for source in ("node1", "node2"):
        ha.show(0.0, source, {SID: ("node3", "started"), "ct:101": ("node3", "started")})
    probe_up(tl, 1.0, "node3", "a")
    probe_up(tl, 1.2, "node2", "x", guest="ct:101")
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    probe_up(tl, 10.3, "node3", "a")  # the probe reconnected once more before the cut bit
    ha.show(65.0, "node1", {SID: ("node3", "started"), "ct:101": ("node3", "fence")})
    ha.show(70.0, "node1", {SID: ("node3", "fence"), "ct:101": ("node3", "fence")})
    ha.show(70.5, "node2", {SID: ("node3", "fence"), "ct:101": ("node3", "fence")})
    ha.show(125.0, "node1", {SID: ("node3", "fence"), "ct:101": ("node2", "started")})
    ha.show(131.0, "node1", {SID: ("node3", "recovery"), "ct:101": ("node2", "started")})
    ha.show(131.5, "node2", {SID: ("node1", "started"), "ct:101": ("node2", "started")})
    ha.show(132.0, "node1", {SID: ("node1", "started"), "ct:101": ("node2", "started")})
    probe_up(tl, 134.0, "node1", "b")
    return tl, {"cut": cut}


def test_time_to_fence_is_the_first_view_showing_fence(failover):
    tl, marks = failover
    assert time_to_fence(tl, marks["cut"], SID) == (pytest.approx(60.0), True)
    assert time_to_fence(tl, marks["cut"], "ct:101") == (pytest.approx(55.0), True)


def test_time_to_fence_ack_is_when_the_service_leaves_fence(failover):
    tl, marks = failover
    assert time_to_fence_ack(tl, marks["cut"], SID) == pytest.approx(121.0)  # -> recovery
    assert time_to_fence_ack(tl, marks["cut"], "ct:101") == pytest.approx(115.0)  # -> node2


def test_time_to_restart_is_the_first_start_on_another_node(failover):
    tl, marks = failover
    assert time_to_restart(tl, marks["cut"], SID, away_from="node3") == (
        pytest.approx(121.5), "node1")
    assert time_to_restart(tl, marks["cut"], "ct:101", away_from="node3") == (
        pytest.approx(115.0), "node2")
    assert time_to_restart(tl, marks["cut"], SID, on="node2") is None


def test_time_to_recovery_is_the_first_answer_from_another_node(failover):
    tl, marks = failover
    assert time_to_recovery(tl, marks["cut"], SID, away_from="node3") == (
        pytest.approx(124.0), "node1")
    # without away_from, the old copy's answer just after the cut counts
    assert time_to_recovery(tl, marks["cut"], SID) == (pytest.approx(0.3), "node3")
    assert time_to_recovery(tl, marks["cut"], "ct:101", away_from="node3") is None


def test_a_fence_no_poll_caught_falls_back_to_the_acknowledgement():
    """At small timescales fence, acknowledgement and the new start share one CRM round:
    the views go straight from started on node3 to started on node1."""
    tl = Timeline(Clock())
    ha = HaViews(tl)
    ha.show(0.0, "node1", {SID: ("node3", "started")})
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    assert time_to_fence(tl, cut, SID) is None
    assert time_to_fence_ack(tl, cut, SID) is None
    ha.show(24.0, "node1", {SID: ("node1", "started")})
    assert time_to_fence_ack(tl, cut, SID) == pytest.approx(14.0)
    assert time_to_fence(tl, cut, SID) == (pytest.approx(14.0), False)
    assert time_to_restart(tl, cut, SID, away_from="node3") == (pytest.approx(14.0), "node1")


def test_recovery_figures_ignore_what_was_seen_before_the_cut():
    tl = Timeline(Clock())
    ha = HaViews(tl)
    # an earlier failover of the same service, node2 -> node3, all before the cut
    ha.show(0.0, "node1", {SID: ("node2", "started")})
    ha.show(2.0, "node1", {SID: ("node2", "fence")})
    ha.show(3.0, "node1", {SID: ("node2", "recovery")})
    ha.show(4.0, "node1", {SID: ("node3", "started")})
    probe_up(tl, 5.0, "node3", "a")
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node2"), t=10.0)
    assert time_to_fence(tl, cut, SID) is None
    assert time_to_fence_ack(tl, cut, SID) is None
    assert time_to_restart(tl, cut, SID, away_from="node2") is None
    assert time_to_recovery(tl, cut, SID, away_from="node2") is None


def test_a_service_moved_between_other_nodes_is_no_fence_ack_of_the_cut_node():
    tl = Timeline(Clock())
    ha = HaViews(tl)
    ha.show(0.0, "node1", {SID: ("node1", "started")})
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    ha.show(20.0, "node1", {SID: ("node1", "migrate")})
    ha.show(21.0, "node1", {SID: ("node2", "started")})
    assert time_to_fence_ack(tl, cut, SID) is None
    assert time_to_fence(tl, cut, SID) is None


def test_time_to_restart_on_a_given_node_and_away_from_one():
    tl = Timeline(Clock())
    ha = HaViews(tl)
    ha.show(0.0, "node1", {SID: ("node3", "started")})
    since = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    # node2's watcher answers for the first time after the cut: its stale first view
    ha.show(11.0, "node2", {SID: ("node3", "started")})
    ha.show(40.0, "node1", {SID: ("node2", "started")})
    ha.show(50.0, "node1", {SID: ("node2", "migrate")})
    ha.show(55.0, "node1", {SID: ("node1", "started")})
    assert time_to_restart(tl, since, SID) == (pytest.approx(1.0), "node3")
    assert time_to_restart(tl, since, SID, away_from="node3") == (pytest.approx(30.0),
                                                                  "node2")
    assert time_to_restart(tl, since, SID, on="node1") == (pytest.approx(45.0), "node1")
    assert time_to_restart(tl, since, "ct:101") is None


def test_metric_json_rounds_the_value():
    metric = Metric("quorum_story", "time_to_detect", 2.34567, {"node": "node3"})
    assert metric.to_json() == {"scenario": "quorum_story", "name": "time_to_detect",
                                "value_s": 2.346, "data": {"node": "node3"},
                                "window_s": None, "budget_s": None, "verdict": "measured"}


def test_a_metric_is_judged_against_its_window_and_budget():
    def judged(value, window=None, budget=None):
        return Metric("s", "time_to_recovery", value, {}, window, budget).verdict

    assert judged(130.0) == "measured"
    assert judged(130.0, (120.0, 151.0)) == "ok"
    assert judged(130.0, (120.0, 151.0), 240.0) == "ok"
    assert judged(119.0, (120.0, 151.0), 240.0) == "outside_window"
    assert judged(130.0, (120.0, 151.0), 120.0) == "over_budget"
    assert judged(160.0, (120.0, 151.0), 120.0) == "outside_window+over_budget"
    assert judged(160.0, None, 120.0) == "over_budget"


def test_a_judged_metric_round_trips_through_the_file(tmp_path):
    metrics = MetricsFile(tmp_path / "m.json", run="r")
    metric = Metric("story", "time_to_recovery", 14.2, {"node": "node2"}, (13.0, 21.0), 24.0)
    metrics.append(metric)
    assert metrics.read() == [metric]
    row = json.loads((tmp_path / "m.json").read_text())["metrics"][0]
    assert (row["window_s"], row["budget_s"], row["verdict"]) == ([13.0, 21.0], 24.0, "ok")


def test_metrics_file_round_trip(tmp_path):
    path = tmp_path / "reports" / "metrics.json"
    metrics = MetricsFile(path, run="run-a")
    assert metrics.read() == []
    first = Metric("story", "time_to_detect", 2.5, {"node": "node3", "resolution_s": 0.5})
    second = Metric("story", "time_to_heal", 16.0004)
    metrics.append(first)
    metrics.append(second)
    assert json.loads(path.read_text())["run"] == "run-a"
    assert metrics.read() == [first, Metric("story", "time_to_heal", 16.0)]
    assert metrics.read(this_run_only=True) == metrics.read()


def test_metrics_file_a_new_run_replaces_the_last_runs_figures(tmp_path):
    path = tmp_path / "metrics.json"
    MetricsFile(path, run="old").append(Metric("story", "time_to_detect", 9.0))
    new = MetricsFile(path, run="new")
    assert [m.value_s for m in new.read()] == [9.0]  # kept until the new run measures
    assert new.read(this_run_only=True) == []
    new.append(Metric("story", "time_to_detect", 3.0))
    assert [m.value_s for m in new.read()] == [3.0]
    assert MetricsFile(path, run="old").read(this_run_only=True) == []


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]"])
def test_metrics_file_tolerates_an_unreadable_file(tmp_path, content):
    path = tmp_path / "metrics.json"
    path.write_text(content)
    metrics = MetricsFile(path, run="r")
    assert metrics.read() == []
    metrics.append(Metric("s", "m", 1.0))
    assert [m.name for m in metrics.read()] == ["m"]


def test_metrics_file_append_creates_the_file(tmp_path):
    metrics = MetricsFile(tmp_path / "new" / "metrics.json")
    metrics.append(Metric("s", "m", 1.0))
    assert [m.name for m in MetricsFile(metrics.path).read()] == ["m"]


def test_record_observed_waits_for_the_watcher_and_keeps_a_zero(tmp_path):
    from harness.plugin import MetricsRecorder

    answers = iter([None, None, 0.0])
    recorder = MetricsRecorder("story", MetricsFile(tmp_path / "m.json", run="r"))
    metric = recorder.record_observed("time_to_detect", lambda: next(answers), timeout_s=5)
    assert metric == Metric("story", "time_to_detect", 0.0)
    assert MetricsFile(tmp_path / "m.json", run="r").read() == [metric]


def test_record_observed_times_out_saying_what_was_missing(tmp_path):
    from harness.errors import WaitTimeout
    from harness.plugin import MetricsRecorder

    recorder = MetricsRecorder("story", MetricsFile(tmp_path / "m.json", run="r"))
    with pytest.raises(WaitTimeout, match="observe time_to_heal.*not on the timeline"):
        recorder.record_observed("time_to_heal", lambda: None, timeout_s=0.2)
    assert not (tmp_path / "m.json").exists()


def test_the_restart_is_issued_when_ha_shows_the_service_starting_on_the_target():
    """`ha-manager status` says `starting` until the LRM reported the guest running (a
    master round later): the restart was issued at the first `starting`."""
    tl = Timeline(Clock())
    ha = HaViews(tl)
    ha.show(0.0, "node2", {SID: ("node1", "started")})
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node1"), t=10.0)
    ha.show(70.0, "node2", {SID: ("node1", "fence")})
    ha.show(130.0, "node2", {SID: ("node3", "starting")})
    ha.show(140.0, "node2", {SID: ("node3", "started")})
    assert time_to_restart(tl, cut, SID, away_from="node1") == (pytest.approx(120.0), "node3")
