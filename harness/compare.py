"""Compare two `reports/metrics.json` files, e.g. before and after a PVE upgrade.

    python3 -m harness.compare BEFORE.json AFTER.json [--abs-noise S] [--rel-noise R]

Metrics are paired by (scenario, name). A pair that appears more than once in one file
(several runs appended, or a figure measured repeatedly) is a set of samples, compared by
its mean.

Noise model. Every figure is a duration where higher is worse. Runs on the same cluster
differ by a poll interval or a CRM round, so a change counts only beyond the noise:

    noise = max(abs_s, rel x before) [+ 3 x the larger sample standard deviation]

``abs_s`` (default 1.0 s, ``--abs-noise``) covers short figures, where one poll is a large
share; ``rel`` (default 0.15, ``--rel-noise``) long ones, where a round or two is a small
share. The standard-deviation term is added only when either side has two or more samples:
then the runs themselves show how far they scatter. An increase beyond the noise is a
REGRESSION, a decrease beyond it an improvement. A figure whose verdict was ``ok`` in every
sample before and failed (outside its window, over its budget) in any sample after is a
regression too, however small the change: the run that judged it had the window and
budget at hand. A figure measured on one side only is listed, never a regression (a
scenario added, renamed or not run).

A figure that is not a finite number (``NaN``, ``Infinity``, which JSON as Python
reads it lets through) is bad input naming the metric, never compared.

Exit status: 0 no regression, 1 a regression, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.metrics import Metric

Key = tuple[str, str]  # (scenario, metric name)
PASSING = ("ok", "measured")  # every other verdict is a failed window or budget


@dataclass(frozen=True)
class Noise:
    """The thresholds of the noise model (module docstring): seconds, and a share of before."""

    abs_s: float = 1.0
    rel: float = 0.15


@dataclass(frozen=True)
class Samples:
    """Every value of one (scenario, name) in one file, with the verdict each run gave."""

    values: tuple[float, ...]
    verdicts: tuple[str, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __str__(self) -> str:
        return f"{self.mean:.2f} s" + (f" (n={len(self.values)})" if len(self.values) > 1
                                       else "")


@dataclass(frozen=True)
class Change:
    """One metric across the two files; ``before`` or ``after`` is None when absent."""

    scenario: str
    name: str
    before: Samples | None
    after: Samples | None
    noise_s: float | None  # the threshold this pair was judged with

    @property
    def delta_s(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after.mean - self.before.mean

    @property
    def percent(self) -> float | None:
        if self.delta_s is None or self.before.mean == 0:
            return None
        return 100 * self.delta_s / self.before.mean

    @property
    def verdict_broke(self) -> str | None:
        """``ok -> over_budget`` when every run before said ok and some run after failed."""
        if self.before is None or self.after is None:
            return None
        return verdict_broke(self.before, self.after)

    @property
    def status(self) -> str:
        if self.before is None:
            return "only after"
        if self.after is None:
            return "only before"
        if self.delta_s > self.noise_s or self.verdict_broke:
            return "REGRESSION"
        return "improvement" if self.delta_s < -self.noise_s else "noise"

    @property
    def regression(self) -> bool:
        return self.status == "REGRESSION"

    @property
    def reason(self) -> str:
        """Why the status, for the table: the threshold, and a broken verdict."""
        if self.noise_s is None:
            return ""
        beyond = "beyond" if abs(self.delta_s) > self.noise_s else "within"
        return "; ".join(filter(None, [f"{beyond} ±{self.noise_s:.2f} s", self.verdict_broke]))


def verdict_broke(before: Samples, after: Samples) -> str | None:
    """``ok -> over_budget`` when every sample before was ok and some sample after failed
    its window or budget (the run that judged it had them at hand)."""
    if any(v != "ok" for v in before.verdicts):
        return None
    failed = [v for v in after.verdicts if v not in PASSING]
    return f"ok -> {failed[0]}" if failed else None


def load(path: Path) -> dict[Key, Samples]:
    """The samples of every (scenario, name) in a metrics file, in file order."""
    return samples(path, read_document(path))


def read_document(path: Path) -> dict:
    """A metrics.json (or a baseline, harness/baseline.py) as a dict; bad input is a
    ConfigError naming the file and the fix."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file", hint="give the metrics.json a run wrote "
                          "(pytest --metrics-file, default reports/metrics.json)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}",
                          hint="give the path of a readable metrics.json file") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ConfigError(f"{path} is not JSON: {exc}",
                          hint="a run writes the file whole; take it from a finished run "
                               "(an empty file means the run measured nothing)") from None
    if not isinstance(doc, dict):
        raise ConfigError(f'{path} has no "metrics" list (not a JSON object)',
                          hint='expected {"run": <id>, "metrics": [...]} as pytest writes it '
                               "to reports/metrics.json")
    return doc


def samples(path: Path, doc: dict) -> dict[Key, Samples]:
    """The samples of every (scenario, name) in a metrics document read from ``path``."""
    if not isinstance(doc.get("metrics"), list):
        raise ConfigError(f'{path} has no "metrics" list',
                          hint='expected {"run": <id>, "metrics": [...]} as pytest writes it '
                               "to reports/metrics.json")
    values: dict[Key, list[float]] = {}
    verdicts: dict[Key, list[str]] = {}
    for i, row in enumerate(doc["metrics"]):
        metric = _metric(path, i, row)
        key = (metric.scenario, metric.name)
        values.setdefault(key, []).append(float(metric.value_s))
        verdicts.setdefault(key, []).append(str(row.get("verdict", metric.verdict)))
    return {key: Samples(tuple(values[key]), tuple(verdicts[key])) for key in values}


def _metric(path: Path, index: int, row: object) -> Metric:
    """One row as a Metric (its recorded verdict is the caller's to read)."""
    metric = None
    if isinstance(row, dict):
        try:
            metric = Metric.from_json(row)
        except (KeyError, TypeError):
            pass
    if metric is None or isinstance(metric.value_s, bool) or not isinstance(
            metric.value_s, int | float):
        raise ConfigError(f"{path}: metrics[{index}] is not a metric: {row!r:.120}",
                          hint='each entry needs "scenario", "name" and a number "value_s"')
    if not math.isfinite(metric.value_s):  # JSON as Python reads it takes NaN and Infinity
        raise ConfigError(
            f"{path}: metrics[{index}] {metric.scenario} / {metric.name} has an invalid "
            f"figure: value_s is {metric.value_s!r}, not a duration; it cannot be compared",
            hint="remove that entry or take the figure from a run that measured it (a "
                 "NaN or Infinity is no measurement, and no threshold judges it)")
    return metric


def compare(before: dict[Key, Samples], after: dict[Key, Samples],
            noise: Noise = Noise()) -> list[Change]:
    """Every metric of either file, in the order of ``before``, then those new in ``after``."""
    changes = []
    for key in [*before, *(k for k in after if k not in before)]:
        b, a = before.get(key), after.get(key)
        threshold = None
        if b is not None and a is not None:
            threshold = max(noise.abs_s, noise.rel * b.mean)
            if len(b.values) > 1 or len(a.values) > 1:
                threshold += 3 * max(b.stdev, a.stdev)
        changes.append(Change(*key, b, a, threshold))
    return changes


def table(changes: list[Change]) -> list[str]:
    """scenario, metric, before, after, change (s and %), verdict: one line each."""
    rows = [("scenario", "metric", "before", "after", "change", "%", "verdict")]
    for c in changes:
        delta = "-" if c.delta_s is None else f"{c.delta_s:+.2f} s"
        percent = "-" if c.percent is None else f"{c.percent:+.0f}%"
        verdict = c.status + (f" ({c.reason})" if c.reason else "")
        rows.append((c.scenario, c.name, str(c.before or "-"), str(c.after or "-"), delta,
                     percent, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i in (0, 1, 6) else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


def summary(changes: list[Change]) -> str:
    n = Counter(c.status for c in changes)
    return (f"{len(changes)} metrics: {n['REGRESSION']} regression(s), "
            f"{n['improvement']} improvement(s), {n['noise']} within noise, "
            f"{n['only before']} only before, {n['only after']} only after")


def _non_negative(text: str) -> float:
    try:
        if (value := float(text)) >= 0:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")


def main(argv: list[str] | None = None, prog: str = "python3 -m harness.compare") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Compare two metrics.json files; exit 1 on a regression, 2 on bad input.")
    parser.add_argument("before", type=Path, help="metrics.json of the reference run")
    parser.add_argument("after", type=Path, help="metrics.json of the run to judge")
    parser.add_argument("--abs-noise", type=_non_negative, default=Noise.abs_s, metavar="S",
                        help="changes up to S seconds are noise (default %(default)g)")
    parser.add_argument("--rel-noise", type=_non_negative, default=Noise.rel, metavar="R",
                        help="changes up to R x the before value are noise "
                             "(default %(default)g)")
    args = parser.parse_args(argv)
    try:
        before, after = load(args.before), load(args.after)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changes = compare(before, after, Noise(args.abs_noise, args.rel_noise))
    for line in table(changes):
        print(line)
    print(summary(changes))
    return 1 if any(c.regression for c in changes) else 0


if __name__ == "__main__":
    sys.exit(main())
