"""A chaos schedule from a seed: the same seed, cluster, timescale and options give the
same schedule, byte for byte.

Each fault's hold and the recovery gap after it come from PVE's windows at the cluster's
constants (harness/expectations), never from a guess:

- a node-losing fault (``power_cut``, ``isolate``) holds until the slowest recovery PVE's
  design allows for its guests has had its time (the master's recovery window, §10.2,
  with the watchers' lag), so every guest has moved before the node comes back; the gap
  after it is the membership's re-formation (detect window) plus an LRM round to report
  and a CRM round to see it;
- a harmless fault (``degrade``, ``clock_step``, ``storage_cut``) holds for between a fence
  countdown and a non-master's whole recovery window: had HA taken the node for dead, it
  would have acted inside the hold; the gap is one CRM and one LRM round.

Concurrency: at most ``concurrency`` faults at once, and node-losing ones never take out
more nodes than the cluster can lose and stay quorate (unless ``allow_quorum_loss``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from harness.chaos.schedule import (
    KINDS,
    NODE_LOSING,
    ROLES,
    Item,
    Schedule,
    ScheduleError,
)
from harness.expectations import ClusterConstants, detect_window, recovery_window, widen
from harness.recovery import WATCHER_SLACK
from harness.story_plan import quorum_of

DEFAULT_MIX = {"power_cut": 3.0, "isolate": 2.0, "degrade": 1.0, "clock_step": 1.0,
               "storage_cut": 1.0}
# the roles each kind is aimed at when the caller names none
DEFAULT_ROLES = {
    "power_cut": ("master", "guest-node", "non-master", "any", "minority"),
    "isolate": ("master", "guest-node", "non-master", "minority"),
    "degrade": ("any", "master", "guest-node"),
    "clock_step": ("master", "guest-node", "any"),
    "storage_cut": ("guest-node", "any"),
}
DEGRADE_DELAYS_MS = (10.0, 25.0, 50.0)  # well below knet's thresholds (pve-faults §5.3)
CLOCK_BACK_S = 40.0  # the clock story's backward step, at timescale 1 (pve-faults §7.3)
DRAWS = 20  # draws tried for the last slot before the schedule is full


def tolerance(nodes: int) -> int:
    """How many nodes the cluster can lose and stay quorate (one vote each)."""
    return nodes - quorum_of(nodes)


def group_size(role: str, nodes: int) -> int:
    """How many nodes a role names: a minority is as many as can be lost, at least one."""
    return max(1, (nodes - 1) // 2) if role == "minority" else 1


def parse_mix(text: str) -> dict[str, float]:
    """``power_cut=3,isolate=2,degrade`` -> weights (a bare kind weighs 1)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        if kind not in KINDS:
            raise ScheduleError(f"unknown fault kind {kind!r} in the mix {text!r}",
                                hint=f"kinds are {', '.join(KINDS)}")
        try:
            mix[kind] = float(weight) if weight else 1.0
        except ValueError:
            raise ScheduleError(f"weight {weight!r} of {kind} is not a number",
                                hint="write e.g. power_cut=3,isolate=2") from None
        if mix[kind] < 0:
            raise ScheduleError(f"weight of {kind} must be >= 0, got {mix[kind]:g}")
    if not any(mix.values()):
        raise ScheduleError(f"the mix {text!r} has no fault kind with a weight",
                            hint="e.g. power_cut=3,isolate=2,degrade=1")
    return mix


def holds(c: ClusterConstants) -> dict[str, tuple[float, float]]:
    """Per kind: the (shortest, longest) hold, real seconds."""
    slowest = widen(recovery_window(c, master_died=True, lrm_pickup=True), WATCHER_SLACK)
    calm = recovery_window(c, master_died=False, lrm_pickup=True).high_s
    harmless = (c.fence_countdown, max(calm, c.fence_countdown))
    return {"power_cut": (slowest.high_s, slowest.high_s),
            "isolate": (slowest.high_s, slowest.high_s),
            "degrade": harmless, "clock_step": harmless, "storage_cut": harmless}


def gap_after(kind: str, c: ClusterConstants) -> float:
    if kind in NODE_LOSING:
        return detect_window(c).high_s + c.lrm_loop + c.crm_loop
    return c.crm_loop + c.lrm_loop


def generate(seed: int, names: Sequence[str], c: ClusterConstants, *, duration_s: float,
             mix: Mapping[str, float] | None = None, concurrency: int | None = None,
             allow_quorum_loss: bool = False, guests: int | None = None,
             roles: Sequence[str] | None = None) -> Schedule:
    names = tuple(sorted(names))
    if duration_s <= 0:
        raise ScheduleError(f"duration {duration_s:g} s must be > 0")
    budget = len(names) if allow_quorum_loss else tolerance(len(names))
    weights = {k: w for k, w in dict(mix or DEFAULT_MIX).items() if w > 0}
    if budget == 0:
        weights = {k: w for k, w in weights.items() if k not in NODE_LOSING}
    if not weights:
        raise ScheduleError(f"no fault of the mix fits {len(names)} node(s) without losing "
                            "quorum", hint="add degrade, clock_step or storage_cut, or allow "
                            "quorum loss")
    limit = concurrency or max(1, tolerance(len(names)))
    if roles is not None:
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise ScheduleError(f"unknown role(s) {', '.join(unknown)}",
                                hint=f"roles are {', '.join(ROLES)}")
    rng = random.Random(seed)
    span = holds(c)
    lanes = [0.0] * limit  # when each lane is free again
    items: list[Item] = []
    kinds = sorted(weights)
    misses = 0
    while misses < DRAWS:
        kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
        allowed = [r for r in DEFAULT_ROLES[kind] if roles is None or r in roles] or \
            list(roles or DEFAULT_ROLES[kind])
        role = rng.choice(allowed)
        size = group_size(role, len(names))
        low, high = span[kind]
        hold = round(rng.uniform(low, high), 2)
        gap = round(gap_after(kind, c), 2)
        params = _params(kind, c, rng)
        pick = rng.randrange(1 << 30)
        lane = min(range(limit), key=lambda i: lanes[i])
        start = lanes[lane]
        if items and limit > 1:  # concurrent faults come staggered, not all at once
            start = max(start, items[-1].at_s + rng.uniform(0, c.crm_loop * 3))
        if kind in NODE_LOSING:
            if size > budget:
                misses += 1
                continue
            start = _room(items, start, hold + gap, size, budget, len(names))
        start = round(start, 2)
        if start + hold + gap > duration_s:
            misses += 1
            continue
        items.append(Item(len(items), start, kind, role, hold, gap, pick, (), params))
        items.sort(key=lambda i: (i.at_s, i.index))
        lanes[lane] = start + hold + gap
    items = [Item(n, i.at_s, i.kind, i.role, i.hold_s, i.gap_s, i.pick, (), i.params)
             for n, i in enumerate(items)]
    return Schedule(seed, names, c.timescale.factor, float(duration_s), limit,
                    allow_quorum_loss, guests or len(names), dict(sorted(weights.items())),
                    tuple(items), "generated")


def _params(kind: str, c: ClusterConstants, rng: random.Random) -> dict[str, float]:
    if kind == "degrade":
        delay = rng.choice(DEGRADE_DELAYS_MS)
        return {"delay_ms": delay, "jitter_ms": delay / 5}
    if kind == "clock_step":
        return {"delta_s": -round(c.s(CLOCK_BACK_S), 3)}
    return {}


def _room(items: list[Item], start: float, length: float, size: int, budget: int,
          nodes: int) -> float:
    """The first start at or after ``start`` where ``size`` more lost nodes stay within
    ``budget`` for ``length`` seconds."""
    losing = [i for i in items if i.kind in NODE_LOSING]
    for _ in range(len(losing) + 1):
        overlapping = [i for i in losing
                       if i.at_s < start + length and start < i.at_s + i.hold_s + i.gap_s]
        lost = sum(group_size(i.role, nodes) for i in overlapping)
        if lost + size <= budget:
            return start
        start = min(i.at_s + i.hold_s + i.gap_s for i in overlapping)
    return start
