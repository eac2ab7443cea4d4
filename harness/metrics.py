"""Metrics as functions of the timeline, and the machine-readable `metrics.json`.

Each observation on the timeline is stamped with the start of the poll that first saw it,
so a figure is late by at most one watcher interval plus one command's latency; the
resolution is kept with every metric.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.timeline import Event, EventKind, Timeline


@dataclass(frozen=True)
class Metric:
    scenario: str
    name: str
    value_s: float
    data: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["value_s"] = round(self.value_s, 3)
        return out


def _first_view(timeline: Timeline, node: str, after: Event,
                where: Callable[[dict], bool]) -> Event | None:
    kinds = (EventKind.MEMBERSHIP_CHANGED, EventKind.QUORUM_LOST, EventKind.QUORUM_REGAINED,
             EventKind.VOTES_CHANGED)
    for event in timeline.events(kinds, source=node, after=after.t):
        if where(dict(event.data)):
            return event
    return None


def _all_nodes_by(timeline: Timeline, nodes: Iterable[str], after: Event,
                  where: Callable[[dict], bool]) -> float | None:
    """Seconds from ``after`` until every node has shown a view matching ``where``."""
    times = []
    for node in nodes:
        event = _first_view(timeline, node, after, where)
        if event is None:
            return None
        times.append(event.t)
    return max(times) - after.t


def time_to_detect(timeline: Timeline, cut: Event, survivors: Iterable[str]) -> float | None:
    """Power cut -> every survivor's membership no longer lists the node."""
    node = cut.data["node"]
    return _all_nodes_by(timeline, survivors, cut, lambda d: node not in d["members"])


def time_to_quorum_loss(timeline: Timeline, cut: Event, node: str) -> float | None:
    return _all_nodes_by(timeline, [node], cut, lambda d: not d["quorate"])


def time_to_quorum(timeline: Timeline, action: Event, node: str) -> float | None:
    return _all_nodes_by(timeline, [node], action, lambda d: d["quorate"])


def time_to_heal(timeline: Timeline, power_on: Event, nodes: Iterable[str]) -> float | None:
    """Power on -> every node quorate, with every node a member and expected votes whole."""
    nodes = list(nodes)
    return _all_nodes_by(
        timeline, nodes, power_on,
        lambda d: d["quorate"] and sorted(d["members"]) == sorted(nodes)
        and d["expected_votes"] == len(nodes))


class MetricsFile:
    """`reports/metrics.json`, shared by every xdist worker of a run (file-locked).

    ``{"run": <id>, "metrics": [...]}``. The first metric of a new run replaces what an
    earlier run left, so a run that measures nothing (the self-tests) keeps the last
    scenario run's figures.
    """

    def __init__(self, path: Path, run: str = "") -> None:
        self.path, self.run = path, run

    def append(self, metric: Metric) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read().strip()
            doc = _loads(text)
            if not isinstance(doc, dict) or doc.get("run") != self.run:
                doc = {"run": self.run, "metrics": []}
            doc["metrics"].append(metric.to_json())
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(doc, indent=1) + "\n")

    def read(self, *, this_run_only: bool = False) -> list[Metric]:
        try:
            doc = _loads(self.path.read_text())
        except OSError:
            return []
        if not isinstance(doc, dict) or (this_run_only and doc.get("run") != self.run):
            return []
        return [Metric(r["scenario"], r["name"], r["value_s"], r.get("data", {}))
                for r in doc.get("metrics", [])]


def _loads(text: str) -> object:
    """A metrics document, or {} for an empty or damaged file (it is rewritten whole)."""
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
