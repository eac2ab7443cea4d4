"""A chaos run judged from its history: a pure function of the timeline's events and the
run's record (harness/chaos/runner.py), so it can be tested on hand-made timelines.

Findings, each with the fault it followed:

- ``safety``: a safety invariant broke (two copies of a guest, a lost acknowledged write,
  a start without quorum, a guest running after its node's fence was acknowledged);
- ``window``: a predicted recovery came outside its window, or never;
- ``unexplained``: a guest moved, or was put in ``fence``, while no fault aimed at its
  node was in force or being recovered from (from the fault's begin until the cluster
  was whole again after it);
- ``heal``: the cluster was not whole again within the bound;
- ``error``: a fault verb failed, so the run did not do what the schedule said.

Recoveries are read from the HA views of nodes outside the fault (a node cut off shows a
stale view): the first time one shows the guest's start issued on a node outside the
fault (``starting`` or ``started``), before the cluster was whole again after it. Where
the design gives no window (an isolation at a small timescale), a guest that stayed on its
node, which came back before the majority fenced it, is what PVE does and is noted, not
found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.chaos.runner import Ran, RunRecord
from harness.chaos.schedule import NODE_LOSING
from harness.events import HaServiceState, InvariantBroken
from harness.expectations import Window
from harness.timeline import Event, EventKind

SAFETY, WINDOW, UNEXPLAINED, HEAL, ERROR = "safety", "window", "unexplained", "heal", "error"
# what `ha-manager status` shows once the master has issued a service's start on a node:
# `starting` until the LRM has started it and the master has seen that (`started` without
# `running`, pve-model.md §4.3), then `started`. The windows are for the start issued
# (recovery_window without the LRM's pickup), so either view counts.
ISSUED = ("starting", "started")


@dataclass(frozen=True)
class Finding:
    kind: str
    t: float
    item: int | None  # the index of the fault it followed (None: before any)
    text: str

    @property
    def safety(self) -> bool:
        return self.kind == SAFETY

    def __str__(self) -> str:
        at = f"after fault #{self.item}" if self.item is not None else "before any fault"
        return f"[{self.kind}] t={self.t:.1f} s ({at}): {self.text}"

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "t": round(self.t, 3), "item": self.item,
                "text": self.text}


@dataclass(frozen=True)
class Recovery:
    """One predicted move as it happened: ``value_s`` from the fault's begin."""

    item: int
    kind: str
    sid: str
    source: str
    to: str | None
    value_s: float | None  # None: never
    window: Window | None
    predicted_to: str | None

    @property
    def in_window(self) -> bool | None:
        if self.value_s is None:
            return False
        return None if self.window is None else self.value_s in self.window

    def to_json(self) -> dict[str, object]:
        return {"item": self.item, "kind": self.kind, "sid": self.sid,
                "from": self.source, "to": self.to, "predicted_to": self.predicted_to,
                "value_s": None if self.value_s is None else round(self.value_s, 3),
                "window_s": None if self.window is None
                else [round(self.window.low_s, 3), round(self.window.high_s, 3)],
                "in_window": self.in_window}


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def safety(self) -> list[Finding]:
        return [f for f in self.findings if f.safety]

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "findings": [f.to_json() for f in self.findings],
                "recoveries": [r.to_json() for r in self.recoveries], "notes": self.notes}


def judge(events: list[Event], record: RunRecord) -> Verdict:
    end = record.end_t if record.end_t is not None else float("inf")
    evs = [e for e in events if record.start_t <= e.t <= end]
    ran = [r for r in record.ran if r.begin_t is not None]
    verdict = Verdict()
    for r in ran:
        _recoveries(evs, r, verdict)
    _unexplained(evs, record, ran, verdict)
    for e in evs:
        if e.kind == EventKind.INVARIANT_BROKEN:
            p = e.payload_of(InvariantBroken)
            if p.guest in record.sids:
                verdict.findings.append(Finding(SAFETY, e.t, _item_at(ran, e.t),
                                                f"{p.invariant} of {p.guest}: {p.detail}"))
    for r in record.ran:
        if r.error:
            verdict.findings.append(Finding(ERROR, r.begin_t or record.start_t,
                                            r.item.index, f"{r.item.kind}: {r.error}"))
        if r.skipped:
            verdict.notes.append(f"#{r.item.index} {r.item.kind} skipped: {r.skipped}")
        if r.drift:
            verdict.notes.append(f"#{r.item.index} {r.item.kind}: {r.drift}")
    if record.heal_problem:
        verdict.findings.append(Finding(HEAL, end if end != float("inf") else 0.0,
                                        _item_at(ran, end), "the cluster was not whole "
                                        f"again: {record.heal_problem}"))
    verdict.findings.sort(key=lambda f: f.t)
    return verdict


def _item_at(ran: list[Ran], t: float) -> int | None:
    before = [r for r in ran if r.begin_t is not None and r.begin_t <= t]
    return before[-1].item.index if before else None


def _services(evs: list[Event]) -> list[tuple[Event, HaServiceState]]:
    return [(e, e.payload_of(HaServiceState)) for e in evs
            if e.kind == EventKind.HA_SERVICE_STATE]


def _recoveries(evs: list[Event], r: Ran, verdict: Verdict) -> None:
    assert r.begin_t is not None and r.prediction is not None
    hit = set(r.item.nodes)
    # a move after the cluster was whole again belongs to a later fault (calm waits for
    # every guest of the run to be started and answering)
    until = r.calm_t if r.calm_t is not None else float("inf")
    for move in r.prediction.moves:
        seen = next((e for e, p in _services(evs)
                     if r.begin_t <= e.t <= until and e.source not in hit
                     and p.sid == move.sid
                     and p.state in ISSUED and p.node is not None
                     and p.node not in hit), None)
        if seen is None and move.window is None:
            stayed = _stayed_unfenced(evs, r, move.sid)
            if stayed is not None:
                verdict.notes.append(
                    f"#{r.item.index}: {move.sid} stayed on {stayed}: it came back after "
                    f"{r.item.kind} of {','.join(r.item.nodes)} ended, before the majority "
                    "fenced it (no window at this timescale: the fault was shorter than "
                    "this recovery; pve-model.md §4.2, NodeStatus.pm)")
                continue
        to = None if seen is None else seen.payload_of(HaServiceState).node
        rec = Recovery(r.item.index, r.item.kind, move.sid, move.source, to,
                       None if seen is None else seen.t - r.begin_t, move.window, move.to)
        verdict.recoveries.append(rec)
        if seen is None:
            verdict.findings.append(Finding(WINDOW, r.begin_t, r.item.index,
                                            f"{move.sid} was never started elsewhere after "
                                            f"{r.item.kind} of {','.join(r.item.nodes)}"))
        elif rec.in_window is False:
            verdict.findings.append(Finding(
                WINDOW, seen.t, r.item.index,
                f"{move.sid} started on {to} {rec.value_s:.1f} s after {r.item.kind} of "
                f"{','.join(r.item.nodes)}, outside {move.window} ({move.window.basis})"))
        if to is not None and move.to is not None and to != move.to:
            verdict.notes.append(f"#{r.item.index}: {move.sid} went to {to}, PVE's basic "
                                 f"scheduler would pick {move.to}")


def _stayed_unfenced(evs: list[Event], r: Ran, sid: str) -> str | None:
    """The node of ``r``'s fault that ``sid`` runs on again after the fault ended, when
    no view showed it in ``fence`` meanwhile; else None.

    PVE puts a service in ``fence`` only once its node has been offline for the fence
    delay, counted afresh by a new master (pve-model.md §4.2 and `node_is_offline_delayed`,
    HA `src/PVE/HA/NodeStatus.pm`); a node back online before that keeps its services, and
    its LRM starts them again after its reset. A service that went to ``fence`` must be
    recovered elsewhere ("fence stays fence", pve-faults.md §6.1)."""
    if r.begin_t is None or r.end_t is None or r.calm_t is None:
        return None  # never whole again after it: nothing to say it stayed
    views = [(e, p) for e, p in _services(evs) if p.sid == sid and e.t <= r.calm_t]
    if any(p.state in ("fence", "recovery") for e, p in views if e.t >= r.begin_t):
        return None
    # the views record changes only: a service that never left its node shows no event
    # after the fault, so the last view before the cluster was whole again says where
    last = views[-1][1] if views else None
    if last is not None and last.state in ISSUED and last.node in r.item.nodes:
        return last.node
    return None


def _explains(r: Ran, node: str | None, t: float, end: float) -> bool:
    until = r.calm_t if r.calm_t is not None else end
    return (node in r.item.nodes and r.begin_t is not None and r.begin_t <= t <= until
            and (r.item.kind in NODE_LOSING
                 or (r.prediction is not None and node in r.prediction.may_fence)))


def _unexplained(evs: list[Event], record: RunRecord, ran: list[Ran], verdict: Verdict
                 ) -> None:
    end = record.end_t if record.end_t is not None else float("inf")
    said: set[tuple[str, ...]] = set()
    for e, p in _services(evs):
        if p.sid not in record.sids:
            continue
        if p.state == "fence":
            node, key = p.node, ("fence", p.sid, str(p.node))
            text = f"{p.sid} in fence on {p.node} (seen by {e.source}), no fault on " \
                   f"{p.node} explains it"
        elif p.previous_node and p.node and p.node != p.previous_node:
            node, key = p.previous_node, ("move", p.sid, p.previous_node, p.node)
            text = f"{p.sid} moved {p.previous_node} -> {p.node} (seen by {e.source}) " \
                   f"with no fault on {p.previous_node} to explain it"
        else:
            continue
        if key not in said and not any(_explains(r, node, e.t, end) for r in ran):
            said.add(key)
            verdict.findings.append(Finding(UNEXPLAINED, e.t, _item_at(ran, e.t), text))
