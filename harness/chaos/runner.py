"""Runs a chaos schedule on a lab through the fault verbs (harness/faults.py), one fault
at a time or several, as the schedule says; resolves each role when its fault begins,
records what PVE's design predicts for it, and ends it after its hold.

Before a fault begins on a cluster with no fault in force, the runner waits (bounded)
until the cluster is whole again: every node powered, quorate with every member, a CRM
master active, every LRM reporting, every guest of the run started and answering. A
calm that comes later than the schedule planned shifts the rest of the schedule by as
much (the order and the gaps stay). Every step is an INFO line on ``pvechaos.chaos``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from harness import waits
from harness.chaos import roles
from harness.chaos.predict import Prediction, State, predict
from harness.chaos.schedule import NODE_LOSING, Item, Schedule
from harness.errors import PvechaosError, WaitTimeout
from harness.events import Note
from harness.expectations import ClusterConstants
from harness.faults import Fault, FaultInjector
from harness.guest_fleet import GuestFleet
from harness.timeline import EventKind, Timeline
from harness.waits import NotYet, wait_until

log = logging.getLogger("pvechaos.chaos")

CALM_TIMEOUT_S = 300.0  # default bound on the wait for a whole cluster between faults
MAX_SLEEP_S = 1.0  # the runner sleeps in steps this long towards a planned time


@dataclass
class Ran:
    """One item as it ran: its nodes (resolved), when it began and ended, when the
    cluster was whole again after it (``calm_t``), and what the design predicted."""

    item: Item
    begin_t: float | None = None
    end_t: float | None = None
    calm_t: float | None = None
    master: str | None = None  # the CRM master when it began
    prediction: Prediction | None = None
    skipped: str = ""  # why it did not run (no node fitted its role)
    drift: str = ""  # a replayed item's nodes no longer fit its role
    error: str = ""  # the fault verb failed
    faults: list[Fault] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, object]:
        return {"index": self.item.index, "kind": self.item.kind, "role": self.item.role,
                "nodes": list(self.item.nodes), "begin_t": self.begin_t,
                "end_t": self.end_t, "calm_t": self.calm_t, "master": self.master,
                "prediction": self.prediction.to_json() if self.prediction else None,
                "skipped": self.skipped, "drift": self.drift, "error": self.error}


@dataclass
class RunRecord:
    schedule: Schedule
    sids: tuple[str, ...]
    start_t: float
    end_t: float | None = None
    ran: list[Ran] = field(default_factory=list)
    heal_problem: str = ""  # the cluster was not whole at the end: what was seen

    def as_run(self) -> Schedule:
        """The schedule with every fault that ran aimed at the nodes it hit: replaying it
        repeats the same faults, in the same order, on the same nodes. Items keep their
        index (a finding names it); one that did not run is left out."""
        return self.schedule.with_items([r.item for r in self.ran if r.begin_t is not None],
                                        "as-run")

    def to_json(self) -> dict[str, object]:
        return {"seed": self.schedule.seed, "sids": list(self.sids), "start_t": self.start_t,
                "end_t": self.end_t, "heal_problem": self.heal_problem,
                "items": [r.to_json() for r in self.ran]}


class ChaosRunner:
    def __init__(self, faults: FaultInjector, fleet: GuestFleet, timeline: Timeline,
                 constants: ClusterConstants, *, calm_timeout_s: float = CALM_TIMEOUT_S
                 ) -> None:
        self.faults, self.fleet, self.timeline, self.c = faults, fleet, timeline, constants
        self.cluster = faults.cluster
        self.calm_timeout_s = calm_timeout_s

    # -- the cluster whole ----------------------------------------------------------
    def calm(self) -> bool | NotYet:
        """One look: is the cluster whole, with every guest started and answering?"""
        lab, names = self.cluster.lab, sorted(self.cluster.names)
        off = [n for n in names if not lab.is_powered(n)]
        if off:
            return NotYet(f"powered off: {', '.join(off)}")
        for name in names:
            view = self.cluster.whole_view(name)
            if isinstance(view, NotYet):
                return view
        ha = self.fleet.ha_status()
        if ha.master is None or ha.master.status != "active":
            return NotYet(f"CRM master: {ha.master}")
        stale = ha.stale_lrms(names)
        if stale:
            return NotYet(f"LRMs not reporting: {stale}")
        placed = {sid: ha.services.get(sid) for sid in self.fleet.sids}
        unstarted = {sid: line.state if line else None for sid, line in placed.items()
                     if line is None or line.state != "started"}
        if unstarted:
            return NotYet(f"not started: {unstarted}")
        silent = [m.sid for m in self.fleet.members if m.probe.current is None]
        return not silent or NotYet(f"not answering: {', '.join(silent)}")

    def wait_calm(self, what: str) -> float:
        wait_until(what, self.calm, timeout_s=self.calm_timeout_s, interval_s=1.0)
        return self.timeline.clock.now()

    def state(self) -> State:
        ha = self.fleet.ha_status()
        placements = {sid: line.node for sid, line in ha.services.items()
                      if sid in self.fleet.sids and line.node is not None}
        return State(tuple(sorted(self.cluster.names)),
                     ha.master.node if ha.master else None, placements)

    # -- the run --------------------------------------------------------------------
    def run(self, schedule: Schedule) -> RunRecord:
        clock = self.timeline.clock
        record = RunRecord(schedule, self.fleet.sids, clock.now())
        self._note(f"chaos schedule begins: seed {schedule.seed}, {len(schedule.items)} "
                   f"faults, {schedule.origin}")
        start = self.wait_calm("the cluster to be whole before the schedule")
        shift = start - record.start_t
        pending = list(schedule.items)
        active: list[tuple[float, Ran]] = []  # (end due, ran)
        while pending or active:
            begin_due = record.start_t + shift + pending[0].at_s if pending else float("inf")
            end_due = min((due for due, _ in active), default=float("inf"))
            if end_due <= begin_due:
                due, ran = min(active, key=lambda a: a[0])
                active.remove((due, ran))
                self._sleep_until(due, f"chaos #{ran.item.index} {ran.item.kind} on "
                                       f"{','.join(ran.item.nodes)} held")
                self._end(ran)
                if not active:
                    calm = self._calm_after(ran, record)
                    if calm is None:  # not whole again: the rest of the schedule waits
                        self._note(f"chaos schedule stopped: the cluster is not whole "
                                   f"({record.heal_problem}); {len(pending)} faults not run")
                        break
                    for r in record.ran:
                        if r.calm_t is None and r.end_t is not None:
                            r.calm_t = calm
                    if pending and calm > begin_due:
                        shift += calm - begin_due
                continue
            item = pending.pop(0)
            self._sleep_until(begin_due, f"chaos #{item.index} {item.kind} due")
            ran = self._begin(item, [r for _, r in active], len(record.ran), schedule)
            record.ran.append(ran)
            if ran.begin_t is not None:
                active.append((ran.begin_t + item.hold_s, ran))
        record.end_t = clock.now()
        self._note("chaos schedule ends")
        return record

    def _calm_after(self, ran: Ran, record: RunRecord) -> float | None:
        try:
            return self.wait_calm(f"the cluster to be whole again after fault "
                                  f"#{ran.item.index}")
        except WaitTimeout as exc:
            record.heal_problem = str(exc).splitlines()[0]
            return None

    def _begin(self, item: Item, active: list[Ran], n: int, schedule: Schedule) -> Ran:
        busy = {node for r in active for node in r.item.nodes}
        state = self.state()
        nodes = item.nodes or roles.resolve(item.role, item.pick, state.names, state.master,
                                            state.placements, busy)
        if not nodes:
            why = f"no node fits role {item.role} now (master {state.master}, busy {busy})"
            self._note(f"chaos #{item.index} {item.kind} skipped: {why}")
            return Ran(item, skipped=why)
        fits = roles.candidates(item.role, state.names, state.master, state.placements, busy)
        drift = "" if not item.nodes or set(item.nodes) <= set(fits) else (
            f"the file aims it at {','.join(item.nodes)}, which is no longer the "
            f"{item.role} (CRM master {state.master}); a replay keeps the nodes")
        item = replace(item, nodes=tuple(nodes))
        lost = frozenset(n for r in active if r.item.kind in NODE_LOSING for n in r.item.nodes)
        prediction = predict(item.kind, item.nodes, replace(state, down=lost), self.c)
        if lost and prediction.moves:
            # PVE's windows (pve-model §10) are derived for one failure at a time: with
            # another node out of the membership the master may be busy recovering it,
            # or be the one gone, so these moves are expected but measured
            prediction = replace(prediction, basis=prediction.basis + f"; measured: "
                                 f"{', '.join(sorted(lost))} out of the membership too",
                                 moves=tuple(replace(m, window=None)
                                             for m in prediction.moves))
        ran = Ran(item, master=state.master, prediction=prediction, drift=drift)
        line = (f"chaos [{n + 1}/{len(schedule.items)}] {item.describe()} ({item.role}); "
                f"predicted: {ran.prediction.describe()}")
        log.info("%s", line)
        waits.progress(line)
        try:
            ran.faults = self._apply(item)
        except PvechaosError as exc:
            ran.error = str(exc).splitlines()[0]
            self._note(f"chaos #{item.index} {item.kind} failed: {ran.error}")
            return ran
        ran.begin_t = min(f.started.t for f in ran.faults)
        return ran

    def _apply(self, item: Item) -> list[Fault]:
        f, p = self.faults, item.params
        if item.kind == "power_cut":
            return [f.power_cut(n) for n in item.nodes]
        if item.kind == "isolate":
            rest = [n for n in self.cluster.names if n not in item.nodes]
            return f.isolate(item.nodes[0]) if len(item.nodes) == 1 else \
                f.split([list(item.nodes), rest])
        if item.kind == "degrade":
            return [f.degrade(n, delay_ms=p.get("delay_ms", 25.0),
                              jitter_ms=p.get("jitter_ms", 0.0)) for n in item.nodes]
        if item.kind == "clock_step":
            return [f.clock_step(n, p["delta_s"]) for n in item.nodes]
        if item.kind == "storage_cut":
            return [f.storage_cut(n) for n in item.nodes]
        raise PvechaosError(f"no verb for fault kind {item.kind!r}")

    def _end(self, ran: Ran) -> None:
        errors = []
        if ran.item.kind == "power_cut":
            for node in ran.item.nodes:
                try:
                    self.faults.power_on(node)
                except PvechaosError as exc:
                    errors.append(exc)
        else:
            for fault in ran.faults:
                try:
                    self.faults.end(fault)
                except PvechaosError as exc:
                    errors.append(exc)
        ran.end_t = self.timeline.clock.now()
        log.info("chaos #%d %s on %s ended", ran.item.index, ran.item.kind,
                 ",".join(ran.item.nodes))
        if errors:  # the teardown's undo stack tries again; the judge reports it
            ran.error = "ending it failed: " + "; ".join(str(e).splitlines()[0]
                                                         for e in errors)
            self._note(f"chaos #{ran.item.index} {ran.error}")

    def _sleep_until(self, t: float, what: str) -> None:
        """Sleep until the planned time ``t`` (bounded by it), saying what for on long
        sleeps as a wait does."""
        clock = self.timeline.clock
        start, shown, every = clock.now(), False, waits.progress_every_s()
        next_line = start + every
        try:
            for _ in range(int(max(0.0, t - start) / MAX_SLEEP_S) + 2):
                now = clock.now()
                if now >= t:
                    return
                if now >= next_line:
                    waits.progress(f"{what}: {now - start:.0f} s of {t - start:.0f} s")
                    shown, next_line = True, now + every
                time.sleep(min(t - now, MAX_SLEEP_S))
        finally:
            if shown:
                waits.progress(None)

    def _note(self, text: str) -> None:
        log.info("%s", text)
        self.timeline.record(EventKind.NOTE, "harness", Note(text))
