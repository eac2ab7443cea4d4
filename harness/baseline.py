"""A baseline: what one side of a before/after comparison measured and how it behaved.

``pvechaos baseline --from metrics.json [--from ...] -o BASELINE.json`` stores, from one or
more runs' metrics files (harness/metrics.py, with the ``steps`` and ``settings`` of
harness/run_record.py): every figure's samples (each repeat of each run is one sample)
with the verdict each run gave it, every story step's outcomes, each scenario's setting
(lab kind, node count, timescale), and the nodes' PVE package versions and corosync
constants. harness/verify.py reads a side from either kind of file (``load_side``).

A side whose runs mix settings for one scenario is refused: its samples would not be
samples of one thing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare import Key, Samples, read_document, samples
from harness.errors import ConfigError

FORMAT = 1  # the "pvechaos_baseline" value this version writes and reads
SETTING = ("lab", "nodes", "timescale")  # what must match for figures to compare
OUTCOMES = ("passed", "failed", "skipped")


@dataclass
class Side:
    """Figures, step outcomes, settings and versions of one side (a baseline, or runs)."""

    sources: list[str] = field(default_factory=list)  # the run ids it is made of
    figures: dict[Key, Samples] = field(default_factory=dict)
    steps: dict[Key, tuple[str, ...]] = field(default_factory=dict)  # (scenario, step)
    budget_steps: set[Key] = field(default_factory=set)
    settings: dict[str, dict[str, object]] = field(default_factory=dict)  # per scenario
    versions: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> packages
    constants: dict[str, dict[str, int]] = field(default_factory=dict)  # per scenario

    def pve_managers(self) -> str:
        """``8.4.1 (node1, node2, node3)``: the pve-manager versions of the nodes."""
        by: dict[str, list[str]] = {}
        for node, packages in sorted(self.versions.items()):
            by.setdefault(packages.get("pve-manager", "?"), []).append(node)
        return "; ".join(f"{v} ({', '.join(nodes)})" for v, nodes in sorted(by.items())) \
            or "not recorded"

    def corosync(self) -> str:
        """``token 3650 ms, consensus 4380 ms``: the corosync constants the runs read."""
        seen = sorted({(c.get("token_ms"), c.get("consensus_ms"))
                       for c in self.constants.values()}, key=str)
        return "; ".join(f"token {t} ms, consensus {c} ms" for t, c in seen) or \
            "not recorded"

    def to_json(self) -> dict[str, object]:
        return {
            "pvechaos_baseline": FORMAT, "sources": self.sources,
            "figures": [{"scenario": s, "name": n, "values": list(v.values),
                         "verdicts": list(v.verdicts)} for (s, n), v in self.figures.items()],
            "steps": [{"scenario": s, "step": n, "outcomes": list(o),
                       "budget": (s, n) in self.budget_steps}
                      for (s, n), o in self.steps.items()],
            "settings": self.settings, "versions": self.versions, "constants": self.constants}


def load_side(paths: Sequence[Path]) -> Side:
    """One side from metrics files and baselines (their samples pooled); bad input is a
    ConfigError naming the file."""
    side = Side()
    for path in paths:
        doc = read_document(path)
        if "pvechaos_baseline" in doc:
            _add_baseline(side, path, doc)
        else:
            _add_run(side, path, doc)
    return side


def save_side(side: Side, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(side.to_json(), indent=1, allow_nan=False) + "\n")


def _add_run(side: Side, path: Path, doc: dict) -> None:
    side.sources.append(str(doc.get("run", path)))
    for key, found in samples(path, doc).items():
        _pool(side, key, found)
    for row in _rows(path, doc, "steps", ("scenario", "step", "outcome")):
        if row["outcome"] not in OUTCOMES:
            raise ConfigError(f"{path}: step {row['scenario']} / {row['step']} has outcome "
                              f"{row['outcome']!r}", hint=f"one of {', '.join(OUTCOMES)}")
        key = (str(row["scenario"]), str(row["step"]))
        side.steps[key] = (*side.steps.get(key, ()), str(row["outcome"]))
        if row.get("budget"):
            side.budget_steps.add(key)
    for row in _rows(path, doc, "settings", ("scenario", *SETTING)):
        scenario = str(row["scenario"])
        _setting(side, path, scenario, {k: row[k] for k in SETTING})
        side.versions.update(row.get("versions") or {})
        if row.get("constants"):
            side.constants[scenario] = row["constants"]


def _add_baseline(side: Side, path: Path, doc: dict) -> None:
    if doc.get("pvechaos_baseline") != FORMAT:
        raise ConfigError(f"{path}: baseline format {doc.get('pvechaos_baseline')!r}",
                          hint=f"this pvechaos reads format {FORMAT}; make the baseline "
                               "again with `pvechaos baseline`")
    side.sources.extend(str(s) for s in doc.get("sources", []))
    for row in _rows(path, doc, "figures", ("scenario", "name", "values", "verdicts")):
        values = row["values"]
        if not values or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                 and v == v and abs(v) != float("inf") for v in values):
            raise ConfigError(f"{path}: figure {row['scenario']} / {row['name']} has values "
                              f"{values!r:.80}", hint="each figure needs finite seconds")
        _pool(side, (str(row["scenario"]), str(row["name"])),
              Samples(tuple(float(v) for v in values), tuple(map(str, row["verdicts"]))))
    for row in _rows(path, doc, "steps", ("scenario", "step", "outcomes")):
        key = (str(row["scenario"]), str(row["step"]))
        side.steps[key] = (*side.steps.get(key, ()), *map(str, row["outcomes"]))
        if row.get("budget"):
            side.budget_steps.add(key)
    for scenario, setting in (doc.get("settings") or {}).items():
        _setting(side, path, scenario, setting)
    side.versions.update(doc.get("versions") or {})
    side.constants.update(doc.get("constants") or {})


def _pool(side: Side, key: Key, found: Samples) -> None:
    had = side.figures.get(key)
    side.figures[key] = found if had is None else Samples(
        had.values + found.values, had.verdicts + found.verdicts)


def _setting(side: Side, path: Path, scenario: str, setting: dict) -> None:
    setting = {k: setting.get(k) for k in SETTING}
    had = side.settings.setdefault(scenario, setting)
    if had != setting:
        raise ConfigError(
            f"{path}: {scenario} ran with {describe(setting)} here and with "
            f"{describe(had)} in another run of the same side",
            hint="a side's samples must come from one setting: make each baseline from "
                 "runs with the same --lab, --nodes and --timescale")


def describe(setting: dict) -> str:
    return ", ".join(f"{k} {setting.get(k)}" for k in SETTING)


def _rows(path: Path, doc: dict, name: str, needs: tuple[str, ...]) -> list[dict]:
    rows = doc.get(name, [])
    if not isinstance(rows, list):
        raise ConfigError(f'{path}: "{name}" is not a list', hint="take the file from a "
                          "finished run or `pvechaos baseline`")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or any(k not in row for k in needs):
            raise ConfigError(f"{path}: {name}[{i}] is not a {name[:-1]}: {row!r:.120}",
                              hint=f"each entry needs {', '.join(needs)}")
    return rows
