"""`pvechaos lab up` as a person runs it: the command ends, the lab runs on (its cluster
quorate, reached over `lab ssh` and `lab status`); a second `up` of the name is refused;
an `up` failing half way removes what it made; `lab down` leaves no namespace, link,
cgroup, process or directory of the lab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.waits import hold_for_s
from lab.embedded.config import EmbeddedConfig
from lab.embedded.state import LabState
from tests.integration.conftest import leftovers

REPO = Path(__file__).resolve().parents[2]
NAME, SUBNET = "cli", "198.18.60.0/24"
CONFIG = EmbeddedConfig(name=NAME, subnet=SUBNET)
UP_TIMEOUT_S = 180.0


def pvechaos(*argv: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as the `pvechaos` entry point runs it."""
    return subprocess.run([sys.executable, "-m", "lab.cli", *argv], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def up():
    done = pvechaos("lab", "up", "--name", NAME, "--subnet", SUBNET, "--timescale", "0.1",
                    "--guest", timeout_s=UP_TIMEOUT_S)
    try:
        yield done
    finally:
        pvechaos("lab", "down", "--name", NAME)


def test_up_exits_and_the_lab_runs_on(up):
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"pvechaos lab ssh --name {NAME} node1" in up.stdout
    assert f"pvechaos lab down --name {NAME}" in up.stdout
    state = LabState(CONFIG.lab_dir)
    assert state.load() and state.detached
    processes = state.data["processes"]
    assert {"nfs-server", "node1", "node2", "node3"} <= set(processes)
    def died() -> str | None:  # nothing dies with the command
        for key, entry in processes.items():
            stat = Path(f"/proc/{entry['pid']}/stat")
            if not stat.exists():
                return f"{key} died when `lab up` ended"
            if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return f"{key} is a zombie"
        return None
    # well past a token timeout and many scaled HA rounds
    assert hold_for_s(3.0, died, "every lab process alive after `lab up`") is None


def test_the_cluster_stays_quorate_over_lab_ssh(up):
    for node in ("node1", "node3"):
        done = pvechaos("lab", "ssh", "--name", NAME, node, "pvecm", "status")
        assert done.returncode == 0, done.stderr
        assert "Quorate:          Yes" in done.stdout
        assert "Nodes:            3" in done.stdout


def test_ssh_returns_the_commands_exit_status(up):
    assert pvechaos("lab", "ssh", "--name", NAME, "node2", "exit 7").returncode == 7
    unknown = pvechaos("lab", "ssh", "--name", NAME, "node9", "true")
    assert unknown.returncode == 1 and "its nodes are node1, node2, node3" in unknown.stderr


def test_status_shows_quorum_and_the_guest_under_ha(up):
    done = pvechaos("lab", "status", "--name", NAME)
    assert done.returncode == 0, done.stdout + done.stderr
    for node, address in (("node1", "198.18.60.11"), ("node3", "198.18.60.13")):
        assert f"{node:<8} {address:<15} powered" in done.stdout
    assert "Quorate:          Yes" in done.stdout
    assert "service ct:100 (node1, started)" in done.stdout


def test_a_second_up_of_the_name_is_refused_and_the_lab_stays(up):
    again = pvechaos("lab", "up", "--name", NAME, "--subnet", "198.18.135.0/24")
    assert again.returncode == 1
    assert f"lab '{NAME}' is running: `pvechaos lab up` left it up" in again.stderr
    assert f"pvechaos lab down --name {NAME}" in again.stderr
    still = pvechaos("lab", "ssh", "--name", NAME, "node1", "pvecm", "status")
    assert "Quorate:          Yes" in still.stdout


def test_an_up_failing_half_way_removes_what_it_made(up):
    other = EmbeddedConfig(name="clib", subnet=SUBNET)  # the subnet is the running lab's
    failed = pvechaos("lab", "up", "--name", other.name, "--subnet", SUBNET)
    assert failed.returncode == 1
    assert f"lab subnet {SUBNET} is already used on {CONFIG.bridge}" in failed.stderr
    assert leftovers(other) == []
    assert pvechaos("lab", "status", "--name", NAME).returncode == 0  # the first lab runs on


def test_preflight_on_the_running_lab_passes_every_check(up):
    done = pvechaos("preflight", "--name", NAME)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout.splitlines()
    assert table[0].startswith("check") and table[-1].startswith("preflight: ")
    assert " 0 fail" in table[-1], done.stdout
    assert len(table) >= 2 + 8  # a line for each check, whatever their names


def test_preflight_of_a_lab_that_is_not_running_names_lab_up():
    done = pvechaos("preflight", "--name", "nosuch")
    assert done.returncode == 1
    assert "nosuch" in done.stderr and "lab up" in done.stderr


def test_down_leaves_nothing_behind(up):
    done = pvechaos("lab", "down", "--name", NAME)
    assert done.returncode == 0, done.stderr
    assert leftovers(CONFIG) == []
    gone = pvechaos("lab", "status", "--name", NAME)
    assert gone.returncode == 1
    assert f"no lab named '{NAME}' is running" in gone.stderr
