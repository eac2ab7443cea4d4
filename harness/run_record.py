"""What a baseline needs beside the figures, written into metrics.json with them.

- ``steps``: every story step's outcome (passed, failed, skipped) with its scenario,
  step name and repeat index (--repeat, harness/repeat.py): a behaviour is compared as
  well as a figure (a step that passed before and fails now is a regression whatever the
  figures say). Written by the controller as each step's report ends (xdist included).
- ``settings``: per scenario and repetition, before its first step: the lab kind and its
  ``describe()``, the node count, the timescale, the corosync constants as the cluster
  runs them (harness/expectations ``read_constants``) and each node's `pveversion -v`
  packages (harness/pve/version.py). Two runs of different settings do not compare
  (harness/verify.py refuses them); the versions are what an upgrade changes.

Both live beside ``metrics`` in the run's document (``MetricsFile.update``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import PvechaosError
from harness.expectations import read_constants
from harness.metrics import MetricsFile
from harness.pve.version import parse_pveversion_verbose
from harness.repeat import repeat_of, without_repeat
from harness.timescale import Timescale

_RECORDED = pytest.StashKey[set]()  # the story repetitions whose setting is written
PHASES_FAIL = ("setup", "call", "teardown")


def scenario_of(nodeid: str) -> str:
    """``scenarios/test_ha_story.py[repeat2]::test_x`` -> ``test_ha_story`` (the name
    the ``metrics`` fixture gives a module's figures)."""
    return Path(without_repeat(nodeid).split("::", 1)[0]).stem


def step_of(nodeid: str) -> str:
    return without_repeat(nodeid).split("::", 1)[-1]


def _file(config: pytest.Config) -> MetricsFile:
    from harness.plugin import RUN_ID

    return MetricsFile(config.getoption("metrics_file"), config.stash[RUN_ID])


class StepOutcomes:
    """Each story step's outcome, from its setup, call and teardown reports (controller)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.pending: dict[str, dict[str, object]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "story" not in report.keywords:
            return
        row = self.pending.setdefault(report.nodeid, {
            "scenario": scenario_of(report.nodeid), "step": step_of(report.nodeid),
            "repeat": repeat_of(report.nodeid), "outcome": "passed",
            "budget": "budget" in report.keywords})
        if report.failed or (report.skipped and report.when != "teardown"):
            if row["outcome"] == "passed":  # the first phase that did not pass says why
                row["outcome"] = "failed" if report.failed else "skipped"
                row["detail"] = _detail(report)
        if report.when == "teardown":
            del self.pending[report.nodeid]
            _file(self.config).update(lambda doc: doc.setdefault("steps", []).append(row))


def _detail(report: pytest.TestReport) -> str:
    """A failure's message (its first line) or a skip's reason, in at most 200
    characters."""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])[:200]
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip()[:200] if lines else ""


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORDED] = set()
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(StepOutcomes(config), "pvechaos-step-outcomes")


@pytest.fixture(autouse=True)
def _record_setting(request: pytest.FixtureRequest) -> None:
    """Before a story repetition's first step on a cluster: its setting, into the run's
    metrics file (once per repetition)."""
    item = request.node
    if item.get_closest_marker("story") is None or "cluster" not in request.fixturenames:
        return
    from harness.plugin import story_key

    key = story_key(item)
    if key in request.config.stash[_RECORDED]:
        return
    request.config.stash[_RECORDED].add(key)
    setting = read_setting(request.getfixturevalue("cluster"),
                           request.getfixturevalue("clock").timescale)
    row = {"scenario": scenario_of(item.nodeid), "repeat": repeat_of(item.nodeid), **setting}
    _file(request.config).update(lambda doc: doc.setdefault("settings", []).append(row))


def read_setting(cluster, timescale: Timescale) -> dict[str, object]:
    """The lab, node count, timescale, corosync constants and every powered node's
    packages; what cannot be read is said under ``errors`` (never a failed step)."""
    lab = cluster.lab
    errors: list[str] = []
    versions: dict[str, dict[str, str]] = {}
    for node in cluster.nodes():
        if not lab.is_powered(node.name):
            continue
        try:
            versions[node.name] = parse_pveversion_verbose(
                node.check("pveversion", "-v", timeout_s=15))
        except PvechaosError as exc:
            errors.append(f"{node.name}: pveversion -v: {exc}")
    constants: dict[str, int] | None = None
    try:
        read = read_constants(cluster.nodes()[0], timescale, len(cluster.names))
        constants = {"token_ms": read.token_ms, "consensus_ms": read.consensus_ms,
                     "token_coefficient_ms": read.token_coefficient_ms,
                     "hold_ms": round(read.token_hold * 1000)}
    except PvechaosError as exc:
        errors.append(f"corosync constants: {exc}")
    return {"lab": lab.kind, "nodes": len(cluster.names), "timescale": timescale.factor,
            "describe": dict(lab.describe()), "constants": constants, "versions": versions,
            **({"errors": errors} if errors else {})}

