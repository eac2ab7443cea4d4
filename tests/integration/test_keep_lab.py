"""pytest --keep-lab: a scenario that fails leaves its embedded lab running (its cluster
quorate, reached with `pvechaos lab ssh`), says how to reach it, and `pvechaos lab down`
then leaves nothing; a scenario that passes, or a run without the option, removes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import leftovers

REPO = Path(__file__).resolve().parents[2]
NAME, SUBNET = "keep", "198.18.58.0/24"
CONFIG = EmbeddedConfig(name=NAME, subnet=SUBNET)
SCENARIO = '''
def test_the_cluster_is_formed(cluster):
    assert cluster.node("node1").quorum(timeout_s=10).quorate


def test_a_failing_step(cluster):
    assert {outcome!r} == "passes", "this step fails on purpose"
'''


def run_scenario(tmp_path: Path, outcome: str, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_keep.py").write_text(SCENARIO.format(outcome=outcome))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "test_keep.py", "-p", "lab.pytest_plugin",
         "-p", "no:cacheprovider", "--timescale", "0.1", "--lab-name", NAME,
         "--lab-subnet", SUBNET, "--metrics-file", str(tmp_path / "metrics.json"), *extra],
        cwd=tmp_path, text=True, capture_output=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.DEVNULL)


def pvechaos(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab.cli", *argv], cwd=REPO, text=True,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture
def kept():
    yield
    pvechaos("lab", "down", "--name", NAME)
    assert leftovers(CONFIG) == []


def test_a_failed_scenario_keeps_its_lab_until_lab_down(tmp_path, kept):
    done = run_scenario(tmp_path, "fails", "--keep-lab")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed" in done.stdout
    assert "--keep-lab: test_keep failed" in done.stdout
    assert f"pvechaos lab ssh --name {NAME} node1" in done.stdout
    status = pvechaos("lab", "ssh", "--name", NAME, "node2", "pvecm", "status")
    assert status.returncode == 0, status.stderr
    assert "Quorate:          Yes" in status.stdout
    assert leftovers(CONFIG) != []  # still there after the run ended
    down = pvechaos("lab", "down", "--name", NAME)
    assert down.returncode == 0, down.stderr
    assert leftovers(CONFIG) == []


@pytest.mark.parametrize("outcome, extra", [("passes", ("--keep-lab",)), ("fails", ())])
def test_otherwise_the_lab_is_removed(tmp_path, kept, outcome, extra):
    done = run_scenario(tmp_path, outcome, *extra)
    assert done.returncode == (0 if outcome == "passes" else 1), done.stdout + done.stderr
    assert "--keep-lab" not in done.stdout
    assert leftovers(CONFIG) == []
