"""Each kind of failure lands in its own report category: small test modules run with
harness.plugin and the real allure-pytest, their Allure results judged by the categories
the way Allure judges them (first match; status, then the message regex searched)."""

from __future__ import annotations

import json

import pytest

from harness.verdicts import CATEGORIES, LAB_ERROR, category_of

pytest_plugins = ["pytester"]

KINDS = """
import pytest

from harness.errors import LabError, WaitTimeout
from harness.invariants import InvariantChecker
from harness.clock import Clock
from harness.timeline import Timeline
from harness.verdicts import BudgetExceeded, OutsideWindow
from harness.writelog import LogReport


@pytest.fixture
def invariants():
    doubled = LogReport(records=4, overlaps=[("boot-a", "boot-b")])
    return InvariantChecker(Timeline(Clock()), "ct:100", read_log=lambda: doubled,
                            acknowledged=lambda: [])


@pytest.fixture
def lab():
    raise LabError("node2 did not answer SSH within 20 s")


def test_doubled_guest(invariants):
    pass


def test_budget():
    raise BudgetExceeded("time_to_recovery: recovery budget missed")


def test_window():
    raise OutsideWindow("HA did not behave as PVE designs it")


@pytest.mark.quorum
def test_quorum():
    assert False, "node3 is still quorate"


def test_lab(lab):
    pass


def test_cluster_too_slow():
    raise WaitTimeout("ct:100 to serve again", 30.0, "no answer")
"""


@pytest.fixture
def results(pytester: pytest.Pytester, tmp_path) -> dict[str, dict]:
    pytester.makepyfile(test_kinds=KINDS)
    alluredir = tmp_path / "allure"
    pytester.runpytest("-p", "harness.plugin", f"--metrics-file={tmp_path / 'm.json'}",
                       f"--alluredir={alluredir}", "-p", "no:cacheprovider")
    found = {}
    for path in alluredir.glob("*-result.json"):
        result = json.loads(path.read_text())
        found[result["name"]] = result
    found["_dir"] = alluredir  # type: ignore[assignment]
    return found


@pytest.mark.parametrize(("test", "status", "expected"), [
    ("test_doubled_guest", "failed", "Safety invariant broken"),
    ("test_budget", "failed", "Recovery budget exceeded"),
    ("test_window", "failed", "Behaviour outside PVE's predicted window"),
    ("test_quorum", "failed", "Quorum assertion"),
    ("test_lab", "broken", LAB_ERROR),
    ("test_cluster_too_slow", "failed", None),  # a product defect of no particular kind
])
def test_each_kind_of_failure_lands_in_its_own_category(results, test, status, expected):
    result = results[test]
    assert result["status"] == status, result.get("statusDetails")
    assert category_of(result) == expected, result["statusDetails"]["message"]


def test_the_results_carry_the_categories_and_the_environment(results):
    alluredir = results["_dir"]
    assert json.loads((alluredir / "categories.json").read_text()) == CATEGORIES
    environment = (alluredir / "environment.properties").read_text()
    assert "git.revision=" in environment
