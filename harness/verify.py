"""The verdict: a run (or several) against a baseline, per figure and per behaviour.

    pvechaos verify --against BASELINE.json [metrics.json ...] [--force] [--alpha A]
                    [--abs-noise S] [--rel-noise R] [--json OUT] [--plot OUT.png]

Per figure (scenario, metric), from the samples of each side (harness/baseline.py):

- ``same``: no change both significant and beyond the noise (harness/verify_stats.py says
  why both are needed and why Welch's t-test);
- ``faster``: a significant decrease beyond the noise;
- ``REGRESSION``: a significant increase beyond the noise, or a figure that was ``ok`` in
  every sample before and outside its window or over its budget in one after
  (harness/compare.py ``verdict_broke``);
- ``only before`` / ``only after``: measured on one side (a scenario not run, renamed or
  added): listed, never a regression;
- ``different setting``: its scenario ran with another lab kind, node count or
  timescale on the other side: seconds of different settings are not compared.

Per behaviour (scenario, story step), from its outcomes in every repeat:

- ``REGRESSION``: it failed after and never before (passed before): whatever the figures
  say, the cluster now does something it did not;
- ``fixed``: it failed before and never after;
- ``not reached``: it ran before and was skipped after in every repeat (an earlier step
  failed: that step is the regression);
- ``same``, ``only before``, ``only after`` as for figures.

Runs whose settings differ are refused (exit 2) unless ``--force``: then the behaviours
are compared and those figures are listed as ``different setting``.
Exit status: 0 no regression, 1 a regression, 2 bad input or a refused comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.baseline import SETTING, Side, describe, load_side
from harness.compare import Noise, Samples, _non_negative, verdict_broke
from harness.errors import ConfigError
from harness.verify_stats import ALPHA, welch

METRICS = Path("reports/metrics.json")
DEFAULT_NOISE = Noise()


@dataclass(frozen=True)
class FigureVerdict:
    scenario: str
    name: str
    before: Samples | None
    after: Samples | None
    verdict: str
    floor_s: float | None = None  # the noise floor it was judged with
    p: float | None = None  # Welch's two-sided p, None when not tested
    reason: str = ""

    @property
    def delta_s(self) -> float | None:
        return None if self.before is None or self.after is None else \
            self.after.mean - self.before.mean

    def to_json(self) -> dict[str, object]:
        def side(s: Samples | None) -> dict | None:
            return None if s is None else {"values": list(s.values), "mean": round(s.mean, 3),
                                           "stdev": round(s.stdev, 3),
                                           "verdicts": list(s.verdicts)}
        return {"scenario": self.scenario, "name": self.name, "verdict": self.verdict,
                "before": side(self.before), "after": side(self.after),
                "delta_s": None if self.delta_s is None else round(self.delta_s, 3),
                "floor_s": None if self.floor_s is None else round(self.floor_s, 3),
                "p": None if self.p is None else round(self.p, 5), "reason": self.reason}


@dataclass(frozen=True)
class BehaviourVerdict:
    scenario: str
    step: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    verdict: str

    def to_json(self) -> dict[str, object]:
        return {"scenario": self.scenario, "step": self.step, "verdict": self.verdict,
                "before": list(self.before), "after": list(self.after)}


def judge_figure(scenario: str, name: str, before: Samples | None, after: Samples | None,
                 noise: Noise = DEFAULT_NOISE, alpha: float = ALPHA) -> FigureVerdict:
    """One figure's verdict (module docstring; the test: harness/verify_stats.py)."""
    if before is None or after is None:
        return FigureVerdict(scenario, name, before, after,
                             "only after" if before is None else "only before")
    floor = max(noise.abs_s, noise.rel * before.mean)
    delta = after.mean - before.mean
    p = None
    if len(before.values) > 1 and len(after.values) > 1:
        p = welch(before.values, after.values)[2]
        changed = p < alpha and abs(delta) > floor
        why = f"p={p:.3f} {'<' if p < alpha else '>='} {alpha:g}, " \
              f"{'beyond' if abs(delta) > floor else 'within'} ±{floor:.2f} s"
    else:  # one sample: no spread to test with, harness/compare.py's rule
        widened = floor + 3 * max(before.stdev, after.stdev)
        changed = abs(delta) > widened
        why = f"1 sample, {'beyond' if changed else 'within'} ±{widened:.2f} s"
    broke = verdict_broke(before, after)
    verdict = "REGRESSION" if (changed and delta > 0) or broke else \
        "faster" if changed else "same"
    return FigureVerdict(scenario, name, before, after, verdict, floor, p,
                         "; ".join(filter(None, [why, broke])))


def judge_behaviour(scenario: str, step: str, before: tuple[str, ...],
                    after: tuple[str, ...]) -> BehaviourVerdict:
    if not before or not after:
        return BehaviourVerdict(scenario, step, before, after,
                                "only after" if not before else "only before")
    failed_b, failed_a = "failed" in before, "failed" in after
    if failed_a and not failed_b and "passed" in before:
        verdict = "REGRESSION"
    elif failed_b and not failed_a and "passed" in after:
        verdict = "fixed"
    elif set(after) == {"skipped"} and set(before) != {"skipped"}:
        verdict = "not reached"
    else:
        verdict = "same"
    return BehaviourVerdict(scenario, step, before, after, verdict)


def setting_differences(before: Side, after: Side) -> dict[str, str]:
    """scenario -> how its setting differs, for the scenarios both sides ran with a
    recorded setting."""
    out = {}
    for scenario in before.settings.keys() & after.settings.keys():
        b, a = before.settings[scenario], after.settings[scenario]
        diff = [f"{k} {b.get(k)} before, {a.get(k)} after" for k in SETTING
                if b.get(k) != a.get(k)]
        if diff:
            out[scenario] = "; ".join(diff)
    return out


@dataclass(frozen=True)
class Verdict:
    figures: list[FigureVerdict]
    behaviours: list[BehaviourVerdict]
    differences: dict[str, str]

    @property
    def regression(self) -> bool:
        return any(v.verdict == "REGRESSION" for v in [*self.figures, *self.behaviours])


def verify(before: Side, after: Side, *, noise: Noise = DEFAULT_NOISE, alpha: float = ALPHA,
           force: bool = False) -> Verdict:
    """Every figure and behaviour of either side judged; different settings refused
    (ConfigError) unless ``force``."""
    differences = setting_differences(before, after)
    if differences and not force:
        raise ConfigError(
            "the runs' settings differ, so their seconds do not compare: " + " | ".join(
                f"{s}: {d}" for s, d in sorted(differences.items())),
            hint="run again with the baseline's setting (" + "; ".join(
                f"{s}: {describe(before.settings[s])}" for s in sorted(differences)) +
                 "), or give --force to compare the behaviours anyway (those figures are "
                 "then listed as 'different setting', not judged)")
    figures = []
    for key in [*before.figures, *(k for k in after.figures if k not in before.figures)]:
        b, a = before.figures.get(key), after.figures.get(key)
        if key[0] in differences and b is not None and a is not None:
            figures.append(FigureVerdict(*key, b, a, "different setting",
                                         reason=differences[key[0]]))
        else:
            figures.append(judge_figure(*key, b, a, noise, alpha))
    behaviours = [judge_behaviour(*key, before.steps.get(key, ()), after.steps.get(key, ()))
                  for key in [*before.steps, *(k for k in after.steps
                                               if k not in before.steps)]]
    return Verdict(figures, behaviours, differences)


def _shown(s: Samples | None) -> str:
    if s is None:
        return "-"
    return f"{s.mean:.2f} s" + (f" ±{s.stdev:.2f} (n={len(s.values)})"
                                if len(s.values) > 1 else " (n=1)")


def _outcomes(outcomes: tuple[str, ...]) -> str:
    return ", ".join(f"{n} {o}" for o, n in Counter(outcomes).items()) or "-"


def _columns(rows: list[tuple[str, ...]], left: tuple[int, ...]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i in left else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


def table(result: Verdict, before: Side, after: Side) -> list[str]:
    """The verdict table: the versions, the figures, the behaviours, a summary line."""
    lines = [f"before: PVE {before.pve_managers()}; corosync {before.corosync()}",
             f"after:  PVE {after.pve_managers()}; corosync {after.corosync()}"]
    rows = [("scenario", "figure", "before", "after", "change", "verdict")]
    for f in result.figures:
        change = "-" if f.delta_s is None else f"{f.delta_s:+.2f} s"
        rows.append((f.scenario, f.name, _shown(f.before), _shown(f.after), change,
                     f.verdict + (f" ({f.reason})" if f.reason else "")))
    lines += ["", *_columns(rows, (0, 1, 5))]
    rows = [("scenario", "step", "before", "after", "verdict")]
    rows += [(b.scenario, b.step, _outcomes(b.before), _outcomes(b.after), b.verdict)
             for b in result.behaviours]
    lines += ["", *_columns(rows, (0, 1, 2, 3, 4))] if len(rows) > 1 else \
        ["", "(no story step outcomes recorded)"]
    figures = Counter(f.verdict for f in result.figures)
    behaviours = Counter(b.verdict for b in result.behaviours)
    lines += ["", f"{len(result.figures)} figures: " + ", ".join(
        f"{n} {v}" for v, n in figures.most_common()) + f"; {len(result.behaviours)} "
        "behaviours: " + ", ".join(f"{n} {v}" for v, n in behaviours.most_common())]
    return lines


def to_json(result: Verdict, before: Side, after: Side) -> dict[str, object]:
    return {"regression": result.regression, "different_settings": result.differences,
            "before": {"sources": before.sources, "settings": before.settings,
                       "versions": before.versions},
            "after": {"sources": after.sources, "settings": after.settings,
                      "versions": after.versions},
            "figures": [f.to_json() for f in result.figures],
            "behaviours": [b.to_json() for b in result.behaviours]}


def _alpha(text: str) -> float:
    value = _non_negative(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def main(argv: list[str] | None = None, prog: str = "pvechaos verify") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Judge runs against a baseline; "
                                     "exit 1 on a regression, 2 on bad input.")
    parser.add_argument("--against", required=True, type=Path, metavar="BASELINE",
                        help="the baseline (`pvechaos baseline`) or a metrics.json")
    parser.add_argument("after", nargs="*", type=Path, default=[METRICS],
                        help="metrics.json of the runs to judge (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="compare runs of different settings (behaviours only)")
    parser.add_argument("--alpha", type=_alpha, default=ALPHA,
                        help="significance level of the t-test (default %(default)g)")
    parser.add_argument("--abs-noise", type=_non_negative, default=Noise.abs_s, metavar="S")
    parser.add_argument("--rel-noise", type=_non_negative, default=Noise.rel, metavar="R")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the verdict as JSON")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="before and after side by side, one panel per figure")
    args = parser.parse_args(argv)
    try:
        before, after = load_side([args.against]), load_side(args.after)
        result = verify(before, after, noise=Noise(args.abs_noise, args.rel_noise),
                        alpha=args.alpha, force=args.force)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in table(result, before, after):
        print(line)
    write_outputs(result, before, after, args.json, args.plot)
    return 1 if result.regression else 0


def write_outputs(result: Verdict, before: Side, after: Side, json_path: Path | None,
                  plot_path: Path | None) -> None:
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(to_json(result, before, after), indent=1) + "\n")
    if plot_path is not None:
        from harness.report.before_after import render

        plot_path.parent.mkdir(parents=True, exist_ok=True)
        plot_path.write_bytes(render(result.figures))


def baseline_main(argv: list[str] | None = None, prog: str = "pvechaos baseline") -> int:
    """`pvechaos baseline [--from metrics.json ...] -o BASELINE.json`."""
    from harness.baseline import save_side

    parser = argparse.ArgumentParser(prog=prog, description="Store runs' figures, step "
                                     "outcomes, settings and versions as a baseline.")
    parser.add_argument("--from", dest="sources", action="append", type=Path,
                        metavar="METRICS", help="a run's metrics.json (repeatable; "
                                                f"default: {METRICS})")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="BASELINE")
    args = parser.parse_args(argv)
    try:
        side = load_side(args.sources or [METRICS])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not side.figures and not side.steps:
        print(f"error: {', '.join(map(str, args.sources or [METRICS]))} holds no figure "
              "and no story step\n  fix: give the metrics.json of a scenario run",
              file=sys.stderr)
        return 2
    save_side(side, args.out)
    samples = Counter(len(s.values) for s in side.figures.values())
    print(f"{args.out}: {len(side.figures)} figures ("
          + ", ".join(f"{k} with {n} sample(s)" for n, k in sorted(samples.items()))
          + f"), {len(side.steps)} steps, PVE {side.pve_managers()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
