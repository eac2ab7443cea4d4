"""harness.ha_admin: maintenance, shutdown policy, clean poweroff and reboot, driven
through scripted nodes (the commands sent and the answers PVE gives)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from harness import ha_admin
from harness.cluster import Cluster, Node
from harness.errors import ConfigError, NodeUnreachable, PvechaosError, WaitTimeout
from harness.lab_api import LabNode
from harness.ssh import CommandResult

NAMES = ("node1", "node2", "node3")
Answer = CommandResult | Exception | Callable[[], "CommandResult | Exception"]


class ScriptedNode(Node):
    """A Node whose commands are answered by ``answers[command]`` (a result, an
    exception to raise, or a list consumed one per call), recorded in ``sent``."""

    def __init__(self, spec: LabNode, answers: dict, sent: list) -> None:
        super().__init__(spec)
        self.answers, self.sent = answers, sent

    def run(self, *argv: str, timeout_s: float = 10.0, stdin: str | None = None
            ) -> CommandResult:
        command = " ".join(argv)
        self.sent.append((self.name, command))
        answer = self.answers.get((self.name, command), self.answers.get(command))
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if answer is None:
            raise AssertionError(f"unexpected command on {self.name}: {command}")
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, str):
            return CommandResult(self.name, command, 0, answer, "", 0.01)
        return answer


class FakeLab:
    name, kind = "fake", "fake"

    def __init__(self) -> None:
        self.powered = dict.fromkeys(NAMES, True)
        self.powered_on: list[str] = []

    def nodes(self) -> tuple[LabNode, ...]:
        return tuple(LabNode(n, f"198.18.153.{i}") for i, n in enumerate(NAMES, 1))

    def is_powered(self, node: str) -> bool:
        return self.powered[node]

    def power_on(self, node: str) -> None:
        self.powered[node] = True
        self.powered_on.append(node)


@pytest.fixture
def lab() -> FakeLab:
    return FakeLab()


@pytest.fixture
def answers() -> dict:
    return {}


@pytest.fixture
def sent() -> list:
    return []


@pytest.fixture
def cluster(lab, answers, sent) -> Cluster:
    c = Cluster(lab)
    c._nodes = {spec.name: ScriptedNode(spec, answers, sent) for spec in lab.nodes()}
    return c


def failed(rc: int, stderr: str) -> CommandResult:
    return CommandResult("node", "cmd", rc, "", stderr, 0.01)


def status_json(lrms: dict[str, str], services: list[tuple[str, str, str]]) -> str:
    """/cluster/ha/status/current as PVE 9 gives it: lrm node -> its status text,
    services (sid, node, crm state)."""
    t = "Fri Aug  1 11:59:58 2025"
    entries = [{"id": "quorum", "type": "quorum", "node": "node1", "status": "OK",
                "quorate": 1},
               {"id": "master", "type": "master", "node": "node1",
                "status": f"node1 (active, {t})"}]
    entries += [{"id": f"lrm:{n}", "type": "lrm", "node": n,
                 "status": f"{n} ({s}, watchdog active, {t})"} for n, s in lrms.items()]
    entries += [{"id": f"service:{sid}", "type": "service", "sid": sid, "node": node,
                 "crm_state": crm, "state": crm, "status": f"{sid} ({node}, {crm})",
                 "request_state": "started"} for sid, node, crm in services]
    return json.dumps(entries)


STATUS = "pvesh get /cluster/ha/status/current --output-format json"
OPTIONS = "pvesh get /cluster/options --output-format json"


# -- maintenance ---------------------------------------------------------------------------
def test_maintenance_runs_on_another_powered_node_than_its_target(cluster, answers, sent):
    answers["ha-manager crm-command node-maintenance enable node1"] = ""
    answers["ha-manager crm-command node-maintenance disable node1"] = ""
    ha_admin.maintenance_on(cluster, "node1")
    ha_admin.maintenance_off(cluster, "node1")
    assert sent == [("node2", "ha-manager crm-command node-maintenance enable node1"),
                    ("node2", "ha-manager crm-command node-maintenance disable node1")]


def test_maintenance_skips_unpowered_nodes_and_runs_on_a_given_node(cluster, lab, answers,
                                                                    sent):
    answers["ha-manager crm-command node-maintenance enable node3"] = ""
    lab.powered["node1"] = False
    ha_admin.maintenance_on(cluster, "node3")
    ha_admin.maintenance_on(cluster.node("node3"), "node3")
    assert sent == [("node2", "ha-manager crm-command node-maintenance enable node3"),
                    ("node3", "ha-manager crm-command node-maintenance enable node3")]


def test_maintenance_refused_by_pve_raises_with_its_message(cluster, answers):
    answers["ha-manager crm-command node-maintenance enable nodeX"] = failed(
        255, "400 Parameter verification failed.\nnode: no such cluster node 'nodeX'")
    with pytest.raises(PvechaosError, match="no such cluster node"):
        ha_admin.maintenance_on(cluster, "nodeX")


def test_no_powered_node_is_a_clear_error(cluster, lab):
    lab.powered = dict.fromkeys(NAMES, False)
    with pytest.raises(PvechaosError, match="no node of the cluster is powered"):
        ha_admin.maintenance_on(cluster, "node1")


@pytest.mark.parametrize("crm", ["started", "migrate", "relocate"])
def test_a_node_holding_a_started_or_moving_service_is_not_empty(crm):
    status = ha_admin.parse_ha_status_current(status_json(
        {"node2": "maintenance mode"}, [("ct:100", "node2", crm)]))
    assert ha_admin.node_occupancy(status, "node2") == f"still on it: ct:100 {crm}"


@pytest.mark.parametrize("crm", ["stopped", "freeze", "error"])
def test_stopped_frozen_or_failed_services_leave_a_maintenance_node_empty(crm):
    status = ha_admin.parse_ha_status_current(status_json(
        {"node1": "active", "node2": "maintenance mode"},
        [("ct:100", "node2", crm), ("ct:101", "node1", "started")]))
    assert ha_admin.node_occupancy(status, "node2") is None


def test_an_empty_node_whose_lrm_is_not_in_maintenance_mode_is_not_done():
    status = ha_admin.parse_ha_status_current(status_json(
        {"node2": "active"}, [("ct:100", "node1", "started")]))
    assert ha_admin.node_occupancy(status, "node2") == "lrm node2: active"
    assert ha_admin.node_occupancy(status, "node3") == "lrm node3: not listed"


def test_wait_node_empty_waits_for_the_move_and_the_lrm_mode(cluster, answers, sent,
                                                             monkeypatch):
    monkeypatch.setattr("harness.waits.time.sleep", lambda s: None)
    answers[STATUS] = [
        status_json({"node1": "active"}, [("ct:100", "node1", "started")]),
        status_json({"node1": "maintenance mode"}, [("ct:100", "node1", "relocate")]),
        status_json({"node1": "maintenance mode"}, [("ct:100", "node2", "started")])]
    status = ha_admin.wait_node_empty(cluster, "node1", timeout_s=30)
    assert status.services["ct:100"].node == "node2"
    assert [n for n, c in sent] == ["node2"] * 3  # asked away from the emptied node


def test_wait_node_empty_times_out_saying_what_is_left(cluster, answers, monkeypatch):
    monkeypatch.setattr("harness.waits.time.sleep", lambda s: None)
    answers[STATUS] = status_json({"node1": "maintenance mode"},
                                  [("ct:100", "node1", "migrate")])
    with pytest.raises(WaitTimeout, match="still on it: ct:100 migrate"):
        ha_admin.wait_node_empty(cluster, "node1", timeout_s=0.05)


def test_master_node_from_the_status(cluster, answers):
    answers[STATUS] = status_json({}, [])
    assert ha_admin.master_node(cluster) == "node1"


# -- shutdown policy -----------------------------------------------------------------------
@pytest.mark.parametrize("policy", ha_admin.POLICIES)
def test_set_shutdown_policy_sets_and_reads_back(cluster, answers, sent, policy):
    answers[f"pvesh set /cluster/options --ha shutdown_policy={policy}"] = ""
    answers[OPTIONS] = json.dumps({"ha": {"shutdown_policy": policy}, "keyboard": "en-us"})
    assert ha_admin.set_shutdown_policy(cluster, policy) == policy
    assert [c for _, c in sent] == [
        f"pvesh set /cluster/options --ha shutdown_policy={policy}", OPTIONS]


def test_clear_deletes_the_ha_option_and_reads_back_the_default(cluster, answers, sent):
    answers["pvesh set /cluster/options --delete ha"] = ""
    answers[OPTIONS] = "{}\n"
    assert ha_admin.clear_shutdown_policy(cluster) == "conditional"
    assert [c for _, c in sent] == ["pvesh set /cluster/options --delete ha", OPTIONS]


def test_an_unknown_policy_is_refused_before_any_command(cluster, sent):
    with pytest.raises(ConfigError, match="unknown shutdown policy 'migrat'") as err:
        ha_admin.set_shutdown_policy(cluster, "migrat")
    assert "conditional, freeze, failover, migrate" in err.value.hint
    assert sent == []


def test_a_policy_that_does_not_read_back_raises(cluster, answers):
    answers["pvesh set /cluster/options --ha shutdown_policy=freeze"] = ""
    answers[OPTIONS] = json.dumps({"ha": {"shutdown_policy": "migrate"}})
    with pytest.raises(PvechaosError, match="reads back as 'migrate' after setting 'freeze'"):
        ha_admin.set_shutdown_policy(cluster, "freeze")


@pytest.mark.parametrize("out", ["not json", "[]", '{"ha": "shutdown_policy=freeze"}'])
def test_options_that_are_not_pves_shape_raise(cluster, answers, out):
    answers[OPTIONS] = out
    with pytest.raises(PvechaosError, match="no JSON object with a parsed `ha` option"):
        ha_admin.shutdown_policy(cluster)


# -- poweroff, reboot, power on ------------------------------------------------------------
def test_poweroff_survives_the_cut_session_and_waits_for_the_power(cluster, lab, answers,
                                                                   monkeypatch):
    checks = []

    def sleep(s: float) -> None:
        checks.append(s)
        if len(checks) == 3:
            lab.powered["node2"] = False
    monkeypatch.setattr("harness.waits.time.sleep", sleep)
    answers[("node2", "systemctl poweroff")] = NodeUnreachable(
        "node2", "198.18.153.2", "session broke")
    ha_admin.poweroff(cluster, "node2", timeout_s=30)
    assert len(checks) == 3 and not lab.powered["node2"]


def test_poweroff_refused_by_the_node_raises(cluster, answers):
    answers[("node2", "systemctl poweroff")] = failed(1, "Access denied")
    with pytest.raises(PvechaosError, match="`systemctl poweroff` on node2 exited 1: "
                                            "Access denied"):
        ha_admin.poweroff(cluster, "node2", timeout_s=1)


def test_poweroff_that_never_ends_times_out(cluster, answers, monkeypatch):
    monkeypatch.setattr("harness.waits.time.sleep", lambda s: None)
    answers[("node2", "systemctl poweroff")] = ""
    with pytest.raises(WaitTimeout, match="node2 off after `systemctl poweroff`"):
        ha_admin.poweroff(cluster, "node2", timeout_s=0.05)


def test_reboot_returns_the_new_boot_id_after_the_node_was_down(cluster, answers,
                                                                monkeypatch):
    monkeypatch.setattr("harness.waits.time.sleep", lambda s: None)
    answers[("node3", "cat /proc/sys/kernel/random/boot_id")] = [
        "old\n", "old\n", NodeUnreachable("node3", "198.18.153.3", "refused"), "new\n"]
    answers[("node3", "systemctl reboot")] = ""
    assert ha_admin.reboot(cluster, "node3", timeout_s=30) == "new"


def test_reboot_that_never_happens_times_out_naming_the_boot(cluster, answers, monkeypatch):
    monkeypatch.setattr("harness.waits.time.sleep", lambda s: None)
    answers[("node3", "cat /proc/sys/kernel/random/boot_id")] = "old\n"
    answers[("node3", "systemctl reboot")] = ""
    with pytest.raises(WaitTimeout, match="still on boot old"):
        ha_admin.reboot(cluster, "node3", timeout_s=0.05)


def test_power_on_waits_for_ssh_and_returns_the_boot(cluster, lab, answers):
    lab.powered["node1"] = False
    answers[("node1", "true")] = ""
    answers[("node1", "cat /proc/sys/kernel/random/boot_id")] = "b1\n"
    assert ha_admin.power_on(cluster, "node1", timeout_s=5) == "b1"
    assert lab.powered_on == ["node1"]
