"""harness.repeat, harness.run_record and harness.baseline_plugin on small story modules
run by pytester with harness.plugin: --repeat N runs each story N times with fresh
module fixtures, metrics.json carries each figure's repeat and each step's outcome, and
--baseline-save / --verify-against judge a run at its end."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.style  # noqa: F401 - numpy loads once a process: before pytester runs
import pytest
from matplotlib import figure  # noqa: F401
from matplotlib.backends import backend_agg  # noqa: F401

from harness.repeat import repeat_of, without_repeat

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]

# the module fixture counts its set-ups in $SETUPS; FAIL_AT="2:test_cut" fails that step in
# repeat 2; the figure is $FIGURE seconds
STORY = """
import os
import pytest

pytestmark = pytest.mark.story


@pytest.fixture(scope="module")
def lab(request):
    with open(os.environ["SETUPS"], "a") as handle:
        handle.write(request.node.nodeid + "\\n")
    yield object()


def test_guest_up(lab):
    pass


def test_cut(lab, metrics, request):
    metrics.record("time_to_recovery", float(os.environ.get("FIGURE", "20")))
    repeat = request.node.nodeid.split("[repeat")[1][0] if "[repeat" in request.node.nodeid \\
        else "1"
    assert os.environ.get("FAIL_AT") != f"{repeat}:test_cut", "guest did not come back"


def test_heal(lab):
    pass
"""

PLAIN = """
def test_plain():
    pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("SETUPS", str(tmp_path / "setups.txt"))
    metrics_file = tmp_path / "out" / "metrics.json"

    def run_it(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "harness.plugin", f"--metrics-file={metrics_file}",
                                  "-p", "no:cacheprovider", *args)
    run_it.metrics_file = metrics_file
    run_it.metrics = lambda: json.loads(metrics_file.read_text())
    run_it.setups = lambda: (tmp_path / "setups.txt").read_text().split()
    return run_it


def test_repeat_ids_parse():
    assert repeat_of("s/test_x.py[repeat12]::test_a") == 12
    assert repeat_of("s/test_x.py::test_a[repeat3]") == 1  # a parameter, not a repeat
    assert without_repeat("s/test_x.py[repeat2]::test_a") == "s/test_x.py::test_a"


def test_each_repeat_is_a_module_of_its_own_with_fresh_fixtures(pytester, run, monkeypatch):
    pytester.makepyfile(test_story=STORY, test_plain=PLAIN)
    monkeypatch.setenv("FAIL_AT", "1:test_cut")
    result = run("--repeat", "2", "-v")
    # repeat 1 fails at test_cut and skips test_heal; repeat 2 runs whole; plain runs once
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["test_plain.py?repeat1?::test_plain PASSED*",
                                 "test_story.py?repeat1?::test_cut FAILED*",
                                 "test_story.py?repeat2?::test_heal PASSED*"])
    assert run.setups() == ["test_story.py[repeat1]", "test_story.py[repeat2]"]
    doc = run.metrics()
    assert [(m["data"]["repeat"], m["value_s"]) for m in doc["metrics"]] == [(1, 20), (2, 20)]
    assert [(s["repeat"], s["step"], s["outcome"]) for s in doc["steps"]] == [
        (1, "test_guest_up", "passed"), (1, "test_cut", "failed"), (1, "test_heal", "skipped"),
        (2, "test_guest_up", "passed"), (2, "test_cut", "passed"), (2, "test_heal", "passed")]
    assert doc["steps"][1]["detail"].startswith("AssertionError: guest did not come back")
    assert {s["scenario"] for s in doc["steps"]} == {"test_story"}


def test_a_node_id_selects_the_step_in_every_repeat(pytester, run):
    pytester.makepyfile(test_story=STORY)
    result = run("--repeat", "3", "test_story.py::test_cut")
    result.assert_outcomes(passed=6)  # test_guest_up comes back as its setup, 3 times


def test_without_repeat_nothing_changes(pytester, run):
    pytester.makepyfile(test_story=STORY)
    run().assert_outcomes(passed=3)
    doc = run.metrics()
    assert "repeat" not in doc["metrics"][0]["data"]
    assert [s["repeat"] for s in doc["steps"]] == [1, 1, 1]


@pytest.mark.parametrize("bad", ["0", "x", "101", "2.5"])
def test_a_bad_repeat_is_a_usage_error(pytester, run, bad):
    result = run("--repeat", bad)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--repeat '{bad}': not a whole number from 1 to 100",
                                 "*fix: give how many times each story runs*"])


def test_baseline_save_then_verify_against_flags_a_slower_run(pytester, run, monkeypatch,
                                                              tmp_path):
    pytester.makepyfile(test_story=STORY)
    baseline = tmp_path / "BASELINE.json"
    monkeypatch.setenv("FIGURE", "20")
    assert run("--repeat", "2", "--baseline-save", str(baseline)).ret == 0
    stored = json.loads(baseline.read_text())
    assert stored["figures"][0]["values"] == [20, 20]
    same = run("--repeat", "2", "--verify-against", str(baseline))
    assert same.ret == 0
    same.stdout.fnmatch_lines(["*test_story*time_to_recovery*same*"])
    monkeypatch.setenv("FIGURE", "40")
    slower = run("--repeat", "2", "--verify-against", str(baseline))
    assert slower.ret == pytest.ExitCode.TESTS_FAILED  # every test passed: the verdict
    slower.assert_outcomes(passed=6)
    slower.stdout.fnmatch_lines(["*time_to_recovery*REGRESSION*"])
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert verdict["regression"] is True
    assert (tmp_path / "out" / "before-after.png").read_bytes().startswith(b"\x89PNG")
    monkeypatch.setenv("FIGURE", "20")
    monkeypatch.setenv("FAIL_AT", "2:test_cut")
    broken = run("--repeat", "2", "--verify-against", str(baseline))
    broken.stdout.fnmatch_lines(["*test_story*test_cut*2 passed*1 passed, 1 failed*"
                                 "REGRESSION*"])


def test_verify_against_a_missing_baseline_is_a_usage_error(pytester, run, tmp_path):
    pytester.makepyfile(test_story=STORY)
    result = run("--verify-against", str(tmp_path / "nope.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--verify-against*no such file*"])


def test_under_xdist_each_step_is_recorded_once(pytester, run, monkeypatch):
    """The controller writes the step outcomes (the workers' reports reach it); the
    repeats may run on different workers, each with its own lab."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_story=STORY)
    result = pytester.runpytest_subprocess(
        "-p", "harness.plugin", "-p", "xdist", "-n", "2", "--repeat", "2",
        f"--metrics-file={run.metrics_file}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    doc = run.metrics()
    assert sorted((s["repeat"], s["step"]) for s in doc["steps"]) == sorted(
        (r, step) for r in (1, 2) for step in ("test_guest_up", "test_cut", "test_heal"))
    assert sorted(m["data"]["repeat"] for m in doc["metrics"]) == [1, 2]
