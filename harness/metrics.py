"""Metrics as functions of the timeline, and the machine-readable `metrics.json`.

Each observation on the timeline is stamped with the start of the poll that first saw it,
so a figure is late by at most one watcher interval plus one command's latency; the
resolution is kept with every metric.
"""

from __future__ import annotations

import fcntl
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.errors import PvechaosError
from harness.events import FaultBegin, HaServiceState, NodeFault, ProbeUp, QuorumView
from harness.expectations import ClusterConstants, Window, detect_window
from harness.ha_watcher import first_service_state, taken_from
from harness.timeline import Event, EventKind, Timeline


@dataclass(frozen=True)
class Metric:
    """One measured figure. ``window_s`` is what PVE's design predicts (None: no
    prediction), ``budget_s`` the user's limit in real seconds (None: not budgeted), and
    ``verdict`` one of ``ok``, ``outside_window``, ``over_budget``,
    ``outside_window+over_budget``, or ``measured`` (nothing to compare with)."""

    scenario: str
    name: str
    value_s: float
    data: dict[str, object] = field(default_factory=dict)
    window_s: tuple[float, float] | None = None
    budget_s: float | None = None

    @property
    def in_window(self) -> bool | None:
        if self.window_s is None:
            return None
        return self.window_s[0] <= self.value_s <= self.window_s[1]

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_s is None else self.value_s <= self.budget_s

    @property
    def verdict(self) -> str:
        failed = [name for name, ok in (("outside_window", self.in_window),
                                        ("over_budget", self.within_budget)) if ok is False]
        if failed:
            return "+".join(failed)
        return "measured" if self.window_s is None and self.budget_s is None else "ok"

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out["value_s"] = round(self.value_s, 3)
        out["window_s"] = [round(x, 3) for x in self.window_s] if self.window_s else None
        out["budget_s"] = None if self.budget_s is None else round(self.budget_s, 3)
        out["verdict"] = self.verdict
        return out

    def junit_properties(self) -> list[tuple[str, float | str]]:
        """The figure as JUnit properties (``--junitxml`` writes each as <property name=
        value=>): the value in seconds under the metric's name, then what is present of
        its window and budget (seconds) and its verdict, each under ``<name>.<what>``."""
        doc = self.to_json()
        props: list[tuple[str, float | str]] = [(self.name, doc["value_s"])]
        if self.window_s is not None:
            low, high = doc["window_s"]
            props += [(f"{self.name}.window_low_s", low), (f"{self.name}.window_high_s", high)]
        if self.budget_s is not None:
            props.append((f"{self.name}.budget_s", doc["budget_s"]))
        return [*props, (f"{self.name}.verdict", self.verdict)]

    def check_finite(self) -> None:
        """Refuse a figure that is not a finite number (NaN, inf): no measurement gives
        one, so it is a bug in the code that computed it, and it must not reach the
        file, the report or a comparison as if it were a time."""
        fields: list[tuple[str, object]] = [("value_s", self.value_s)]
        if self.window_s is not None:
            fields += [("window_s", bound) for bound in self.window_s]
        fields += [("budget_s", self.budget_s)] + [
            (f"data[{key!r}]", value) for key, value in self.data.items()]
        for field_name, value in fields:
            if isinstance(value, float) and not math.isfinite(value):
                raise PvechaosError(
                    f"metric {self.name!r} of {self.scenario}: {field_name} is {value!r}, "
                    "not a finite number of seconds",
                    hint="this is a harness bug: the function that measured it must return "
                         "None when it observed nothing (the step then fails as "
                         "unmeasured), never NaN or inf")

    @classmethod
    def from_json(cls, row: dict) -> Metric:
        window = row.get("window_s")
        return cls(row["scenario"], row["name"], row["value_s"], row.get("data", {}),
                   tuple(window) if window else None, row.get("budget_s"))


QUORUM_VIEW_KINDS = (EventKind.MEMBERSHIP_CHANGED, EventKind.QUORUM_LOST,
                     EventKind.QUORUM_REGAINED, EventKind.VOTES_CHANGED)


def quorum_views_after(timeline: Timeline, after: Event, sources: Iterable[str]
                       ) -> Iterator[Event]:
    """The quorum watcher's views from ``sources`` seen after ``after``, oldest first: a
    view is stamped at its poll's start, so the poll that saw an immediate effect (`pvecm
    expected 1` answers in milliseconds) may have begun just before the action that
    caused it. A view counts when its poll ended at or after ``after``."""
    wanted = set(sources)
    for event in timeline.events(QUORUM_VIEW_KINDS):
        view = event.payload
        if event.source in wanted and isinstance(view, QuorumView) \
                and event.t + (view.poll_s or 0.0) >= after.t:
            yield event


def _first_view(timeline: Timeline, node: str, after: Event,
                where: Callable[[QuorumView], bool]) -> Event | None:
    return next((e for e in quorum_views_after(timeline, after, [node])
                 if where(e.payload)), None)  # type: ignore[arg-type]


def _first_views(timeline: Timeline, nodes: Iterable[str], after: Event,
                 where: Callable[[QuorumView], bool]) -> list[Event] | None:
    """Each node's first view after ``after`` matching ``where``; None: one has none yet."""
    events = [_first_view(timeline, node, after, where) for node in nodes]
    return None if any(e is None for e in events) else events  # type: ignore[return-value]


def _all_nodes_by(timeline: Timeline, nodes: Iterable[str], after: Event,
                  where: Callable[[QuorumView], bool]) -> float | None:
    """Seconds from ``after`` until every node has shown a view matching ``where``; a view
    whose poll began before ``after`` (and ended after it) counts from ``after``: 0 s, the
    poll's length its error bound, as for every view (``_longest_poll``)."""
    events = _first_views(timeline, nodes, after, where)
    return None if not events else max(max(e.t, after.t) for e in events) - after.t


def _longest_poll(timeline: Timeline, nodes: Iterable[str], after: Event,
                  where: Callable[[QuorumView], bool]) -> float | None:
    """The longest poll behind ``_all_nodes_by``'s figure: of each first matching view,
    the poll that showed it and the one before it (the change happened between the one's
    start and the other's end). None: no poll length was recorded (not a watcher's view,
    or one of an older version's timeline)."""
    lengths = [x for e in _first_views(timeline, nodes, after, where) or ()
               for x in (e.payload.poll_s, e.payload.previous_poll_s) if x is not None]
    return max(lengths, default=None)


def _without(node: str) -> Callable[[QuorumView], bool]:
    return lambda v: node not in v.members


def _inquorate(v: QuorumView) -> bool:
    return not v.quorate


def cut_node(cut: Event) -> str:
    """The node a cut aimed at: a lab fault's (power cut, freeze, link) or an in-node
    fault's (a corosync cut: fault.begin)."""
    if isinstance(cut.payload, FaultBegin):
        return cut.payload.node
    return cut.payload_of(NodeFault).node


def time_to_detect(timeline: Timeline, cut: Event, survivors: Iterable[str]) -> float | None:
    """Cut -> every survivor's membership no longer lists the node."""
    return _all_nodes_by(timeline, survivors, cut, _without(cut_node(cut)))


def detect_poll_s(timeline: Timeline, cut: Event, survivors: Iterable[str]) -> float | None:
    """The longest watcher poll behind ``time_to_detect`` (its stamp's error bound)."""
    return _longest_poll(timeline, survivors, cut, _without(cut_node(cut)))


def time_to_quorum_loss(timeline: Timeline, cut: Event, node: str) -> float | None:
    return _all_nodes_by(timeline, [node], cut, _inquorate)


def quorum_loss_poll_s(timeline: Timeline, cut: Event, node: str) -> float | None:
    """The longest watcher poll behind ``time_to_quorum_loss``."""
    return _longest_poll(timeline, [node], cut, _inquorate)


def detect_window_seen(c: ClusterConstants, timeline: Timeline, cut: Event,
                       survivors: Iterable[str]) -> Window:
    """``time_to_detect``'s window, widened by the polls that observed the figure."""
    return detect_window(c, command_latency_s=detect_poll_s(timeline, cut, survivors))


def quorum_loss_window_seen(c: ClusterConstants, timeline: Timeline, cut: Event,
                            node: str) -> Window:
    """``time_to_quorum_loss``'s window (corosync's detection, as for a member's loss),
    widened by the polls that observed the figure."""
    return detect_window(c, command_latency_s=quorum_loss_poll_s(timeline, cut, node))


def time_to_quorum(timeline: Timeline, action: Event, node: str) -> float | None:
    return _all_nodes_by(timeline, [node], action, lambda v: v.quorate)


def time_to_heal(timeline: Timeline, power_on: Event, nodes: Iterable[str], *,
                 expected_votes: int | None = None) -> float | None:
    """Power on -> every node quorate, with every node a member and expected votes whole:
    ``expected_votes``, one per node unless given (a QDevice adds its own)."""
    nodes = list(nodes)
    whole = len(nodes) if expected_votes is None else expected_votes
    return _all_nodes_by(
        timeline, nodes, power_on,
        lambda v: v.quorate and sorted(v.members) == sorted(nodes)
        and v.expected_votes == whole)


# -- recovery figures: HA's view (the HA watcher) and the guest's (the probe) --------------
def time_to_fence(timeline: Timeline, cut: Event, sid: str) -> tuple[float, bool] | None:
    """Cut -> some node's HA view shows ``sid`` in ``fence``; (seconds, True). When no
    poll caught ``fence`` (fence, acknowledgement and the new start in one CRM round), the
    acknowledgement stands in: (seconds, False)."""
    event = first_service_state(timeline, sid, "fence", after=cut)
    if event is not None:
        return event.t - cut.t, True
    acked = time_to_fence_ack(timeline, cut, sid)
    return None if acked is None else (acked, False)


def time_to_fence_ack(timeline: Timeline, cut: Event, sid: str) -> float | None:
    """Cut -> some node's HA view shows ``sid`` taken from the cut node: it left ``fence``
    or ``recovery``, or went straight to another node (the master got the agent lock)."""
    node = cut_node(cut)
    event = timeline.first(EventKind.HA_SERVICE_STATE, after=cut, where=lambda e: (
        e.payload_of(HaServiceState).sid == sid and taken_from(e) == node))
    return None if event is None else event.t - cut.t


# `ha-manager status` shows a service the master set to `started` as `starting` until the
# LRM reported it running (pve-model.md §4.3): both mean the restart is issued.
RESTART_ISSUED = ("starting", "started")


def time_to_restart(timeline: Timeline, since: Event, sid: str, on: str | None = None,
                    away_from: str | None = None) -> tuple[float, str] | None:
    """``since`` -> some node's HA view shows ``sid`` ``starting`` or ``started`` on
    another node than ``away_from`` (or on ``on``): the master issued the restart.
    (seconds, target node)."""
    def issued(e: Event) -> bool:
        p = e.payload_of(HaServiceState)
        return p.sid == sid and p.state in RESTART_ISSUED and p.node not in (None, away_from) \
            and (on is None or p.node == on)
    event = timeline.first(EventKind.HA_SERVICE_STATE, after=since, where=issued)
    return None if event is None else (event.t - since.t,
                                       str(event.payload_of(HaServiceState).node))


def time_to_recovery(timeline: Timeline, since: Event, guest: str,
                     away_from: str | None = None) -> tuple[float, str] | None:
    """``since`` -> the probe hears ``guest`` answer from a node other than ``away_from``
    (a new boot): the guest serves again. (seconds, node that answered)."""
    event = timeline.first(
        EventKind.PROBE_UP, after=since,
        where=lambda e: e.payload_of(ProbeUp).guest == guest
        and e.payload_of(ProbeUp).node != away_from)
    return None if event is None else (event.t - since.t, event.payload_of(ProbeUp).node)


class MetricsFile:
    """`reports/metrics.json`, shared by every xdist worker of a run (file-locked).

    ``{"run": <id>, "metrics": [...]}``. The first metric of a new run replaces what an
    earlier run left, so a run that measures nothing (the self-tests) keeps the last
    scenario run's figures.
    """

    def __init__(self, path: Path, run: str = "") -> None:
        self.path, self.run = path, run

    def append(self, metric: Metric) -> None:
        """Add one figure; a figure that is not finite is refused (Metric.check_finite)
        before the file is touched."""
        metric.check_finite()
        self.update(lambda doc: doc["metrics"].append(metric.to_json()))

    def update(self, change: Callable[[dict], None]) -> None:
        """Change this run's document in place, under the file lock: ``change`` gets
        ``{"run": <id>, "metrics": [...], ...}`` (a new one when the file holds another
        run's), and may add other keys (harness/run_record.py: "steps", "settings")."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            text = handle.read().strip()
            doc = _loads(text)
            if not isinstance(doc, dict) or doc.get("run") != self.run:
                doc = {"run": self.run, "metrics": []}
            change(doc)
            text = json.dumps(doc, indent=1, allow_nan=False)  # before the file is emptied
            handle.seek(0)
            handle.truncate()
            handle.write(text + "\n")

    def read(self, *, this_run_only: bool = False) -> list[Metric]:
        try:
            doc = _loads(self.path.read_text())
        except OSError:
            return []
        if not isinstance(doc, dict) or (this_run_only and doc.get("run") != self.run):
            return []
        return [Metric.from_json(r) for r in doc.get("metrics", [])]


def _loads(text: str) -> object:
    """A metrics document, or {} for an empty or damaged file (it is rewritten whole)."""
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
