"""What PVE's design predicts for one fault of a schedule, from the cluster as it is when
the fault begins: which HA guests move where, within which window (real seconds from the
fault), and which fences and moves the fault explains.

The windows are harness/expectations' (pve-model.md §10, pve-faults.md); where PVE's
design gives no number (an isolation at a timescale where corosync's re-formation
outlasts the scaled watchdog) the move is expected without a window (``measured``). The
destination is PVE's basic scheduler's choice (harness/story_plan.py ``recovery_node``,
pve-model.md §7: the online node with the fewest services, then the name; services of one
node recovered in sid order, each counted as it lands); the judge reports a different
destination as a note, not a finding.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from harness.expectations import (
    ClusterConstants,
    Window,
    isolation_is_predicted,
    isolation_recovery_window,
    recovery_window,
    widen,
)
from harness.recovery import WATCHER_SLACK
from harness.story_plan import recovery_node

HARMLESS = "harmless"
RECOVERED = "recovered elsewhere"

_HARMLESS_BASIS = {
    "degrade": "pve-faults.md §5.3: tens of ms of delay on corosync's traffic stay far below "
               "knet's pong timeout; membership holds, HA does nothing",
    "clock_step": "pve-faults.md §7.3: a wall clock stepped back makes the node's LRM look "
                  "'old timestamp - dead?' to the others for a while; nothing is fenced or "
                  "moved, and stepping forward again is harmless",
    "storage_cut": "pve-faults.md §8.1: nothing in HA watches storage: no fence, no move, "
                   "no reset; the guest's I/O stalls on the hard NFS mount",
}


@dataclass(frozen=True)
class Move:
    """``sid`` leaves ``source`` and is started on ``to`` (None: not predicted) within
    ``window`` of the fault (None: the design gives no number, the figure is measured)."""

    sid: str
    source: str
    to: str | None
    window: Window | None

    def describe(self) -> str:
        dest = self.to or "another node"
        when = f"within {self.window}" if self.window else "(no window: measured)"
        return f"{self.sid} {self.source} -> {dest} {when}"


@dataclass(frozen=True)
class Prediction:
    outcome: str  # HARMLESS or RECOVERED
    basis: str
    moves: tuple[Move, ...] = ()
    may_fence: tuple[str, ...] = ()  # nodes whose fence the fault explains

    def describe(self) -> str:
        if not self.moves:
            return "harmless: nothing moves" if self.outcome == HARMLESS else \
                "no HA guest on it: nothing moves"
        return f"{self.outcome}: " + "; ".join(m.describe() for m in self.moves)

    def to_json(self) -> dict[str, object]:
        return {"outcome": self.outcome, "basis": self.basis,
                "may_fence": list(self.may_fence),
                "moves": [{"sid": m.sid, "from": m.source, "to": m.to,
                           "window_s": None if m.window is None
                           else [round(m.window.low_s, 3), round(m.window.high_s, 3)],
                           "basis": None if m.window is None else m.window.basis}
                          for m in self.moves]}


@dataclass(frozen=True)
class State:
    """The cluster as the prediction sees it: its nodes, the CRM master, each HA guest's
    node, and the nodes out of the membership (``down``)."""

    names: tuple[str, ...]
    master: str | None
    placements: dict[str, str] = field(default_factory=dict)
    down: frozenset[str] = frozenset()

    def guests_on(self, nodes) -> list[str]:
        return sorted(sid for sid, node in self.placements.items() if node in nodes)


def predict(kind: str, nodes: tuple[str, ...], state: State, c: ClusterConstants
            ) -> Prediction:
    if kind == "power_cut":
        master_died = state.master in nodes
        window = widen(recovery_window(c, master_died=master_died, lrm_pickup=False),
                       WATCHER_SLACK)
        basis = ("pve-model.md §10.2: the master lost, a new one fences after its own fence "
                 "delay" if master_died else "pve-model.md §10.1: fenced once its agent "
                 "lock expired")
        return Prediction(RECOVERED, basis, _moves(nodes, state, window), nodes)
    if kind == "isolate":
        if isolation_is_predicted(c):
            window: Window | None = widen(isolation_recovery_window(
                c, isolated_master=state.master in nodes, lrm_pickup=False), WATCHER_SLACK)
            basis = ("pve-faults.md §6.1: the minority's active LRM self-fences, the majority "
                     "recovers as after a power cut")
        else:
            window = None
            basis = (f"pve-faults.md §6.1; no window at this timescale: corosync's "
                     f"re-formation ({c.detection:.1f} s) outlasts the scaled watchdog "
                     f"({c.watchdog:.1f} s), recovery measured")
        return Prediction(RECOVERED, basis, _moves(nodes, state, window), nodes)
    return Prediction(HARMLESS, _HARMLESS_BASIS[kind])


def _moves(nodes: tuple[str, ...], state: State, window: Window | None) -> tuple[Move, ...]:
    online = [n for n in state.names if n not in nodes and n not in state.down]
    load = Counter(node for node in state.placements.values() if node in online)
    moves = []
    for sid in state.guests_on(nodes):
        to = recovery_node(online, load)
        if to is not None:
            load[to] += 1
        moves.append(Move(sid, state.placements[sid], to, window))
    return tuple(moves)


def after(state: State, kind: str, nodes: tuple[str, ...], prediction: Prediction
          ) -> tuple[State, str]:
    """The state once the fault has ended and its predicted moves happened (no failback:
    a returning node gets nothing back), for a dry run; and what was assumed."""
    placements = dict(state.placements)
    for move in prediction.moves:
        if move.to is not None:
            placements[move.sid] = move.to
    master, assumed = state.master, ""
    if kind in ("power_cut", "isolate") and state.master in nodes:
        survivors = [n for n in state.names if n not in nodes and n not in state.down]
        master = survivors[0] if survivors else None
        assumed = (f"a new CRM master (whichever slave takes the manager lock first; "
                   f"assumed {master})")
    return replace(state, master=master, placements=placements), assumed
