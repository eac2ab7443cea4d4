"""Lab actions as INFO lines: each fault done or undone on ``pvechaos.faults``, each step
of the cluster's formation on ``pvechaos.lab``; one line each, naming node and lab."""

from __future__ import annotations

import logging

import pytest

from harness.clock import Clock
from harness.errors import LabError
from harness.faults import FaultInjector
from harness.formation import bring_up, form_cluster, wait_for_whole_cluster
from harness.lab_api import Capability
from harness.node_command import NodeCommand
from harness.pve import cluster_fs, parse_pvecm_status
from harness.timeline import Timeline
from tests.twins import Call, FakeCluster, FakeLab, FakeNode

pytest_plugins = ["pytester"]

CUT = NodeCommand("partition", "cut from node3", apply="nft add table inet t",
                  undo="nft delete table inet t")


def lines(caplog, logger: str) -> list[str]:
    found = [r for r in caplog.records if r.name == logger]
    assert all(r.levelno == logging.INFO and "\n" not in r.getMessage() for r in found
               if r.levelno < logging.WARNING)
    return [r.getMessage() for r in found]


def injector(capabilities: Capability = Capability.POWER):
    nodes = [FakeNode(n) for n in ("node1", "node2", "node3")]
    lab = FakeLab(capabilities, names=("node1", "node2", "node3"))
    return FaultInjector(lab, Timeline(Clock()), FakeCluster(*nodes, lab=lab)), lab


def test_power_cuts_and_ons_are_one_info_line_each(caplog):
    caplog.set_level(logging.INFO, logger="pvechaos.faults")
    faults, _ = injector()
    faults.power_cut("node3")
    faults.power_on("node3")
    assert lines(caplog, "pvechaos.faults") == [
        "power cut node3 (fake lab fake)", "power on node3 (fake lab fake)"]


def test_lab_verbs_in_node_faults_and_teardown_are_logged(caplog):
    caplog.set_level(logging.INFO, logger="pvechaos.faults")
    faults, _ = injector(Capability.POWER | Capability.FREEZE | Capability.PARTITION)
    faults.freeze("node1")
    faults.link_down("node2")
    fault = faults._node_fault("node3", CUT)
    faults.end(fault)
    faults.power_cut("node2")
    assert faults.undo_all() == []
    assert lines(caplog, "pvechaos.faults") == [
        "freeze node1 (fake lab fake)",
        "link down node2 (fake lab fake)",
        "fault begin: partition on node3: cut from node3 (fake lab fake)",
        "fault end: partition on node3: cut from node3 (fake lab fake)",
        "power cut node2 (fake lab fake)",
        "undone at teardown: power node2 (fake lab fake)",
        "undone at teardown: link node2 (fake lab fake)",
        "undone at teardown: freeze node1 (fake lab fake)",
    ]


def test_a_refused_fault_logs_nothing_and_a_failed_undo_a_warning(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="pvechaos.faults")
    faults, lab = injector()
    with pytest.raises(LabError):
        faults.freeze("node1")  # the fake lab has no FREEZE
    faults.power_cut("node1")

    def broken(node: str) -> None:
        raise LabError(f"{node} will not boot\nsecond line")

    monkeypatch.setattr(lab, "power_on", broken)
    assert len(faults.undo_all()) == 1
    records = [r for r in caplog.records if r.name == "pvechaos.faults"]
    assert [r.getMessage() for r in records] == [
        "power cut node1 (fake lab fake)",
        "could not undo power node1 at teardown: node1 will not boot second line"]
    assert records[-1].levelno == logging.WARNING


def test_storage_outages_are_logged_as_fault_begin_and_end(caplog):
    caplog.set_level(logging.INFO, logger="pvechaos.faults")
    faults, _ = injector(Capability.POWER | Capability.STORAGE)
    faults.storage_outage()
    faults.storage_restore()
    assert lines(caplog, "pvechaos.faults") == [
        "fault begin: storage.outage of 198.18.0.1 (fake lab fake)",
        "fault end: storage.outage of 198.18.0.1 (fake lab fake)"]


# -- formation ---------------------------------------------------------------------------
class QuorateNode(FakeNode):
    """A node of a formed three-node cluster: `pvecm status` as recorded on one."""

    def quorum(self, *, timeout_s: float = 10.0):
        return parse_pvecm_status(self.check("pvecm", "status", timeout_s=timeout_s))


@pytest.fixture
def status(load) -> str:
    text = load("pve8/pvecm_status_quorate.txt")
    quorum = parse_pvecm_status(text)
    assert quorum.quorate and quorum.nodes == 3  # the recording fits the cluster
    return text


def formed_cluster(status: str, lab: FakeLab | None = None, extra: dict | None = None
                   ) -> FakeCluster:
    """Three QuorateNodes; ``extra`` maps further argv to their answers (else "")."""
    answers = {("pvecm", "status"): status, **(extra or {})}

    def answer(call: Call) -> str:
        return answers.get(call.argv, "")

    nodes = [QuorateNode(n, answer, address=f"198.18.0.{11 + i}")
             for i, n in enumerate(("node1", "node2", "node3"))]
    return FakeCluster(*nodes, lab=lab)


def test_forming_the_cluster_logs_create_each_join_and_the_whole_cluster(caplog, status):
    caplog.set_level(logging.INFO, logger="pvechaos.lab")
    form_cluster(formed_cluster(status), "c1", timeout_s=5)
    said = lines(caplog, "pvechaos.lab")
    assert said[:3] == [
        "cluster c1 created on node1 (link0 198.18.0.11)",
        "node2 joined cluster c1 (link0 198.18.0.12, --use_ssh)",
        "node3 joined cluster c1 (link0 198.18.0.13, --use_ssh)"]
    assert said[3].startswith("cluster c1 formed: 3 nodes quorate in ") and len(said) == 4


def test_bring_up_logs_the_shared_storage_and_the_ready_snapshot(caplog, status):
    lab = FakeLab(Capability.POWER | Capability.SNAPSHOT)
    cluster = formed_cluster(status, lab, {("pvesm", "status"): "Name Type Status\n"
                                                                "shared nfs active\n"})
    caplog.set_level(logging.INFO, logger="pvechaos.lab")
    bring_up(cluster, "c1")
    said = lines(caplog, "pvechaos.lab")
    assert said[-2:] == ["shared storage shared (198.18.0.1:/export) active on every node",
                         "fake lab fake: `ready` snapshot saved"]
    assert ("save_ready", "") in lab.calls


def test_a_prepared_lab_is_only_waited_for_and_says_so(caplog, monkeypatch, status):
    lab = FakeLab()
    monkeypatch.setattr(lab, "prepared", lambda: True)
    cluster = formed_cluster(status, lab)
    caplog.set_level(logging.INFO, logger="pvechaos.lab")
    bring_up(cluster, "c1")
    (said,) = lines(caplog, "pvechaos.lab")
    assert said.startswith("fake lab fake: its cluster is there already; all 3 nodes "
                           "quorate in ")
    probe = (cluster_fs.write_probe_command(),)
    assert all(c.argv in (("pvecm", "status"), probe) for n in cluster.nodes() for c in n.calls)


def test_the_cluster_is_whole_only_once_every_node_takes_a_write_to_etc_pve(status):
    """corosync says quorate first; pmxcfs may learn it up to 5 s later (loop.c): node2's
    /etc/pve refuses the probe twice, and the wait goes on until it takes it."""
    probe = (cluster_fs.write_probe_command(),)
    refusals = {"node2": 2}

    def answers_for(name: str):
        def answer(call: Call):
            if call.argv == probe and refusals.get(name):
                refusals[name] -= 1
                return 1, "", "Permission denied"
            return status if call.argv == ("pvecm", "status") else ""
        return answer

    nodes = [QuorateNode(n, answers_for(n)) for n in ("node1", "node2", "node3")]
    wait_for_whole_cluster(FakeCluster(*nodes), timeout_s=10)
    assert refusals["node2"] == 0
    assert sum(c.argv == probe for c in nodes[1].calls) == 3


# -- what a user sees with --log-cli-level ------------------------------------------------
LIVE = """
import paramiko

from harness.clock import Clock
from harness.faults import FaultInjector
from harness.lab_api import LabNode
from harness.ssh import SshSession
from harness.timeline import Timeline
from tests.twins import FakeLab


def test_story(monkeypatch):
    FaultInjector(FakeLab(), Timeline(Clock())).power_cut("node3")

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(paramiko.SSHClient, "connect", refuse)
    try:
        SshSession(LabNode("node2", "198.18.0.12")).run("pvecm status")
    except Exception:
        pass
"""


@pytest.mark.parametrize("level, shown", [("DEBUG", True), ("INFO", False)])
def test_log_cli_level_shows_lab_actions_and_ssh_at_debug(pytester, monkeypatch, level,
                                                          shown):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_live=LIVE)
    result = pytester.runpytest(f"--log-cli-level={level}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["INFO * power cut node3 (fake lab fake)*"])
    ssh = "DEBUG * node2 (198.18.0.12): connect to port 22 as root failed: *refused in *"
    if shown:
        result.stdout.fnmatch_lines([ssh])
    else:
        result.stdout.no_fnmatch_line(ssh)
