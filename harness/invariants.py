"""Safety invariants of HA, checked from what the harness saw (pve-model.md §6, §7.7).

- a guest never runs twice at once (its write log shows two boots writing concurrently,
  or a sequence number written twice);
- a partition without quorum never starts a guest (a new boot answering from a node that
  was not quorate then, as that node's own `pvecm status` said, and said still a little
  later);
- no guest runs on a node after that node was fenced (the probe hears a boot from there,
  one that ran before HA acknowledged the fence, after it);
- no acknowledged write is lost (every record a client was told about is on the disk).

Each check is a pure function of the timeline and the guest's write log, so a scenario can
run them continuously (`InvariantChecker`) and a self-test can prove each one fires.
Observation lags (watcher polls, probe interval) are allowed for with `slack_s`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.events import InvariantBroken, Note, ProbeUp, QuorumView
from harness.ha_watcher import taken_from
from harness.timeline import Event, EventKind, Timeline
from harness.writelog import LogReport


@dataclass(frozen=True)
class Violation:
    invariant: str  # doubled_guest, started_without_quorum, ran_after_fence, lost_write
    guest: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant} ({self.guest}): {self.detail}"


def doubled_guest(guest: str, log: LogReport) -> list[Violation]:
    found = [Violation("doubled_guest", guest,
                       f"boots {a} and {b} wrote at the same time") for a, b in log.overlaps]
    if log.duplicates and not log.overlaps:
        found.append(Violation("doubled_guest", guest,
                               f"sequence numbers written twice: {log.duplicates[:5]}"))
    return found


def lost_writes(guest: str, log: LogReport, acknowledged: Iterable[tuple[str, int]]
                ) -> list[Violation]:
    """acknowledged: (boot id, seq) pairs a client was told had been written."""
    on_disk = {(b.boot_id, s) for b in log.boots for s in range(b.first_seq, b.last_seq + 1)}
    missing = sorted({a for a in acknowledged if a not in on_disk}, key=lambda a: a[1])
    if not missing:
        return []
    boots = ", ".join(f"{b.boot_id}@{b.node} {b.first_seq}-{b.last_seq}" for b in log.boots)
    return [Violation("lost_write", guest, f"{len(missing)} acknowledged writes are not on "
                      f"the disk, first: boot {missing[0][0]} seq {missing[0][1]} (the disk "
                      f"holds {log.records} records as read{_on(log)}: {boots or 'none'})")]


def _on(log: LogReport) -> str:
    return f" on {log.read_on}" if log.read_on else ""


def _quorate_at(timeline: Timeline, node: str, t: float) -> bool | None:
    """The node's own latest view of its quorum at t (None: never observed)."""
    state = None
    for event in timeline.events(source=node):
        if event.t > t:
            break
        if isinstance(event.payload, QuorumView):
            state = event.payload.quorate
    return state


def _boot_starts(timeline: Timeline, guest: str) -> list[Event]:
    """PROBE_UP events that show a new boot of the guest (a start, not a blip)."""
    starts, boots = [], set()
    for event in timeline.events(EventKind.PROBE_UP):
        up = event.payload
        if not isinstance(up, ProbeUp) or up.guest != guest:
            continue
        if up.boot_id not in boots:
            boots.add(up.boot_id)
            starts.append(event)
    return starts


def started_without_quorum(timeline: Timeline, guest: str, slack_s: float
                           ) -> list[Violation]:
    """A new boot heard from a node whose own view said "not quorate" then, and still
    said so slack_s later (a quorum regained just before the start, but seen by the
    watcher only after it, is no violation). Judged once the timeline passed t + slack_s."""
    found = []
    now = timeline.clock.now()
    for start in _boot_starts(timeline, guest)[1:]:  # the first boot is the setup's
        up = start.payload_of(ProbeUp)
        node = up.node
        if now < start.t + slack_s:
            continue
        if _quorate_at(timeline, node, start.t) is False and \
                _quorate_at(timeline, node, start.t + slack_s) is False:
            found.append(Violation("started_without_quorum", guest,
                                   f"boot {up.boot_id} answered from {node} "
                                   f"at {start.t:.1f} s while {node} was not quorate"))
    return found


def fence_acknowledged(timeline: Timeline) -> dict[str, float]:
    """node -> when a node's HA view first showed one of its services taken from it by
    recovery: leaving `fence` or `recovery` for another node, or `started` elsewhere
    straight away (fence, recovery and the new start can fall in one CRM round, between
    two polls)."""
    acked: dict[str, float] = {}
    for event in timeline.events(EventKind.HA_SERVICE_STATE):
        node = taken_from(event)
        if node is not None:
            acked.setdefault(node, event.t)
    return acked


def ran_after_fence(timeline: Timeline, guest: str, slack_s: float) -> list[Violation]:
    """A boot that ran on a node before HA fenced that node, heard again after the fence
    was acknowledged: it survived the fence (its node should have reset itself). A new
    boot on the node once it has rejoined is HA's to start and is fine."""
    found = []
    acked = fence_acknowledged(timeline)
    ups = [(e.t, p) for e in timeline.events(EventKind.PROBE_UP)
           if isinstance(p := e.payload, ProbeUp) and p.guest == guest]
    for node, fenced_at in acked.items():
        before = {up.boot_id for t, up in ups if up.node == node and t < fenced_at}
        for t, up in ups:
            if up.node == node and t > fenced_at + slack_s and up.boot_id in before:
                found.append(Violation("ran_after_fence", guest,
                                       f"boot {up.boot_id} answered from "
                                       f"{node} at {t:.1f} s, after {node} was fenced "
                                       f"at {fenced_at:.1f} s"))
    return found


class InvariantChecker:
    """Runs every check every interval in the background; records each new violation
    on the timeline once (INVARIANT_BROKEN) and keeps them in `violations`."""

    def __init__(self, timeline: Timeline, guest: str, *,
                 read_log: Callable[[], LogReport | None],
                 acknowledged: Callable[[], Iterable[tuple[str, int]]],
                 slack_s: float = 2.0, interval_s: float = 1.0) -> None:
        self.timeline, self.guest = timeline, guest
        self.read_log, self.acknowledged = read_log, acknowledged
        self.slack_s, self.interval_s = slack_s, interval_s
        self.violations: list[Violation] = []
        self._reported = 0  # violations[:_reported] were handed out by take_unreported
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> list[Violation]:
        """One pass; returns the violations new in this pass."""
        found = started_without_quorum(self.timeline, self.guest, self.slack_s)
        found += ran_after_fence(self.timeline, self.guest, self.slack_s)
        # what was acknowledged before the log is read must be in it; an answer heard
        # while the log is being read may be about a write made after the read
        acknowledged = list(self.acknowledged())
        log = self.read_log()
        if log is not None:
            found += doubled_guest(self.guest, log)
            found += self._lost_writes(log, acknowledged)
        new = [v for v in found if v not in self.violations]
        for violation in new:
            self.violations.append(violation)
            self.timeline.record(EventKind.INVARIANT_BROKEN, "harness", InvariantBroken(
                violation.invariant, self.guest, violation.detail))
        return new

    def _lost_writes(self, log: LogReport, acknowledged: list[tuple[str, int]]
                     ) -> list[Violation]:
        """Lost writes, confirmed by a second read. The log only grows (the guest appends,
        and a copy started later continues after its last record), so a write that a
        later read holds was on the disk all along: the first read was short (cut or
        stale) and is said on the timeline, not counted. A write really lost is missing
        from every read. (A read cut by its node's reset is refused by harness/ssh.py.)"""
        lost = lost_writes(self.guest, log, acknowledged)
        if not lost:
            return []
        again = self.read_log()
        if again is None or lost_writes(self.guest, again, acknowledged):
            return lost
        self.timeline.record(EventKind.NOTE, "harness", Note(
            f"short read of {self.guest}'s disk, not counted: a read{_on(again)} right "
            f"after held what this one lacked: {lost[0].detail}"))
        return []

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()

    def start(self) -> InvariantChecker:
        self._thread = threading.Thread(target=self._run, name="invariants", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self.check()  # a last look with everything observed

    def __enter__(self) -> InvariantChecker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take_unreported(self) -> list[Violation]:
        """The violations found since the last call (each is handed out once)."""
        new = self.violations[self._reported:]
        self._reported += len(new)
        return new

    def assert_ok(self) -> None:
        if self.violations:
            raise AssertionError("safety invariants broken:\n" +
                                 "\n".join(f"  {v}" for v in self.violations))
