"""harness.invariants on hand-made timelines and write logs."""

from __future__ import annotations

import pytest

from harness.clock import Clock
from harness.events import (
    HaServiceState,
    InvariantBroken,
    MembershipChanged,
    Placement,
    ProbeUp,
    QuorumView,
)
from harness.invariants import (
    InvariantChecker,
    doubled_guest,
    lost_writes,
    ran_after_fence,
    started_without_quorum,
)
from harness.timeline import EventKind as K
from harness.timeline import Timeline
from harness.writelog import Record, analyse


def log_of(*runs: tuple[str, str, int, int, int]):
    """runs: (boot, node, first seq, count, start ns); records 100 ms apart."""
    records = [Record(seq, node, boot, start + i * 100_000_000)
               for boot, node, first, count, start in runs
               for i, seq in enumerate(range(first, first + count))]
    return analyse(sorted(records, key=lambda r: r.mono_ns))


def up(tl, t, node, boot, guest="ct:100"):
    tl.record(K.PROBE_UP, "probe", ProbeUp(guest, node, boot, guest, 1), t=t)


def quorum(tl, t, node, quorate):
    tl.record(K.QUORUM_REGAINED if quorate else K.QUORUM_LOST, node,
              QuorumView(quorate, (node,), 3, 1), t=t)


def test_one_guest_after_another_is_fine_and_two_at_once_is_doubled():
    sequential = log_of(("a", "node1", 1, 10, 0), ("b", "node2", 11, 10, 5_000_000_000))
    assert doubled_guest("ct:100", sequential) == []
    concurrent = log_of(("a", "node1", 1, 10, 0), ("b", "node2", 5, 10, 500_000_000))
    (violation,) = doubled_guest("ct:100", concurrent)
    assert violation.invariant == "doubled_guest" and "a and b" in violation.detail


def test_an_acknowledged_write_missing_from_the_disk_is_lost():
    log = log_of(("a", "node1", 1, 10, 0))
    assert lost_writes("ct:100", log, [("a", 3), ("a", 10)]) == []
    (violation,) = lost_writes("ct:100", log, [("a", 3), ("a", 12), ("b", 1)])
    assert violation.invariant == "lost_write" and "2 acknowledged writes" in violation.detail


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        super().__init__()
        self.fixed = now

    def now(self) -> float:
        return self.fixed


def test_a_new_boot_on_an_inquorate_node_is_reported_with_slack_for_polling():
    tl = Timeline(FixedClock(40.0))
    up(tl, 1.0, "node1", "a")  # the setup's boot
    tl.record(K.MEMBERSHIP_CHANGED, "node3",
              MembershipChanged(True, ("node1", "node2", "node3"), 3, 3, first_view=True), t=0.0)
    quorum(tl, 29.5, "node3", False)
    up(tl, 30.0, "node3", "b")
    (violation,) = started_without_quorum(tl, "ct:100", slack_s=2.0)
    assert "node3" in violation.detail and "boot b" in violation.detail
    # the regain was seen 1 s after the start: it may have come first, no violation
    tl2 = Timeline(FixedClock(40.0))
    up(tl2, 1.0, "node1", "a")
    quorum(tl2, 20.0, "node3", False)
    up(tl2, 30.0, "node3", "b")
    quorum(tl2, 31.0, "node3", True)
    assert started_without_quorum(tl2, "ct:100", slack_s=2.0) == []
    # not judged before the slack has passed
    tl3 = Timeline(FixedClock(31.0))
    up(tl3, 1.0, "node1", "a")
    quorum(tl3, 20.0, "node3", False)
    up(tl3, 30.0, "node3", "b")
    assert started_without_quorum(tl3, "ct:100", slack_s=2.0) == []


def fence(tl, t, node):
    tl.record(K.HA_SERVICE_STATE, "node2",
              HaServiceState("ct:100", node, "recovery", Placement(node, "fence")), t=t)


def test_a_boot_that_survived_its_nodes_fence_is_reported_but_a_new_boot_is_not():
    tl = Timeline(Clock())
    up(tl, 1.0, "node1", "a")
    fence(tl, 50.0, "node1")
    up(tl, 52.0, "node2", "b")  # recovered on node2
    up(tl, 60.0, "node1", "a")  # the old copy on node1 is still there
    (violation,) = ran_after_fence(tl, "ct:100", slack_s=2.0)
    assert "boot a answered from node1" in violation.detail
    assert "fenced at 50.0" in violation.detail
    tl2 = Timeline(Clock())
    up(tl2, 1.0, "node1", "a")
    fence(tl2, 50.0, "node1")
    up(tl2, 52.0, "node2", "b")
    up(tl2, 90.0, "node1", "c")  # node1 rejoined and HA moved the guest back: a new boot
    assert ran_after_fence(tl2, "ct:100", slack_s=2.0) == []


def test_the_checker_records_each_violation_once_and_fails_the_scenario():
    tl = Timeline(Clock())
    doubled = log_of(("a", "node1", 1, 10, 0), ("b", "node2", 5, 10, 500_000_000))
    checker = InvariantChecker(tl, "ct:100", read_log=lambda: doubled,
                               acknowledged=lambda: [], interval_s=0.01)
    with checker:
        pass
    assert len(checker.check()) == 0  # nothing new on a second look
    assert [e.payload_of(InvariantBroken).invariant
            for e in tl.events(K.INVARIANT_BROKEN)] == ["doubled_guest"]
    with pytest.raises(AssertionError, match="doubled_guest"):
        checker.assert_ok()


def test_the_checker_passes_a_clean_run():
    tl = Timeline(Clock())
    clean = log_of(("a", "node1", 1, 10, 0))
    checker = InvariantChecker(tl, "ct:100", read_log=lambda: clean,
                               acknowledged=lambda: [("a", 5)], interval_s=0.01)
    with checker:
        pass
    checker.assert_ok()
    assert tl.events(K.INVARIANT_BROKEN) == []


def test_take_unreported_hands_out_each_violation_once():
    tl = Timeline(Clock())
    log = {"report": log_of(("a", "node1", 1, 10, 0))}
    acknowledged: list[tuple[str, int]] = []
    checker = InvariantChecker(tl, "ct:100", read_log=lambda: log["report"],
                               acknowledged=lambda: acknowledged)
    checker.check()
    assert checker.take_unreported() == []
    log["report"] = log_of(("a", "node1", 1, 10, 0), ("b", "node2", 5, 10, 500_000_000))
    checker.check()
    (doubled,) = checker.take_unreported()
    assert doubled.invariant == "doubled_guest"
    checker.check()  # still doubled: not new, not handed out again
    assert checker.take_unreported() == []
    acknowledged.append(("a", 99))
    checker.check()
    (lost,) = checker.take_unreported()
    assert lost.invariant == "lost_write"
    assert checker.take_unreported() == []
    assert checker.violations == [doubled, lost]  # all of them are still kept


def test_a_write_acknowledged_while_the_log_is_read_is_not_taken_for_lost():
    """The guest keeps writing: an answer heard while the log is being read may be about
    a record made after the read. Only what was acknowledged before it must be there."""
    tl = Timeline(Clock())
    acked = [("a", 10)]

    def read_log():  # the guest writes record 11 and the probe hears of it meanwhile
        report = log_of(("a", "node1", 1, 10, 0))
        acked[0] = ("a", 11)
        return report

    checker = InvariantChecker(tl, "ct:100", read_log=read_log, acknowledged=lambda: acked)
    assert checker.check() == []
    acked[0] = ("a", 12)  # acknowledged before the next read, and not on the disk
    assert [v.invariant for v in checker.check()] == ["lost_write"]


def test_a_short_read_that_the_next_read_contradicts_is_noted_not_counted():
    """The log only grows: a read lacking acknowledged writes that a read right after
    holds was stale (it came through a node's mount at a bad moment); the writes were on
    the disk. A write missing from both reads is lost, and the message names the node."""
    from dataclasses import replace

    from harness.events import Note

    tl = Timeline(Clock())
    full = replace(log_of(("a", "node1", 1, 20, 0)), read_on="node3")
    stale = replace(log_of(("a", "node1", 1, 10, 0)), read_on="node2")
    reads = [stale, full]
    checker = InvariantChecker(tl, "ct:100", read_log=lambda: reads.pop(0),
                               acknowledged=lambda: [("a", 15)])
    assert checker.check() == []
    (note,) = [e.payload_of(Note).text for e in tl.events(K.NOTE)]
    assert "short read of ct:100's disk" in note and "a read on node3 right after" in note
    assert "the disk holds 10 records as read on node2" in note
    reads[:] = [stale, stale]
    (lost,) = checker.check()
    assert lost.invariant == "lost_write" and "read on node2" in lost.detail
