"""Where a recorded figure goes besides metrics.json: the test's JUnit properties (which
``--junitxml`` writes and CI dashboards read); and what never goes anywhere: a figure that
is not a finite number (NaN, inf), refused when it is recorded."""

from __future__ import annotations

import json
import logging
import math
import re
import xml.etree.ElementTree as ET

import pytest

from harness.errors import PvechaosError
from harness.metrics import Metric, MetricsFile

pytest_plugins = ["pytester"]


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path, monkeypatch):
    """Runs the generated module with harness.plugin (no other installed plugin), a
    metrics file and a JUnit XML file under tmp_path."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    metrics_file, junit = tmp_path / "metrics.json", tmp_path / "junit.xml"

    def run_it(source: str) -> pytest.RunResult:
        pytester.makepyfile(test_ha_story=source)
        return pytester.runpytest("-p", "harness.plugin", f"--metrics-file={metrics_file}",
                                  f"--junitxml={junit}", "-p", "no:cacheprovider")
    run_it.metrics_file, run_it.junit = metrics_file, junit
    return run_it


def properties(junit_file) -> dict[str, dict[str, str]]:
    """{test name: {property name: value}} from a JUnit XML file."""
    root = ET.parse(junit_file).getroot()
    return {case.get("name"): {p.get("name"): p.get("value")
                               for p in case.iter("property")}
            for case in root.iter("testcase")}


def test_each_figure_is_a_junit_property_with_its_window_budget_and_verdict(run):
    result = run("""
from harness.expectations import Budget, Window
from harness.timescale import REAL_TIME


def test_recovery(metrics):
    metrics.record("time_to_recovery", 130.1234, window=Window(120.0, 151.0, "lock"),
                   budget=Budget(240.0, REAL_TIME), node="node3")
    metrics.record("time_to_fence", 80.0, window=Window(57.0, 70.5, "fence"))
    metrics.record("downtime", 128.0)


def test_nothing_measured():
    pass
""")
    result.assert_outcomes(passed=2)
    found = properties(run.junit)
    assert found["test_nothing_measured"] == {}
    assert found["test_recovery"] == {
        "time_to_recovery": "130.123",
        "time_to_recovery.window_low_s": "120.0",
        "time_to_recovery.window_high_s": "151.0",
        "time_to_recovery.budget_s": "240.0",
        "time_to_recovery.verdict": "ok",
        "time_to_fence": "80.0",
        "time_to_fence.window_low_s": "57.0",
        "time_to_fence.window_high_s": "70.5",
        "time_to_fence.verdict": "outside_window",
        "downtime": "128.0",
        "downtime.verdict": "measured",
    }
    # the same figures as the metrics file holds
    doc = json.loads(run.metrics_file.read_text())
    assert [(m["name"], m["value_s"]) for m in doc["metrics"]] == [
        ("time_to_recovery", 130.123), ("time_to_fence", 80.0), ("downtime", 128.0)]


def test_an_observed_figure_is_a_property_too(run):
    run("""
def test_fence(metrics):
    metrics.record_observed("time_to_fence", lambda: 61.5)
""").assert_outcomes(passed=1)
    assert properties(run.junit)["test_fence"] == {"time_to_fence": "61.5",
                                                   "time_to_fence.verdict": "measured"}


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "-math.inf"])
def test_a_figure_that_is_not_finite_fails_its_step_and_reaches_no_output(run, value):
    result = run(f"""
import math


def test_recovery(metrics):
    metrics.record("downtime", 3.0)
    metrics.record("time_to_recovery", {value})
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*PvechaosError: metric 'time_to_recovery' of test_ha_story: value_s is *, not a "
        "finite number of seconds",
        "*fix: this is a harness bug: the function that measured it must return None*"])
    assert properties(run.junit)["test_recovery"] == {"downtime": "3.0",
                                                      "downtime.verdict": "measured"}
    doc = json.loads(run.metrics_file.read_text())
    assert [m["name"] for m in doc["metrics"]] == ["downtime"]


# -- the writer itself -------------------------------------------------------------------
@pytest.mark.parametrize("metric, field", [
    (Metric("s", "m", math.nan), "value_s is nan"),
    (Metric("s", "m", math.inf), "value_s is inf"),
    (Metric("s", "m", 1.0, {}, (0.0, math.inf)), "window_s is inf"),
    (Metric("s", "m", 1.0, {}, (math.nan, 2.0)), "window_s is nan"),
    (Metric("s", "m", 1.0, {}, None, -math.inf), "budget_s is -inf"),
    (Metric("s", "m", 1.0, {"lag_s": math.nan}), "data['lag_s'] is nan"),
])
def test_the_file_refuses_a_figure_that_is_not_finite_and_keeps_what_it_held(
        tmp_path, metric, field):
    file = MetricsFile(tmp_path / "metrics.json", "run1")
    file.append(Metric("s", "before", 2.0))
    held = file.path.read_text()
    with pytest.raises(PvechaosError, match=re.escape(
            f"metric 'm' of s: {field}, not a finite number of seconds")):
        file.append(metric)
    assert file.path.read_text() == held
    assert [m.name for m in file.read()] == ["before"]


def test_finite_figures_and_their_data_are_written():
    Metric("s", "m", 0.0, {"node": "node1", "n": 3}, (0.0, 1.5), 10).check_finite()


# -- logging under the plugin ------------------------------------------------------------
@pytest.fixture
def paramiko_log():
    """paramiko's logger with no level set (as in a fresh run), restored afterwards."""
    logger = logging.getLogger("paramiko")
    kept = logger.level
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.setLevel(kept)


def test_the_plugin_holds_paramikos_chatter_but_not_pvechaos_debug_lines(pytester,
                                                                          monkeypatch,
                                                                          paramiko_log):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_live="""
import logging


def test_chatter():
    logging.getLogger("paramiko.transport").debug("kex chatter")
    logging.getLogger("paramiko.transport").info("Authentication (publickey) successful!")
    logging.getLogger("pvechaos.ssh").debug("node1 (198.18.0.11): `true` -> exit status 0")
""")
    result = pytester.runpytest("-p", "harness.plugin", "--log-cli-level=DEBUG",
                                f"--metrics-file={pytester.path / 'm.json'}",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["INFO * Authentication (publickey) successful!",
                                 "DEBUG * node1 (198.18.0.11): `true` -> exit status 0"])
    result.stdout.no_fnmatch_line("*kex chatter*")


def test_a_paramiko_level_someone_set_is_left_alone(paramiko_log):
    from harness.ssh import quiet_paramiko

    quiet_paramiko()
    assert paramiko_log.level == logging.INFO
    paramiko_log.setLevel(logging.DEBUG)
    quiet_paramiko()
    assert paramiko_log.level == logging.DEBUG
