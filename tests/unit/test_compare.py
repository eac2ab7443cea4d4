"""harness.compare: two metrics.json files written to disk, compared by the real command."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compare import Noise, compare, load, main
from harness.errors import ConfigError
from harness.metrics import Metric

ROOT = Path(__file__).resolve().parents[2]


def metric(name: str, value_s: float, *, scenario: str = "test_ha_story",
           budget_s: float | None = None) -> dict:
    return Metric(scenario, name, value_s, {"node": "node1"}, None, budget_s).to_json()


def write(path: Path, *metrics: dict, run: str = "run") -> Path:
    path.write_text(json.dumps({"run": run, "metrics": list(metrics)}, indent=1) + "\n")
    return path


def run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def row(out: str, name: str) -> str:
    (line,) = [ln for ln in out.splitlines() if f" {name} " in ln]
    return line


@pytest.fixture
def before(tmp_path) -> Path:
    return write(tmp_path / "before.json", metric("time_to_detect", 8.5),
                 metric("time_to_recovery", 30.0, budget_s=60.0), run="before")


def test_doubled_recovery_is_a_regression(capsys, tmp_path, before):
    after = write(tmp_path / "after.json", metric("time_to_detect", 8.6),
                  metric("time_to_recovery", 60.0, budget_s=90.0))
    code, out, _ = run(capsys, before, after)
    assert code == 1
    line = row(out, "time_to_recovery")
    assert "30.00 s" in line and "60.00 s" in line and "+30.00 s" in line and "+100%" in line
    assert "REGRESSION" in line
    assert "noise" in row(out, "time_to_detect")
    assert out.splitlines()[-1].startswith("2 metrics: 1 regression(s)")


def test_identical_runs_pass(capsys, before):
    code, out, _ = run(capsys, before, before)
    assert code == 0
    assert "REGRESSION" not in out
    assert "2 within noise" in out.splitlines()[-1]


def test_a_few_percent_apart_is_noise(capsys, tmp_path, before):
    after = write(tmp_path / "after.json", metric("time_to_detect", 8.9),
                  metric("time_to_recovery", 31.5, budget_s=60.0))  # +5%, +5%
    code, out, _ = run(capsys, before, after)
    assert code == 0
    assert "noise (within ±4.50 s)" in row(out, "time_to_recovery")


def test_an_improvement_is_not_a_regression(capsys, tmp_path, before):
    after = write(tmp_path / "after.json", metric("time_to_detect", 8.5),
                  metric("time_to_recovery", 15.0, budget_s=60.0))
    code, out, _ = run(capsys, before, after)
    assert code == 0
    assert "improvement" in row(out, "time_to_recovery") and "-50%" in out


def test_ok_to_over_budget_is_a_regression_within_noise(capsys, tmp_path):
    before = write(tmp_path / "before.json", metric("time_to_recovery", 59.0, budget_s=60.0))
    after = write(tmp_path / "after.json", metric("time_to_recovery", 61.0, budget_s=60.0))
    code, out, _ = run(capsys, before, after)
    assert code == 1
    assert "REGRESSION (within ±8.85 s; ok -> over_budget)" in row(out, "time_to_recovery")


def test_a_metric_on_one_side_only_is_listed_not_judged(capsys, tmp_path, before):
    after = write(tmp_path / "after.json", metric("time_to_detect", 8.5),
                  metric("time_to_error", 6.0, scenario="test_failing_guest"))
    code, out, _ = run(capsys, before, after)
    assert code == 0
    assert row(out, "time_to_recovery").endswith("only before")
    assert row(out, "time_to_error").endswith("only after")
    assert out.splitlines()[-1].endswith("1 only before, 1 only after")


def test_repeats_are_samples_and_their_spread_widens_the_noise(tmp_path):
    spread = (20.0, 30.0, 40.0)  # mean 30, sample stdev 10
    before = load(write(tmp_path / "b.json", *(metric("time_to_recovery", v) for v in spread)))
    after = load(write(tmp_path / "a.json", metric("time_to_recovery", 55.0)))
    (change,) = compare(before, after)
    assert change.before.mean == 30.0 and len(change.before.values) == 3
    assert change.noise_s == pytest.approx(4.5 + 3 * 10.0)
    assert change.status == "noise"  # +25 s would be a regression without the spread


def test_the_thresholds_are_options(capsys, tmp_path, before):
    after = write(tmp_path / "after.json", metric("time_to_detect", 8.5),
                  metric("time_to_recovery", 33.0, budget_s=60.0))  # +3 s, +10 %
    assert run(capsys, before, after)[0] == 0
    assert run(capsys, before, after, "--rel-noise", "0.05")[0] == 1
    (change,) = [c for c in compare(load(before), load(after), Noise(abs_s=0.5, rel=0.05))
                 if c.name == "time_to_recovery"]
    assert change.regression


@pytest.mark.parametrize("content, says", [
    (None, "no such file"),
    ("{\"run\": \"x\", \"metrics\": [", "is not JSON"),
    ("", "is not JSON"),
    ("{\"run\": \"x\"}", 'has no "metrics" list'),
    ("[1, 2]", 'has no "metrics" list'),
    ("{\"metrics\": [{\"scenario\": \"s\", \"name\": \"n\"}]}", "metrics[0] is not a metric"),
    ("{\"metrics\": [{\"scenario\": \"s\", \"name\": \"n\", \"value_s\": \"9\"}]}",
     "metrics[0] is not a metric"),
], ids=["missing", "truncated", "empty", "no-metrics", "not-an-object", "no-value",
        "value-not-a-number"])
def test_bad_input_exits_2_naming_the_file(capsys, tmp_path, before, content, says):
    bad = tmp_path / "after.json"
    if content is not None:
        bad.write_text(content)
    with pytest.raises(ConfigError, match="fix: "):
        load(bad)
    code, out, err = run(capsys, before, bad)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {bad}")
    assert says in err and "Traceback" not in err


def test_a_directory_is_bad_input(capsys, tmp_path, before):
    code, _, err = run(capsys, before, tmp_path)
    assert code == 2 and f"cannot read {tmp_path}" in err


def test_the_command_runs_as_a_module(tmp_path, before):
    """`python3 -m harness.compare` exits 0, 1 and 2 and keeps tracebacks off stderr."""
    doubled = write(tmp_path / "doubled.json", metric("time_to_detect", 8.5),
                    metric("time_to_recovery", 60.0, budget_s=60.0))

    def command(*argv: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness.compare", *map(str, argv)],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    same, worse = command(before, before), command(before, doubled)
    missing = command(before, tmp_path / "missing.json")
    assert (same.returncode, worse.returncode, missing.returncode) == (0, 1, 2)
    assert "REGRESSION" in worse.stdout and "REGRESSION" not in same.stdout
    assert "missing.json: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr + worse.stderr


@pytest.mark.parametrize("figure", [math.nan, math.inf, -math.inf])
def test_a_figure_that_is_not_finite_is_invalid_not_noise(capsys, tmp_path, before, figure):
    bad = write(tmp_path / "after.json", metric("time_to_detect", 8.6),
                metric("time_to_recovery", figure))  # json writes NaN, Infinity
    assert "NaN" in bad.read_text() or "Infinity" in bad.read_text()
    code, out, err = run(capsys, before, bad)
    assert code == 2 and out == ""  # nothing compared, no "noise" row
    assert err.startswith(f"error: {bad}: metrics[1] test_ha_story / time_to_recovery has an "
                          f"invalid figure: value_s is ")
    assert "not a duration" in err and "fix: remove that entry" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, bad, before)  # on the before side too
    assert code == 2 and "time_to_recovery has an invalid figure" in err
