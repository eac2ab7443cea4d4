"""A chaos schedule: which faults, aimed at which roles, when, for how long, and the
recovery gap after each; as data and as a JSON file that can be edited and replayed.

Times are real seconds at the schedule's timescale (the windows behind the holds and gaps
were computed at it), counted from the schedule's start. An item's ``nodes`` are empty in
a generated schedule (the role is resolved when the fault begins, from the cluster as it
is then) and filled in the record of a run (``as_run``): replaying that file aims every
fault at the same nodes, in the same order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from harness.errors import ConfigError

FORMAT = 1
KINDS = ("power_cut", "isolate", "degrade", "clock_step", "storage_cut")
# the kinds that take nodes out of the cluster's membership for as long as they hold
NODE_LOSING = frozenset({"power_cut", "isolate"})
ROLES = ("master", "guest-node", "non-master", "any", "minority")


class ScheduleError(ConfigError):
    """A schedule (or its file) that cannot be run as it is."""


@dataclass(frozen=True)
class Item:
    """One fault of a schedule.

    ``at_s``: planned start; ``hold_s``: how long the fault stays in force; ``gap_s``:
    the planned time after it ends before the next fault may begin (the runner also waits
    until the cluster is whole again). ``pick``: a seeded number that chooses among the
    nodes fitting ``role`` at run time. ``params``: the kind's own (``delta_s`` of a clock
    step, ``delay_ms``/``jitter_ms`` of a degradation)."""

    index: int
    at_s: float
    kind: str
    role: str
    hold_s: float
    gap_s: float
    pick: int = 0
    nodes: tuple[str, ...] = ()
    params: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        where = ",".join(self.nodes) if self.nodes else self.role
        extra = "".join(f" {k}={v:g}" for k, v in sorted(self.params.items()))
        return f"#{self.index} {self.kind} {where}{extra} for {self.hold_s:.1f} s"


@dataclass(frozen=True)
class Schedule:
    seed: int | None
    nodes: tuple[str, ...]  # the cluster it was made for
    timescale: float
    duration_s: float
    concurrency: int
    allow_quorum_loss: bool
    guests: int  # HA guests the run sets up (one per node by default)
    mix: dict[str, float]
    items: tuple[Item, ...]
    origin: str = "generated"  # "generated", "as-run", "shrunk", "edited"

    @property
    def length_s(self) -> float:
        """Planned end of the last fault plus its gap."""
        return max((i.at_s + i.hold_s + i.gap_s for i in self.items), default=0.0)

    def with_items(self, items: list[Item] | tuple[Item, ...], origin: str) -> Schedule:
        return replace(self, items=tuple(items), origin=origin)

    # -- the file ---------------------------------------------------------------------
    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["nodes"] = list(self.nodes)
        data["items"] = [{**asdict(i), "nodes": list(i.nodes)} for i in self.items]
        return {"pvechaos_schedule": FORMAT, **data}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n"

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps())
        return path


def loads(text: str, source: str = "the schedule") -> Schedule:
    """A schedule from its JSON text; anything malformed is refused with what and where."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"{source} is not JSON: {exc}",
                            hint="write it with `pvechaos chaos plan -o FILE`") from None
    if not isinstance(raw, dict) or raw.get("pvechaos_schedule") != FORMAT:
        raise ScheduleError(f"{source} is not a pvechaos schedule (format {FORMAT})",
                            hint='the file starts with {"pvechaos_schedule": 1, ...}')
    try:
        nodes = tuple(str(n) for n in raw["nodes"])
        items = tuple(_item(i, n, nodes) for n, i in enumerate(raw["items"]))
        schedule = Schedule(
            seed=None if raw.get("seed") is None else int(raw["seed"]), nodes=nodes,
            timescale=float(raw["timescale"]), duration_s=float(raw["duration_s"]),
            concurrency=int(raw["concurrency"]),
            allow_quorum_loss=bool(raw.get("allow_quorum_loss", False)),
            guests=int(raw.get("guests", len(nodes))),
            mix={str(k): float(v) for k, v in dict(raw.get("mix", {})).items()},
            items=items, origin=str(raw.get("origin", "edited")))
    except ScheduleError as exc:
        raise ScheduleError(f"{source}: {exc}", hint=exc.hint) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ScheduleError(f"{source}: missing or malformed field {exc}",
                            hint="compare it with a file written by `pvechaos chaos plan`"
                            ) from None
    validate(schedule)
    return schedule


def load(path: Path) -> Schedule:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScheduleError(f"cannot read schedule {path}: {exc.strerror}",
                            hint="give the path of a file written by `pvechaos chaos plan`"
                            ) from None
    return loads(text, str(path))


def _item(raw: dict, n: int, nodes: tuple[str, ...]) -> Item:
    kind, role = str(raw["kind"]), str(raw["role"])
    if kind not in KINDS:
        raise ScheduleError(f"item {n}: unknown fault kind {kind!r}",
                            hint=f"kinds are {', '.join(KINDS)}")
    if role not in ROLES:
        raise ScheduleError(f"item {n}: unknown role {role!r}",
                            hint=f"roles are {', '.join(ROLES)}")
    targets = tuple(str(x) for x in raw.get("nodes") or ())
    unknown = [t for t in targets if t not in nodes]
    if unknown:
        raise ScheduleError(f"item {n}: {', '.join(unknown)} not among the schedule's "
                            f"nodes {', '.join(nodes)}", hint="fix the item's nodes")
    return Item(index=int(raw.get("index", n)), at_s=float(raw["at_s"]), kind=kind,
                role=role, hold_s=float(raw["hold_s"]), gap_s=float(raw["gap_s"]),
                pick=int(raw.get("pick", 0)), nodes=targets,
                params={str(k): float(v) for k, v in dict(raw.get("params", {})).items()})


def validate(schedule: Schedule) -> None:
    """Refuse what no run could do: negative times, items out of order."""
    last = 0.0
    for item in schedule.items:
        if item.hold_s <= 0 or item.gap_s < 0 or item.at_s < 0:
            raise ScheduleError(f"item {item.index}: times must be positive (at_s "
                                f"{item.at_s}, hold_s {item.hold_s}, gap_s {item.gap_s})")
        if item.at_s < last:
            raise ScheduleError(f"item {item.index} starts at {item.at_s} s, before the "
                                f"item ahead of it ({last} s)",
                                hint="keep the items in the order they begin")
        last = item.at_s
    if schedule.concurrency < 1:
        raise ScheduleError(f"concurrency {schedule.concurrency} must be at least 1")
    if schedule.timescale <= 0:
        raise ScheduleError(f"timescale {schedule.timescale} must be > 0")


def check_fits(schedule: Schedule, names: tuple[str, ...] | list[str], timescale: float
               ) -> None:
    """The schedule was made for this cluster and timescale (its holds and gaps are
    windows computed at that timescale; its nodes are the cluster's)."""
    if abs(schedule.timescale - timescale) > 1e-9:
        raise ScheduleError(f"the schedule was made for timescale {schedule.timescale:g}, "
                            f"this run has {timescale:g}",
                            hint=f"run it with --timescale {schedule.timescale:g}")
    if tuple(sorted(schedule.nodes)) != tuple(sorted(names)):
        raise ScheduleError(f"the schedule was made for nodes {', '.join(schedule.nodes)}, "
                            f"this cluster has {', '.join(names)}",
                            hint="plan one for this cluster (`--chaos-seed`)")
