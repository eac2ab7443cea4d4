"""A lab `pvechaos lab up` leaves running: found again from its directory, refused to any
other run's sweep, removed by `down`; an `up` failing half way removes what it made."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.errors import LabError
from harness.timescale import Timescale
from lab.embedded import detached
from lab.embedded.config import EmbeddedConfig
from lab.embedded.state import LabState, sweep
from lab.processes import process_alive
from tests.unit.detached_support import running_lab, stand_in

NAME = "unitx"  # no kernel object of this name exists: down's stray sweep finds nothing


def test_a_running_lab_is_found_as_it_was_made(tmp_path, request):
    running = running_lab(tmp_path, request, name=NAME, nodes=4)
    assert running.config.node_names == ("node1", "node2", "node3", "node4")
    assert running.config.subnet == "198.18.60.0/24"
    assert running.config.timescale == Timescale(0.1)
    assert running.cluster_name == "pvechaos"


def test_a_running_lab_remembers_its_qdevice(tmp_path, request):
    running = running_lab(tmp_path, request, name=NAME, nodes=2, qdevice=True)
    assert running.config.qdevice and running.config.node_names == ("node1", "node2")
    assert running.config.qnetd_address == "198.18.60.10"


def test_a_lab_whose_owner_died_is_not_running(tmp_path, request):
    running_lab(tmp_path, request, name=NAME)
    state = LabState(tmp_path / NAME)
    state.load()
    state.detach(_dead_pid())
    assert detached.find(EmbeddedConfig(name=NAME, state_root=tmp_path)) is None


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_test_runs_lab_is_not_a_running_lab_to_explore(tmp_path, request):
    running_lab(tmp_path, request, name=NAME, detached=False)
    assert detached.find(EmbeddedConfig(name=NAME, state_root=tmp_path)) is None


def test_no_lab_directory_is_no_lab(tmp_path):
    assert detached.find(EmbeddedConfig(name=NAME, state_root=tmp_path)) is None


def test_another_runs_sweep_refuses_a_running_lab_and_names_lab_down(tmp_path, request):
    running_lab(tmp_path, request, name=NAME)
    with pytest.raises(LabError) as info:
        sweep(tmp_path / NAME)
    assert f"lab '{NAME}' is running: `pvechaos lab up` left it up" in str(info.value)
    assert f"take it down first (pvechaos lab down --name {NAME})" in str(info.value)
    assert (tmp_path / NAME / "state.json").exists()


def test_a_test_runs_live_lab_is_refused_even_to_down(tmp_path, request):
    running_lab(tmp_path, request, name=NAME, detached=False)
    with pytest.raises(LabError, match="belongs to a running process"):
        detached.down(EmbeddedConfig(name=NAME, state_root=tmp_path))


def test_down_kills_the_labs_processes_and_removes_its_directory(tmp_path, request):
    running = running_lab(tmp_path, request, name=NAME)
    node = stand_in(request)  # one of the lab's processes, as state.json lists it
    state = LabState(running.config.lab_dir)
    state.load()
    state.set_process("node1", node.pid)
    owner = state.data["owner"]
    assert detached.down(EmbeddedConfig(name=NAME, state_root=tmp_path)) is True
    assert node.wait(timeout=10) == -9
    assert not process_alive(owner["pid"], owner["start"])
    assert not running.config.lab_dir.exists()
    assert detached.down(EmbeddedConfig(name=NAME, state_root=tmp_path)) is False


def test_ssh_uses_the_labs_key_and_host_keys_only(tmp_path, request):
    running = running_lab(tmp_path, request, name=NAME)
    shell = running.ssh_argv("node1", [])
    assert shell[0] == "ssh" and shell[-1] == "root@198.18.60.11"
    joined = " ".join(shell)
    assert f"-i {tmp_path}/{NAME}/id_ed25519" in joined
    assert f"UserKnownHostsFile={tmp_path}/{NAME}/known_hosts" in joined
    assert "StrictHostKeyChecking=yes" in joined and "IdentitiesOnly=yes" in joined
    assert "BatchMode" not in joined  # an interactive shell
    command = running.ssh_argv("node3", ["ha-manager", "status"])
    assert command[-3:] == ["root@198.18.60.13", "ha-manager", "status"]
    assert "BatchMode=yes" in command


def test_how_to_reach_names_every_way_in(tmp_path, request):
    running = running_lab(tmp_path, request, name=NAME)
    text = "\n".join(detached.how_to_reach(running))
    assert f"lab '{NAME}' is up: nodes node1 198.18.60.11, node2 198.18.60.12" in text
    assert f"pvechaos lab ssh --name {NAME} node1\n" in text
    assert f"pvechaos lab down --name {NAME}" in text
    assert f"raw:    ssh -i {tmp_path}/{NAME}/id_ed25519 " in text
    assert text.rstrip().splitlines()[-2].endswith("root@198.18.60.11")


PVECM = "Cluster information\n-------------------\nName: pvechaos\nQuorate:          {q}\n"


@pytest.mark.parametrize(("quorate", "rc"), [("Yes", 0), ("No", 2)])
def test_status_shows_nodes_the_quorum_line_and_ha(tmp_path, request, monkeypatch,
                                                    quorate, rc):
    running = running_lab(tmp_path, request, name=NAME)
    monkeypatch.setattr(detached.Running, "powered",
                        lambda self: {"node1": False, "node2": True, "node3": True})
    asked = []

    def run(_running, node, argv):
        asked.append((node, argv[0]))
        out = PVECM.format(q=quorate) if argv[0] == "pvecm" else "quorum OK\nmaster node2"
        return subprocess.CompletedProcess(argv, rc if argv[0] == "pvecm" else 0, out, "")

    monkeypatch.setattr(detached, "_run", run)
    lines, ok = detached.status(running)
    assert ok is (quorate == "Yes")
    assert asked == [("node2", "pvecm"), ("node2", "ha-manager")]  # the first powered
    assert "  node1    198.18.60.11    off" in lines
    assert "  node2    198.18.60.12    powered" in lines
    assert f"  Quorate:          {quorate}" in lines and "  master node2" in lines
    assert "  Name: pvechaos" not in lines  # only the quorum line of `pvecm status`


def test_status_with_every_node_off_says_so(tmp_path, request, monkeypatch):
    running = running_lab(tmp_path, request, name=NAME)
    monkeypatch.setattr(detached, "_run", lambda *a: pytest.fail("asked a node that is off"))
    lines, ok = detached.status(running)
    assert lines[-1] == "no node is powered" and ok is False


class FakeLab:
    """Stands for EmbeddedLab in `up`: records what was done to it."""

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config, self.name, self.done = config, config.name, []

    def start(self) -> None:
        self.done.append("start")
        known = self.config.lab_dir / "nodes/node1/etc/ssh/pvechaos_known_hosts"
        known.parent.mkdir(parents=True)
        known.write_text("node1,198.18.60.11 ssh-ed25519 AAAA\n")

    def detach(self) -> None:
        self.done.append("detach")

    def close(self) -> None:
        self.done.append("close")


class FakeCluster:
    def __init__(self, lab) -> None:
        self.names = lab.config.node_names

    def close(self) -> None:
        pass


@pytest.fixture
def fake_up(monkeypatch, tmp_path):
    labs = []

    def make(config):
        labs.append(FakeLab(config))
        return labs[-1]

    monkeypatch.setattr(detached, "EmbeddedLab", make)
    monkeypatch.setattr(detached, "Cluster", FakeCluster)
    config = EmbeddedConfig(name=NAME, subnet="198.18.60.0/24", state_root=tmp_path,
                            timescale=Timescale(0.1))
    return config, labs


def test_up_forms_records_and_detaches(fake_up, monkeypatch):
    config, labs = fake_up
    formed = []
    monkeypatch.setattr(detached, "bring_up", lambda cluster, name: formed.append(name))
    said = []
    running = detached.up(config, cluster_name="c1", guest=False, say=said.append)
    assert labs[0].done == ["start", "detach"] and formed == ["c1"]
    record = json.loads((config.lab_dir / detached.RECORD).read_text())
    assert record == {"subnet": "198.18.60.0/24", "allowed_range": "198.18.0.0/15",
                      "nodes": 3, "pve_version": "8.4.1", "timescale": 0.1,
                      "cluster_name": "c1", "guest": None, "qdevice": False,
                      "emulation_bugs": []}
    assert (config.lab_dir / "known_hosts").read_text().startswith("node1,198.18.60.11 ")
    assert running.cluster_name == "c1" and said[0].startswith(f"pvechaos: booting lab '{NAME}'")


@pytest.mark.parametrize("failure", [LabError("pvecm create failed"), KeyboardInterrupt()])
def test_up_failing_or_interrupted_half_way_removes_the_lab(fake_up, monkeypatch, failure):
    config, labs = fake_up

    def fail(cluster, name):
        raise failure

    monkeypatch.setattr(detached, "bring_up", fail)
    said = []
    with pytest.raises(type(failure)):
        detached.up(config, cluster_name="c1", guest=False, say=said.append)
    assert labs[0].done == ["start", "close"]  # never detached
    assert said[-1] == f"pvechaos: lab '{NAME}' did not come up: removing what was made"
    assert not (config.lab_dir / detached.RECORD).exists()
