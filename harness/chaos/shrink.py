"""Shrinking: from a schedule that found something, shorter schedules that keep the order
(faults dropped, none reordered), until the shortest that still fails the same way.

1. Faults after the one the first finding followed cannot have caused it: cut them.
2. That fault alone, then greedily each fault before it dropped in turn (kept dropped
   when the rest still fails), within ``max_attempts`` runs.

Each candidate is re-timed back to back (every fault at the end of the one before plus
its gap) and keeps its nodes, so it is a replay file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness.chaos.judge import Verdict
from harness.chaos.schedule import Item, Schedule


@dataclass
class ShrinkResult:
    shortest: Schedule
    attempts: list[tuple[int, bool]] = field(default_factory=list)  # (faults, failed)


def retimed(schedule: Schedule, items: list[Item]) -> Schedule:
    out, t = [], 0.0
    for n, item in enumerate(items):
        out.append(replace(item, index=n, at_s=round(t, 2)))
        t += item.hold_s + item.gap_s
    return schedule.with_items(out, "shrunk")


def same_failure(original: Verdict) -> Callable[[Verdict], bool]:
    """A candidate fails 'the same way' when it has a finding of the kind the original's
    first (safety first) had."""
    wanted = (original.safety or original.findings)[0].kind
    return lambda v: any(f.kind == wanted for f in v.findings)


def shrink(schedule: Schedule, verdict: Verdict, run: Callable[[Schedule], Verdict], *,
           max_attempts: int = 8) -> ShrinkResult:
    first = (verdict.safety or verdict.findings)[0]
    fails = same_failure(verdict)
    items = list(schedule.items)
    if first.item is not None:
        items = [i for i in items if i.index <= first.item]
    result = ShrinkResult(retimed(schedule, items))
    if len(items) <= 1:
        return result

    def attempt(candidate: list[Item]) -> bool:
        failed = fails(run(retimed(schedule, candidate)))
        result.attempts.append((len(candidate), failed))
        return failed

    culprit = items[-1]
    if attempt([culprit]):
        result.shortest = retimed(schedule, [culprit])
        return result
    kept = items
    for item in items[:-1]:
        if len(result.attempts) >= max_attempts:
            break
        candidate = [i for i in kept if i is not item]
        if attempt(candidate):
            kept = candidate
    result.shortest = retimed(schedule, kept)
    return result
