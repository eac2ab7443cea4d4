"""The Lab verb `upgrade`: --upgrade-to and --upgrade-command checked before any lab
starts; the embedded lab's version switch (node.json rewritten inside the node, then a
clean reboot) and the ready state's key after it; the libvirt and inventory labs' user
command over SSH, its failures, and their refusal without a command. Nothing here boots a
node or opens a connection: the node's power and the SSH runner are twins."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import (
    CommandTimeout,
    ConfigError,
    InterlockError,
    LabError,
    NodeUnreachable,
    UnsupportedFault,
)
from harness.lab_api import Capability, LabNode
from harness.ssh import CommandResult
from lab import node_upgrade
from lab import options as lab_options
from lab.embedded import EmbeddedLab, provision, ready, upgrade
from lab.embedded.config import EmbeddedConfig
from tests.unit.inventory.test_interlock import NAMES, FakeDriver, FakeRead, inventory


def refused(check, *args, **kwargs) -> str:
    with pytest.raises(pytest.UsageError) as info:
        check(*args, **kwargs)
    return str(info.value)


# -- the options ----------------------------------------------------------------------
def test_upgrade_to_must_be_a_newer_major_or_minor_of_an_emulated_generation():
    assert lab_options.upgrade_to(None, pve_version="8.4.1") is None
    assert lab_options.upgrade_to("9.0.3", pve_version="8.4.1") == "9.0.3"
    assert lab_options.upgrade_to("8.4.1", pve_version="8.3.2") == "8.4.1"
    assert refused(lab_options.upgrade_to, "8.4.5", pve_version="8.4.1") == (
        "--upgrade-to '8.4.5': not a newer major or minor release than the nodes' 8.4.1 "
        "(--pve-version)\n  fix: give a later version, e.g. --upgrade-to 9.1.1, or start "
        "the lab on an older --pve-version")
    assert refused(lab_options.upgrade_to, "nine", pve_version="8.4.1").startswith(
        "--upgrade-to 'nine': not a PVE version\n  fix: write it as major.minor[.patch]")
    assert "generation the embedded lab emulates (8, 9)" in refused(
        lab_options.upgrade_to, "10.0.1", pve_version="8.4.1")


def test_upgrade_to_is_the_embedded_labs_and_upgrade_command_the_others():
    assert refused(lab_options.upgrade_to, "9.1.1", "libvirt").startswith(
        "--upgrade-to '9.1.1': only the embedded lab switches versions itself, not --lab "
        "libvirt\n  fix: drop --upgrade-to and give --upgrade-command CMD")
    message = refused(lab_options.upgrade_command, "apt-get -y dist-upgrade")
    assert message.startswith("--upgrade-command '...': the embedded lab switches a node's "
                              "version itself\n  fix: drop --upgrade-command; --upgrade-to")
    assert "dist-upgrade" not in message  # the command's text is never shown
    assert "an empty command" in refused(lab_options.upgrade_command, "  ", "inventory")
    assert lab_options.upgrade_command("apt full-upgrade", "inventory") == "apt full-upgrade"
    assert lab_options.upgrade_command(None) is None


def test_the_latest_version_is_the_newest_flavours_and_the_embedded_default():
    assert lab_options.LATEST_VERSION == "9.1.1"
    assert EmbeddedConfig(name="upg").next_version == "9.1.1"
    assert EmbeddedConfig(name="upg", upgrade_to="9.0.3").next_version == "9.0.3"
    with pytest.raises(ConfigError, match="PVE version 'x' for --upgrade-to is not valid"):
        EmbeddedConfig(name="upg", upgrade_to="x")


def plugin_values(**given: object) -> dict[str, object]:
    return {"lab": "embedded", "nodes": None, "lab_subnet": "198.18.157.0/24",
            "lab_range": "198.18.0.0/15", "node_version": [], "lab_name": "upg",
            "pve_version": None, "pve_flavour": "8", "cluster_name": "pvechaos",
            "lab_formed": "reuse", "qdevice": False, "upgrade_to": None,
            "upgrade_command": None, "lab_config": "lab.yaml", "inventory": "inv.yaml",
            "destructive": False, "emulation_bug": [], **given}


def lab_options_of(monkeypatch, **given: object) -> dict[str, object]:
    import lab.pytest_plugin as plugin
    from harness.timescale import Timescale

    values = plugin_values(**given)
    config = type("Config", (), {"getoption": lambda self, name: values[name]})()
    monkeypatch.setattr(plugin, "run_timescale", lambda config: Timescale(0.1))
    return plugin.lab_options(config)


def test_the_options_reach_the_lab_that_takes_them(monkeypatch):
    made = lab_options_of(monkeypatch, upgrade_to="9.0.3")
    assert made["upgrade_to"] == "9.0.3"
    assert EmbeddedLab.from_options(**made).config.next_version == "9.0.3"
    assert lab_options_of(monkeypatch, lab="inventory",
                          upgrade_command="apt full-upgrade")["upgrade_command"] == \
        "apt full-upgrade"
    assert "--pve-version" in str(pytest.raises(
        pytest.UsageError, lab_options_of, monkeypatch, pve_flavour="9",
        upgrade_to="9.1.1").value)  # a flavour-9 lab's nodes run 9.1.1 already
    with pytest.raises(pytest.UsageError, match="only the embedded lab switches"):
        lab_options_of(monkeypatch, lab="libvirt", upgrade_to="9.1.1")
    with pytest.raises(pytest.UsageError, match="--upgrade-command '...': the embedded"):
        lab_options_of(monkeypatch, upgrade_command="apt full-upgrade")


# -- the embedded lab: the version switch --------------------------------------------------
class Power:
    """A node's power twin: records what runs inside it; ``answers`` by command word."""

    def __init__(self, *, powered: bool = True, answers: dict | None = None) -> None:
        self.powered = powered
        self.answers = answers or {}
        self.ran: list[tuple[list[str], str]] = []

    def run_inside(self, argv, *, stdin="", timeout_s=30.0):
        self.ran.append((argv, stdin))
        rc, out = self.answers.get(argv[0], (0, ""))
        return subprocess.CompletedProcess(argv, rc, out, "")


def provisioned(tmp_path: Path, **changes: object) -> EmbeddedConfig:
    cfg = EmbeddedConfig(**{"name": "upg", "subnet": "198.18.157.0/24",
                            "state_root": tmp_path / "labs", **changes})
    for node in cfg.node_names:
        path = provision.node_json(cfg, node)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": node, "timescale": 0.1,
                                    **provision.release(cfg.version_of(node))}))
    return cfg


def test_the_switch_writes_the_next_release_inside_the_node_then_reboots_it(tmp_path):
    cfg = provisioned(tmp_path)
    power = Power()
    printed = upgrade.upgrade(cfg, power, "node2")
    (write, written), (reboot, _) = power.ran
    assert write[:2] == ["sh", "-c"] and write[-1] == "/etc/pvechaos/node.json"
    # the node's other facts kept; version and kernel as provisioning writes them
    assert json.loads(written) == {"name": "node2", "timescale": 0.1,
                                   "pve_version": "9.1.1", "kernel": "6.14.8-2-pve"}
    assert reboot == ["/usr/local/sbin/reboot"]
    lines = printed.splitlines()
    assert lines[0].startswith("pvechaos embedded lab: version switch on node2 (not apt")
    assert "Setting up pve-manager (8.4.1 -> 9.1.1) ..." in lines
    assert "Setting up proxmox-kernel (6.8.12-9-pve -> 6.14.8-2-pve) ..." in lines
    assert lines[-1] == "node2: rebooting into PVE 9.1.1 (kernel 6.14.8-2-pve)"


def test_a_node_on_the_next_version_or_off_is_not_upgraded(tmp_path):
    cfg = provisioned(tmp_path, node_versions={"node3": "9.1.1"})
    power = Power()
    with pytest.raises(LabError, match="node3: it runs 9.1.1 already, and the lab's next "
                                       "version 9.1.1 is no newer"):
        upgrade.upgrade(cfg, power, "node3")
    with pytest.raises(LabError, match="cannot upgrade node1: it is powered off"):
        upgrade.upgrade(cfg, Power(powered=False), "node1")
    assert power.ran == []


def test_a_failed_write_reboots_nothing_and_a_refused_reboot_says_so(tmp_path):
    cfg = provisioned(tmp_path)
    power = Power(answers={"sh": (1, "read-only file system")})
    with pytest.raises(LabError, match="(?s)writing its new /etc/pvechaos/node.json failed: "
                                       "read-only file system.*not rebooted"):
        upgrade.upgrade(cfg, power, "node1")
    assert len(power.ran) == 1
    with pytest.raises(LabError, match="`reboot` exited with 1"):
        upgrade.upgrade(cfg, Power(answers={"/usr/local/sbin/reboot": (1, "")}), "node1")


def test_the_embedded_lab_declares_the_verb_and_checks_the_node(tmp_path):
    lab = EmbeddedLab(provisioned(tmp_path))
    assert Capability.UPGRADE in lab.capabilities
    with pytest.raises(InterlockError, match="not a node of lab 'upg'"):
        lab.upgrade("node9")
    assert "pve.upgrade_to" not in lab.describe()
    assert EmbeddedLab(provisioned(tmp_path, upgrade_to="9.0.3")).describe()[
        "pve.upgrade_to"] == "9.0.3"


def test_a_ready_state_saved_after_an_upgrade_is_booted_only_by_a_lab_of_those_versions(
        tmp_path):
    from tests.unit.test_embedded_ready import formed_lab_dir

    cfg = EmbeddedConfig(name="upg", subnet="198.18.157.0/24", pmxcfs="cpg",
                         state_root=tmp_path / "labs")
    formed_lab_dir(cfg)
    for node in cfg.node_names:  # node1 was upgraded during the run
        provision.node_json(cfg, node).parent.mkdir(parents=True, exist_ok=True)
        provision.node_json(cfg, node).write_text(json.dumps(provision.release(
            "9.1.1" if node == "node1" else "8.4.1")))
    assert upgrade.running_version(cfg, "node1") == "9.1.1"
    ready.save(cfg)
    assert ready.find(replace(cfg, node_versions={"node1": "9.1.1"})) is not None
    assert ready.find(cfg) is None  # the lab made with 8.4.1 everywhere: removed, not booted
    assert not ready.path_of(cfg).exists()


# -- the libvirt and inventory labs: the user's command --------------------------------
class FakeRun:
    """The SSH runner: records (node, command, timeout); answers by command, in order."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, node: LabNode, command: str, timeout_s: float) -> CommandResult:
        self.calls.append((node.name, command, timeout_s))
        answer = self.answers.pop(0) if self.answers else (0, "", "")
        if isinstance(answer, Exception):
            raise answer
        rc, out, err = answer
        return CommandResult(node.name, command, rc, out, err, 0.1)


NODE = LabNode("pve1", "10.20.0.11")
COMMAND = "APT_TOKEN=s3cret apt-get -y dist-upgrade"


def test_the_command_runs_then_the_node_reboots_and_its_output_is_returned():
    run = FakeRun((0, "Setting up pve-manager (9.1.1) ...\n", "W: a warning\n"), (0, "", ""))
    printed = node_upgrade.upgrade(NODE, "apt-get -y dist-upgrade", run)
    assert run.calls == [("pve1", "apt-get -y dist-upgrade", node_upgrade.UPGRADE_TIMEOUT_S),
                         ("pve1", "systemctl reboot", node_upgrade.REBOOT_TIMEOUT_S)]
    assert printed == "Setting up pve-manager (9.1.1) ...\n\n[stderr]\nW: a warning\n"


@pytest.mark.parametrize("cut", [(-1, "", ""), NodeUnreachable("pve1", "10.20.0.11", "EOF"),
                                 CommandTimeout("pve1", "systemctl reboot", 30)])
def test_a_reboot_that_cuts_the_session_has_started(cut):
    assert node_upgrade.upgrade(NODE, "true", FakeRun((0, "done\n", ""), cut)) == "done\n"


def test_a_failed_command_names_itself_redacted_and_its_exit_code_and_reboots_nothing():
    run = FakeRun((100, "E: Unable to locate package\n", "token=abc123\n"))
    with pytest.raises(LabError) as info:
        node_upgrade.upgrade(NODE, COMMAND, run)
    message = str(info.value)
    assert message.startswith("pve1: the upgrade command `APT_TOKEN=[REDACTED] apt-get -y "
                              "dist-upgrade` exited with 100; last output:")
    assert "E: Unable to locate package" in message and "token=[REDACTED]" in message
    assert "s3cret" not in message and "abc123" not in message
    assert "the node was not rebooted" in message
    assert len(run.calls) == 1


def test_a_command_that_never_finishes_or_a_refused_reboot_is_an_error():
    with pytest.raises(LabError, match="did not finish: no answer within 3600 s") as info:
        node_upgrade.upgrade(NODE, COMMAND, FakeRun(CommandTimeout("pve1", COMMAND, 3600)))
    assert "s3cret" not in str(info.value)
    with pytest.raises(LabError, match="`systemctl reboot` after the upgrade exited with 1: "
                                       "Access denied"):
        node_upgrade.upgrade(NODE, "true", FakeRun((0, "", ""), (1, "", "Access denied")))


def test_the_refusal_names_the_option_and_the_yaml_key():
    message = str(node_upgrade.refusal("inventory"))
    assert message.startswith("the inventory lab cannot upgrade a node: it was given no "
                              "upgrade command")
    assert "--upgrade-command CMD" in message and "upgrade_command: in the lab's YAML" in message


def inventory_lab(command: str | None, run: FakeRun, *, destructive: bool = True):
    from lab.inventory.lab import InventoryLab

    log: list = []
    lab = InventoryLab(replace(inventory(), upgrade_command=command), destructive=destructive,
                       drivers={n: FakeDriver(n, log) for n in NAMES}, read=FakeRead(),
                       settle_s=0.3, run=run)
    lab.start()
    return lab


def test_the_inventory_lab_upgrades_behind_its_interlock(capsys):
    run = FakeRun((0, "upgraded\n", ""))
    lab = inventory_lab("apt full-upgrade", run)
    assert Capability.UPGRADE in lab.capabilities
    assert lab.upgrade("pve2") == "upgraded\n"
    assert [c[:2] for c in run.calls] == [("pve2", "apt full-upgrade"),
                                          ("pve2", "systemctl reboot")]
    unarmed = inventory_lab("apt full-upgrade", run, destructive=False)
    with pytest.raises(InterlockError, match="refusing to upgrade pve1: the run was not "
                                             "started with --destructive"):
        unarmed.upgrade("pve1")
    with pytest.raises(InterlockError, match="not a node of inventory"):
        lab.upgrade("pve9")
    assert len(run.calls) == 2


def test_the_inventory_lab_without_a_command_refuses_naming_the_option():
    lab = inventory_lab(None, FakeRun())
    assert Capability.UPGRADE not in lab.capabilities
    with pytest.raises(UnsupportedFault, match="--upgrade-command CMD"):
        lab.upgrade("pve1")


def test_the_command_option_wins_over_the_files_key(tmp_path, monkeypatch):
    from harness.timescale import REAL_TIME
    from lab.inventory import config as inventory_config
    from lab.inventory.lab import InventoryLab

    monkeypatch.setattr(inventory_config, "load", lambda path: replace(
        inventory(), upgrade_command="from the file"))
    assert InventoryLab.from_options(inventory="x.yaml", timescale=REAL_TIME) \
        .inventory.upgrade_command == "from the file"
    assert InventoryLab.from_options(inventory="x.yaml", timescale=REAL_TIME,
                                     upgrade_command="from the option") \
        .inventory.upgrade_command == "from the option"
