"""Soak: chaos schedules back to back for a given time, with a summary of what was
injected, how the recoveries went and what was found. Stops on the first safety finding
unless told to go on."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.chaos.schedule import Schedule
from harness.chaos.session import Outcome

MIN_SCHEDULE_S = 60.0  # a rest of the soak shorter than this is not planned


@dataclass
class SoakSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str = ""  # why the soak ended before its time

    @property
    def findings(self):
        return [f for o in self.outcomes for f in o.verdict.findings]

    def rows(self) -> list[tuple[str, ...]]:
        """kind, faults run, skipped, recoveries, in window, min / median / max (s)."""
        ran: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        values: dict[str, list[float]] = defaultdict(list)
        judged: Counter[str] = Counter()
        inside: Counter[str] = Counter()
        for o in self.outcomes:
            for r in o.record.ran:
                (ran if r.begin_t is not None else skipped)[r.item.kind] += 1
            for rec in o.verdict.recoveries:
                if rec.value_s is not None:
                    values[rec.kind].append(rec.value_s)
                if rec.in_window is not None:
                    judged[rec.kind] += 1
                    inside[rec.kind] += bool(rec.in_window)
        rows = []
        for kind in sorted(set(ran) | set(skipped)):
            v = values.get(kind, [])
            spread = (f"{min(v):.1f} / {statistics.median(v):.1f} / {max(v):.1f}"
                      if v else "-")
            rows.append((kind, str(ran[kind]), str(skipped[kind]), str(len(v)),
                         f"{inside[kind]}/{judged[kind]}" if judged[kind] else "-", spread))
        return rows

    def table(self) -> str:
        head = ("fault", "run", "skipped", "recoveries", "in window", "min / median / max s")
        rows = [head, *self.rows()]  # every row has the head's columns
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        found = Counter(f.kind for f in self.findings)
        lines.append("")
        lines.append(f"schedules: {len(self.outcomes)}; findings: "
                     + (", ".join(f"{k} {n}" for k, n in sorted(found.items())) or "none"))
        for o in self.outcomes:
            faults = sum(r.begin_t is not None for r in o.record.ran)
            lines.append(f"  seed {o.schedule.seed}: {faults} faults, "
                         f"{len(o.verdict.findings)} findings")
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {"rows": [dict(zip(("fault", "run", "skipped", "recoveries", "in_window",
                                   "min_median_max_s"), r, strict=True)) for r in self.rows()],
                "stopped": self.stopped,
                "runs": [{"seed": o.schedule.seed, "verdict": o.verdict.to_json()}
                         for o in self.outcomes]}


def soak(run: Callable[[Schedule], Outcome], plan: Callable[[int, float], Schedule], *,
         seconds: float, now: Callable[[], float], go_on: bool = False,
         max_runs: int = 1000) -> SoakSummary:
    """Run ``plan(k, seconds_left)`` schedules until ``seconds`` have passed."""
    summary = SoakSummary()
    deadline = now() + seconds
    for k in range(max_runs):
        left = deadline - now()
        if left < MIN_SCHEDULE_S and k > 0:
            break
        schedule = plan(k, left)
        if not schedule.items:
            break
        outcome = run(schedule)
        summary.outcomes.append(outcome)
        safety = outcome.verdict.safety
        if safety and not go_on:
            summary.stopped = f"safety finding in the schedule of seed {schedule.seed}: " \
                              f"{safety[0]}"
            break
    return summary
