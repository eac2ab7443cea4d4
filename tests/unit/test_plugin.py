"""harness.plugin: stories, budget items, the invariants check around a step, and the
metrics table, on small test modules run by pytester with the plugin loaded."""

from __future__ import annotations

import json

import pytest

from harness.metrics import Metric
from harness.plugin import metrics_table

pytest_plugins = ["pytester"]


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """Runs the generated modules with harness.plugin (and no other installed plugin) and
    a metrics file under tmp_path."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    metrics_file = tmp_path / "out" / "metrics.json"

    def run_it(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "harness.plugin", f"--metrics-file={metrics_file}",
                                  "-rs", "-p", "no:cacheprovider", *args)
    run_it.metrics_file = metrics_file
    return run_it


STORY = """
import pytest

pytestmark = pytest.mark.story


def test_power_cut():
    pass


def test_quorum_lost():
    assert False, "node3 still quorate"


def test_expected_one():
    pass


@pytest.mark.budget
def test_recovery_budget():
    pass
"""


def test_a_failed_story_step_skips_the_later_steps_naming_it(pytester, run):
    pytester.makepyfile(test_story=STORY)
    result = run()
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "SKIPPED * an earlier step of this story failed (test_quorum_lost); "
        "the story cannot go on from an unknown state"])
    assert "node3 still quorate" in result.stdout.str()


def test_a_failure_stops_only_its_own_story(pytester, run):
    pytester.makepyfile(test_story=STORY, test_other_story="""
import pytest

pytestmark = pytest.mark.story


def test_first():
    pass


def test_second():
    pass
""", test_plain="""
def test_fails():
    assert False


def test_runs_anyway():
    pass
""")
    result = run()
    # test_story: 1 passed, 1 failed, 2 skipped; the other story: 2 passed; plain: 1 + 1
    result.assert_outcomes(passed=4, failed=2, skipped=2)


def test_a_missed_budget_does_not_stop_the_story(pytester, run):
    pytester.makepyfile(test_budget_story="""
import pytest

pytestmark = pytest.mark.story


def test_power_cut():
    pass


@pytest.mark.budget
def test_recovery_budget():
    assert False, "recovery budget missed"


def test_heal():
    pass
""")
    result = run()
    result.assert_outcomes(passed=2, failed=1)
    assert "an earlier step of this story failed" not in result.stdout.str()


INVARIANTS = """
import pytest

from harness.clock import Clock
from harness.invariants import InvariantChecker
from harness.timeline import Timeline
from harness.writelog import LogReport

LOG = {"report": LogReport()}


@pytest.fixture(scope="module")
def invariants():
    return InvariantChecker(Timeline(Clock()), "ct:100", read_log=lambda: LOG["report"],
                            acknowledged=lambda: [])


def test_clean_step(invariants):
    pass


def test_step_during_which_two_copies_ran(invariants):
    LOG["report"] = LogReport(overlaps=[("boot-a", "boot-b")])


def test_next_step(invariants):
    pass


def test_without_the_fixture():
    LOG["report"] = LogReport(overlaps=[("boot-a", "boot-c")])
"""


def test_a_step_fails_when_an_invariant_broke_during_it(pytester, run):
    pytester.makepyfile(test_invariants_story=INVARIANTS)
    result = run("-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*test_step_during_which_two_copies_ran FAILED*",
        "*InvariantBroken: safety invariants broken during this step:",
        "*doubled_guest (ct:100): boots boot-a and boot-b wrote at the same time",
    ])
    # reported once: the next step that watches the invariants passes
    result.stdout.fnmatch_lines(["*test_next_step PASSED*"])


def test_a_steps_own_failure_comes_before_the_invariants(pytester, run):
    pytester.makepyfile(test_own_failure="""
import pytest

from harness.clock import Clock
from harness.invariants import InvariantChecker
from harness.timeline import Timeline
from harness.writelog import LogReport


@pytest.fixture
def invariants():
    return InvariantChecker(Timeline(Clock()), "ct:100",
                            read_log=lambda: LogReport(overlaps=[("a", "b")]),
                            acknowledged=lambda: [])


def test_step(invariants):
    assert False, "the step's own check"
""")
    result = run()
    result.assert_outcomes(failed=1)
    assert "the step's own check" in result.stdout.str()
    assert "safety invariants broken" not in result.stdout.str()


def test_a_fixture_named_invariants_that_is_no_checker_is_left_alone(pytester, run):
    pytester.makepyfile(test_other_fixture="""
import pytest


@pytest.fixture
def invariants():
    return ["not a checker"]


def test_step(invariants):
    pass
""")
    run().assert_outcomes(passed=1)


def test_recorded_metrics_end_the_terminal_report_and_the_file(pytester, run):
    pytester.makepyfile(test_ha_story="""
from harness.expectations import Budget, Window
from harness.timescale import REAL_TIME


def test_recovery(metrics):
    metrics.record("time_to_recovery", 130.1, window=Window(120.0, 151.0, "lock"),
                   budget=Budget(240.0, REAL_TIME), node="node3")
    metrics.record("downtime", 128.0)
""")
    result = run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*pvechaos metrics*",
        "scenario*metric*measured*window*budget*verdict",
        "test_ha_story*time_to_recovery*130.10 s*[[]120.0, 151.0] s*240.0 s*ok",
        "test_ha_story*downtime*128.00 s*-*-*measured",
        f"(written to {run.metrics_file}, run *)",
    ])
    doc = json.loads(run.metrics_file.read_text())
    (recovery, downtime) = doc["metrics"]
    assert recovery["window_s"] == [120.0, 151.0] and recovery["verdict"] == "ok"
    assert recovery["data"] == {"node": "node3", "window_basis": "lock"}
    assert downtime["verdict"] == "measured"


# -- the table itself --------------------------------------------------------------------
def test_metrics_table_shows_window_budget_and_verdict_in_aligned_columns():
    rows = [Metric("ha_story", "time_to_recovery", 130.123, {}, (120.0, 151.0), 240.0),
            Metric("ha_story", "time_to_fence", 59.0, {}, (57.03, 70.53), None),
            Metric("ha_story", "after_expected_time_to_recovery", 160.0, {}, (60.0, 101.0),
                   120.0),
            Metric("ha_story", "downtime", 3.0)]
    header, recovery, fence, late, downtime = metrics_table(rows)
    assert header.split() == ["scenario", "metric", "measured", "window", "budget",
                              "verdict"]
    assert recovery.split("  ")[0] == "ha_story"
    cells = [c.strip() for c in recovery.split("  ") if c.strip()]
    assert cells == ["ha_story", "time_to_recovery", "130.12 s", "[120.0, 151.0] s",
                     "240.0 s", "ok"]
    assert [c.strip() for c in fence.split("  ") if c.strip()][3:] == [
        "[57.0, 70.5] s", "-", "ok"]
    assert late.endswith("outside_window+over_budget")
    assert [c.strip() for c in downtime.split("  ") if c.strip()][2:] == [
        "3.00 s", "-", "-", "measured"]
    # numbers are right-aligned under their header, names left-aligned
    for row, column, cell in ((recovery, "measured", "130.12 s"),
                              (downtime, "measured", "3.00 s"),
                              (recovery, "window", "[120.0, 151.0] s"),
                              (fence, "budget", "-"), (recovery, "budget", "240.0 s")):
        assert header.index(column) + len(column) == row.rindex(cell) + len(cell)
    assert header.index("verdict") == recovery.index("ok") == downtime.index("measured")
    assert header.index("metric") == downtime.index("downtime")


def test_the_allure_config_files_failures_under_the_harness_categories():
    """.ci/allurerc.json (what the HTML report is made with) carries the same categories
    as the categories.json the plugin writes next to the results."""
    import json
    from pathlib import Path

    from harness.verdicts import CATEGORIES

    config = json.loads((Path(__file__).resolve().parents[2] / ".ci/allurerc.json")
                        .read_text())
    assert config["categories"] == CATEGORIES
    assert config["historyPath"] == "reports/history.jsonl"
    assert config["plugins"]["awesome"]["options"]["singleFile"] is True
