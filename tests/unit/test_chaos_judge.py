"""The chaos judge on hand-made timelines: each kind of finding fires where it must and
stays quiet where PVE behaved as designed; shrinking and soaking on fake runs."""

from __future__ import annotations

from harness.chaos.judge import SAFETY, UNEXPLAINED, WINDOW, Finding, Verdict, judge
from harness.chaos.predict import HARMLESS, RECOVERED, Move, Prediction
from harness.chaos.runner import Ran, RunRecord
from harness.chaos.schedule import Item, Schedule
from harness.chaos.session import Outcome
from harness.chaos.shrink import shrink
from harness.chaos.soak import soak
from harness.clock import Clock
from harness.events import HaServiceState, InvariantBroken, Placement
from harness.expectations import Window
from harness.timeline import EventKind, Timeline
from harness.timescale import Timescale

SIDS = ("ct:100", "ct:101")
W = Window(10.0, 20.0, "test window")


def item(n: int, kind: str = "power_cut", nodes=("node1",), at: float = 0.0) -> Item:
    return Item(n, at, kind, "guest-node", 30.0, 10.0, 0, tuple(nodes))


def schedule(items) -> Schedule:
    return Schedule(1, ("node1", "node2", "node3"), 0.1, 600.0, 1, False, 2,
                    {"power_cut": 1.0}, tuple(items))


def record(*ran: Ran) -> RunRecord:
    return RunRecord(schedule([r.item for r in ran]), SIDS, 0.0, 200.0, list(ran))


def cut(begin: float = 5.0, calm: float = 60.0) -> Ran:
    prediction = Prediction(RECOVERED, "test", (Move("ct:100", "node1", "node2", W),),
                            ("node1",))
    return Ran(item(0), begin, begin + 30, calm, "node3", prediction)


def moved(tl: Timeline, t: float, sid: str, frm: str, to: str, source: str = "node3",
          state: str = "started") -> None:
    tl.record(EventKind.HA_SERVICE_STATE, source,
              HaServiceState(sid, to, state, Placement(frm, "started")), t=t)


def timeline() -> Timeline:
    return Timeline(Clock(Timescale(0.1)))


def test_a_recovery_inside_its_window_is_no_finding():
    tl = timeline()
    moved(tl, 20.0, "ct:100", "node1", "node2")
    v = judge(tl.events(), record(cut()))
    assert v.ok, v.findings
    assert [(r.sid, r.to, r.value_s, r.in_window) for r in v.recoveries] == \
        [("ct:100", "node2", 15.0, True)]


def test_a_late_recovery_and_a_missing_one_are_window_findings():
    tl = timeline()
    moved(tl, 40.0, "ct:100", "node1", "node3")
    v = judge(tl.events(), record(cut()))
    assert [f.kind for f in v.findings] == [WINDOW]
    assert "35.0 s after power_cut of node1, outside [10.0, 20.0] s" in v.findings[0].text
    assert "PVE's basic scheduler would pick node2" in v.notes[0]
    assert [f.kind for f in judge([], record(cut())).findings] == [WINDOW]


def test_a_view_from_the_faulted_node_is_not_taken_for_the_recovery():
    tl = timeline()
    moved(tl, 12.0, "ct:100", "node1", "node2", source="node1")  # stale, cut-off view
    moved(tl, 18.0, "ct:100", "node1", "node2")
    v = judge(tl.events(), record(cut()))
    assert v.recoveries[0].value_s == 13.0


def test_moves_and_fences_no_fault_explains_are_findings():
    tl = timeline()
    moved(tl, 20.0, "ct:100", "node1", "node2")
    moved(tl, 90.0, "ct:101", "node3", "node1")  # after the calm: nothing explains it
    moved(tl, 95.0, "ct:101", "node1", "node1", state="fence")
    v = judge(tl.events(), record(cut()))
    assert [f.kind for f in v.findings] == [UNEXPLAINED, UNEXPLAINED]
    assert "ct:101 moved node3 -> node1" in v.findings[0].text
    assert "ct:101 in fence on node1" in v.findings[1].text


def test_a_harmless_fault_does_not_explain_a_fence_on_its_node():
    tl = timeline()
    harmless = Ran(item(0, "degrade"), 5.0, 20.0, 30.0, "node3", Prediction(HARMLESS, "t"))
    moved(tl, 10.0, "ct:100", "node1", "node1", state="fence")
    v = judge(tl.events(), record(harmless))
    assert [f.kind for f in v.findings] == [UNEXPLAINED]


def test_a_broken_invariant_is_a_safety_finding_of_the_fault_before_it():
    tl = timeline()
    moved(tl, 20.0, "ct:100", "node1", "node2")
    tl.record(EventKind.INVARIANT_BROKEN, "harness",
              InvariantBroken("doubled_guest", "ct:100", "two boots wrote at once"), t=21.0)
    tl.record(EventKind.INVARIANT_BROKEN, "harness",
              InvariantBroken("doubled_guest", "ct:999", "another run's guest"), t=22.0)
    v = judge(tl.events(), record(cut()))
    assert [(f.kind, f.item) for f in v.findings] == [(SAFETY, 0)]
    assert v.safety and not v.ok


def fake_verdict(items) -> Verdict:
    """Fails (safety) when the isolation of node2 is among the items."""
    bad = [i for i in items if i.kind == "isolate" and i.nodes == ("node2",)]
    v = Verdict()
    if bad:
        v.findings.append(Finding(SAFETY, 1.0, bad[0].index, "doubled_guest"))
    return v


def test_shrinking_keeps_the_culprit_drops_the_rest_and_retimes():
    items = [item(0, "degrade"), item(1, "power_cut", ("node3",)),
             item(2, "isolate", ("node2",)), item(3, "clock_step")]
    s = schedule([i.__class__(**{**i.__dict__, "at_s": 40.0 * n}) for n, i in
                  enumerate(items)])
    runs = []

    def run(candidate):
        runs.append(len(candidate.items))
        return fake_verdict(candidate.items)

    result = shrink(s, fake_verdict(s.items), run, max_attempts=5)
    assert [(i.kind, i.nodes, i.at_s) for i in result.shortest.items] == \
        [("isolate", ("node2",), 0.0)]
    assert result.shortest.origin == "shrunk" and runs == [1]


def test_shrinking_a_failure_that_needs_two_faults_keeps_both_in_order():
    items = [item(0, "degrade"), item(1, "power_cut", ("node3",), 40.0),
             item(2, "clock_step", at=80.0), item(3, "isolate", ("node2",), 120.0)]
    s = schedule(items)

    def needs_cut_first(candidate) -> Verdict:
        kinds = [i.kind for i in candidate.items]
        return fake_verdict(candidate.items) if "power_cut" in kinds else Verdict()

    result = shrink(s, fake_verdict(s.items), lambda c: needs_cut_first(c), max_attempts=8)
    assert [i.kind for i in result.shortest.items] == ["power_cut", "isolate"]
    assert result.shortest.items[1].at_s == 40.0  # back to back: hold 30 + gap 10
    assert result.attempts == [(1, False), (3, True), (2, False), (2, True)]


def test_a_soak_stops_at_the_first_safety_finding_unless_told_to_go_on():
    clock = [0.0]
    planned = []

    def plan(k, left):
        planned.append(k)
        return schedule([item(0, "isolate", ("node2",) if k == 1 else ("node1",))])

    def run(s) -> Outcome:
        clock[0] += 100.0
        rec = RunRecord(s, SIDS, 0.0, 1.0, [Ran(s.items[0], 0.0, 1.0, 2.0)])
        return Outcome(s, rec, fake_verdict(s.items), [])

    summary = soak(run, plan, seconds=1000, now=lambda: clock[0])
    assert planned == [0, 1] and "safety finding" in summary.stopped
    assert summary.rows()[0][:3] == ("isolate", "2", "0")
    clock[0], planned[:] = 0.0, []
    summary = soak(run, plan, seconds=1000, now=lambda: clock[0], go_on=True)
    assert len(summary.outcomes) == 10 and not summary.stopped
    assert "findings: safety 1" in summary.table()


def isolation(begin: float = 5.0, calm: float = 60.0) -> Ran:
    """An isolation of node1 at a timescale where the design gives no window."""
    prediction = Prediction(RECOVERED, "test", (Move("ct:100", "node1", "node2", None),),
                            ("node1",))
    return Ran(item(0, "isolate"), begin, begin + 23, calm, "node1", prediction)


def test_a_node_back_before_its_fence_keeps_its_guest_without_a_window_finding():
    # node1 rejoined after its reset before the new master's fresh fence delay ran out:
    # PVE keeps ct:100 there (NodeStatus.pm); with no window this is a note, not a finding
    tl = timeline()
    # the watchers record changes: the last view of ct:100 came before the fault
    tl.record(EventKind.HA_SERVICE_STATE, "node2",
              HaServiceState("ct:100", "node1", "started", None), t=2.0)
    v = judge(tl.events(), record(isolation()))
    assert v.ok, v.findings
    assert "ct:100 stayed on node1" in v.notes[0]
    assert v.recoveries == []


def test_a_guest_fenced_but_never_recovered_is_still_a_finding():
    tl = timeline()
    tl.record(EventKind.HA_SERVICE_STATE, "node2",
              HaServiceState("ct:100", "node1", "fence", Placement("node1", "started")),
              t=25.0)
    tl.record(EventKind.HA_SERVICE_STATE, "node2",
              HaServiceState("ct:100", "node1", "started", Placement("node1", "fence")),
              t=40.0)
    v = judge(tl.events(), record(isolation()))
    assert [f.kind for f in v.findings] == [WINDOW]
    assert "never started elsewhere" in v.findings[0].text


def test_a_windowed_move_never_made_stays_a_finding_even_if_the_node_kept_it():
    tl = timeline()
    moved(tl, 40.0, "ct:100", "node1", "node1", source="node2")
    v = judge(tl.events(), record(cut()))
    assert [f.kind for f in v.findings] == [WINDOW]


def test_a_move_after_the_cluster_was_whole_again_is_not_this_faults_recovery():
    # #9 of seed 1: the isolated master stayed master of ct:100 (back before its fence);
    # ct:100 moved only at a later fault, 169 s on, which was once taken for #9's recovery
    tl = timeline()
    tl.record(EventKind.HA_SERVICE_STATE, "node1",
              HaServiceState("ct:100", "node1", "started", Placement("node1", "started")),
              t=35.0)
    moved(tl, 174.0, "ct:100", "node1", "node3")
    later = Ran(item(1, "isolate", at=150.0), 150.0, 173.0, 190.0, "node1",
                Prediction(RECOVERED, "test", (Move("ct:100", "node1", "node3", None),),
                           ("node1",)))
    v = judge(tl.events(), record(isolation(calm=60.0), later))
    assert v.ok, v.findings
    assert "#0: ct:100 stayed on node1" in v.notes[0]
    assert [(r.item, r.to, r.value_s) for r in v.recoveries] == [(1, "node3", 24.0)]


def test_a_recovery_is_the_start_issued_not_the_lrm_done():
    # seed 200 at timescale 1: the master issued both starts in one round; ct:102's view
    # turned `started` only after node2's LRM (10 s loop) ran it and the master saw it,
    # 1.1 s past the window of the start issued. `starting` on the target is the issue.
    tl = timeline()
    moved(tl, 19.0, "ct:100", "node1", "node2", state="starting")
    moved(tl, 29.0, "ct:100", "node2", "node2")
    v = judge(tl.events(), record(cut()))
    assert v.ok, v.findings
    assert [(r.to, r.value_s) for r in v.recoveries] == [("node2", 14.0)]
