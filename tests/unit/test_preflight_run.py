"""harness.preflight.run end to end without a lab: each node answers PVE's commands from
the recordings (a Node whose `run` reads tests/data instead of SSH), so the wiring from
commands to checks is tested, and a node that does not answer fails checks, never run."""

from __future__ import annotations

import pytest

from harness import preflight
from harness.cluster import Cluster, Node
from harness.errors import NodeUnreachable
from harness.lab_api import LabNode
from harness.preflight_checks import Verdict
from harness.ssh import CommandResult

NAMES = ("node1", "node2", "node3")


class RecordedNode(Node):
    """A node whose commands answer from ``answers`` (command text -> (rc, stdout))."""

    def __init__(self, spec: LabNode, answers: dict[str, tuple[int, str]],
                 down: bool = False) -> None:
        super().__init__(spec)
        self.answers, self.down, self.asked = answers, down, []

    def run(self, *argv: str, timeout_s: float = 10.0, stdin: str | None = None
            ) -> CommandResult:
        command = argv[0] if len(argv) == 1 else " ".join(argv)
        self.asked.append(command)
        if self.down:
            raise NodeUnreachable(self.name, self.address, "timed out")
        for prefix, (rc, out) in self.answers.items():
            if command.startswith(prefix):
                return CommandResult(self.name, command, rc, out, "", 0.01)
        return CommandResult(self.name, command, 127, "", f"{command}: not found", 0.01)


class FakeLab:
    def nodes(self) -> tuple[LabNode, ...]:
        return tuple(LabNode(n, f"198.18.70.1{i}") for i, n in enumerate(NAMES, 1))


def answers(load, node: str) -> dict[str, tuple[int, str]]:
    me = int(node[-1])
    cfgtool = load("pve8/corosync_cfgtool_all_connected.txt").replace(
        "Local node ID 1", f"Local node ID {me}")
    cfgtool = "\n".join(line.replace("localhost", "connected") if "nodeid" in line
                        else line for line in cfgtool.splitlines())
    cfgtool = cfgtool.replace(f"nodeid:          {me}:\tconnected",
                              f"nodeid:          {me}:\tlocalhost") + "\n"
    return {
        "true": (0, ""),
        "pveversion": (0, load("pve8/pveversion.txt")),
        "pvecm status": (0, load("pve8/pvecm_status_quorate.txt")),
        "corosync-cfgtool -s": (0, cfgtool),
        "corosync-cmapctl -m stats stats.knet": (0, load("pve8/corosync_cmapctl_stats_knet.txt")),
        "corosync-cmapctl nodelist.node": (0, load("pve8/corosync_cmapctl_nodelist.txt")),
        "date +%s.%N": (0, "0\n"),  # replaced below by the harness's own clock
        "systemctl is-active watchdog-mux": (0, "active\n"),
        "pvesm status": (0, load("pve8/pvesm_status_nfs.txt")),
        preflight.STORAGE_CFG: (0, load("pve8/storage_cfg_nfs.txt")),
        "ha-manager config": (0, load("pve8/ha_manager_config_ct.txt")),
        "for f in /etc/pve/nodes/*/lxc/100.conf": (0, load("pve8/lxc_conf_shared.txt")),
    }


@pytest.fixture
def cluster(load, monkeypatch):
    monkeypatch.setattr(preflight.time, "time", lambda: 1796556127.0)
    made = Cluster(FakeLab())
    for spec in FakeLab().nodes():
        recorded = answers(load, spec.name)
        recorded["date +%s.%N"] = (0, "1796556127.000000000\n")
        made._nodes[spec.name] = RecordedNode(spec, recorded)
    return made


def test_recorded_answers_pass_every_check(cluster):
    results = preflight.run(cluster)
    assert [(r.name, r.verdict) for r in results if r.verdict != Verdict.OK] == []
    assert len(results) == 10


def test_every_command_is_read_only(cluster):
    preflight.run(cluster)
    asked = {c for node in cluster.nodes() for c in node.asked}
    writes = ("add", "set", "create", "remove", "delete", "start", "stop", ">", "rm ")
    assert not [c for c in asked if any(f" {w}" in f" {c}" for w in writes)
                and not c.startswith("for f in")], asked


def test_an_unreachable_node_fails_its_checks_without_raising(cluster, load):
    cluster._nodes["node3"].down = True
    results = {r.name: r for r in preflight.run(cluster)}
    for name in ("pve version", "quorum", "corosync links", "latency", "clock sync",
                 "watchdog", "shared storage"):
        assert results[name].verdict == Verdict.FAIL, results[name]
        assert "node3: node3 (198.18.70.13) is unreachable" in results[name].found
    # the cluster-wide facts come from a node that answers
    assert results["node count"].verdict == Verdict.OK
    assert results["ha on shared"].verdict == Verdict.OK


def test_no_storage_cfg_is_no_shared_storage(cluster):
    for node in cluster.nodes():
        node.answers[preflight.STORAGE_CFG] = (0, "")  # the file is absent
    results = {r.name: r for r in preflight.run(cluster)}
    assert results["shared storage"].verdict == Verdict.WARN
    assert results["ha on shared"].found == "ct:100 rootfs on unknown storage shared"


def test_without_corosync_nodelist_the_link_checks_fail_not_pass(cluster):
    for node in cluster.nodes():
        node.answers["corosync-cmapctl nodelist.node"] = (
            1, "Failed to initialize the cmap API. Error CS_ERR_LIBRARY\n")
    results = {r.name: r for r in preflight.run(cluster)}
    for name in ("node count", "corosync links", "udp 5405", "latency"):
        assert results[name].verdict == Verdict.FAIL, results[name]
        assert "corosync-cmapctl nodelist.node` exited with 1" in results[name].found


def test_no_node_answering_fails_everything(cluster):
    for node in cluster.nodes():
        node.down = True
    results = preflight.run(cluster)
    assert {r.verdict for r in results} == {Verdict.FAIL}


def test_a_stepped_clock_on_one_node(cluster):
    cluster._nodes["node2"].answers["date +%s.%N"] = (0, "1796556137.000000000\n")
    results = {r.name: r for r in preflight.run(cluster)}
    assert results["clock sync"].verdict == Verdict.FAIL
    assert "node2 +10.000±0.000" in results["clock sync"].found


def test_attach_puts_the_table_and_json_into_allure(cluster, monkeypatch):
    import allure

    attached = []
    monkeypatch.setattr(allure, "attach", lambda body, name, attachment_type:
                        attached.append((name, body)))
    results = preflight.run(cluster)
    preflight.attach(results)
    assert [name for name, _ in attached] == ["preflight", "preflight.json"]
    assert attached[0][1] == preflight.render(results)
    assert '"verdict": "ok"' in attached[1][1]
