"""PVE 9's groups migration on an embedded node's /etc/pve (a temporary directory): the
version each node's pvestatd stand-in publishes, and the three files the master's
migration writes, in PVE's formats (pve-operations.md §3.4's example, derived from
test-group-migrate2)."""

from __future__ import annotations

import json
import os

import pytest

from pvemu import pvestatd
from pvemu.etc_pve import EtcPve
from pvemu.ha import config, group_migration
from pvemu.ha.env_node import NodeEnv
from pvemu.ha.node_status import NodeStatus
from pvemu.nodeinfo import NodeInfo
from pvemu.timing import Timing

GROUPS = ("group: group1\n\tnodes node1\n\trestricted 1\n\n"
          "group: group2\n\tnodes node2:2,node3\n\tnofailback 1\n\n")
RESOURCES = ("vm: 101\n\tgroup group1\n\n"
             "vm: 102\n\tgroup group2\n\n"
             "vm: 103\n\tgroup group2\n\n"
             "vm: 104\n\tmax_restart 2\n\n")


@pytest.fixture
def root(tmp_path):
    pve = tmp_path / "pve"
    for node in ("node1", "node2", "node3"):
        (pve / f"nodes/{node}/qemu-server").mkdir(parents=True)
    for vmid, node in (("101", "node1"), ("102", "node2"), ("103", "node3"),
                       ("104", "node1")):
        (pve / f"nodes/{node}/qemu-server/{vmid}.conf").write_text("memory: 512\n")
    (pve / "ha").mkdir()
    (pve / "priv/lock").mkdir(parents=True)
    (pve / "local").mkdir()  # quorate while writable
    (pve / "ha/groups.cfg").write_text(GROUPS)
    (pve / "ha/resources.cfg").write_text(RESOURCES)
    return pve


def env_of(root, version: str = "9.1.1") -> NodeEnv:
    info = NodeInfo("node1", "198.18.157.11", 24, version, "6.14.8-2-pve", root,
                    Timing(1.0), root)
    return NodeEnv(info, "crm", root=root)


def test_pvestatd_publishes_the_version_once_and_again_when_it_changes(root):
    etc = EtcPve(root)
    assert pvestatd.publish(etc, "node2", "8.4.1")
    assert not pvestatd.publish(etc, "node2", "8.4.1")  # unchanged: nothing written
    stored = (root / "nodes/node2/.version-info").read_text()
    assert json.loads(stored) == {"version": "8.4.1", "release": "8.4"}
    assert env_of(root).get_node_version("node2") == "8.4.1"
    assert pvestatd.publish(etc, "node2", "9.1.1")  # booted into the new version
    assert env_of(root).get_node_version("node2") == "9.1.1"
    assert env_of(root).get_node_version("node3") is None  # published nothing yet
    os.chmod(root / "local", 0o555)  # no quorum: tries again next cycle
    assert not pvestatd.publish(etc, "node3", "9.1.1")
    assert not (root / "nodes/node3/.version-info").exists()


def test_pvestatd_never_writes_under_an_unmounted_etc_pve(tmp_path):
    bare = tmp_path / "pve"
    bare.mkdir()  # the mount point before pmxcfs mounted
    assert not pvestatd.publish(EtcPve(bare), "node1", "9.1.1")
    assert list(bare.iterdir()) == []


def migrate(root) -> list[str]:
    env = env_of(root)
    logs: list[str] = []
    env.log = lambda level, message: logs.append(f"{level}: {message}")  # type: ignore[method-assign]
    for node in ("node1", "node2", "node3"):
        config_dir = root / "nodes" / node
        (config_dir / "lrm_status").write_text(json.dumps({"state": "active",
                                                           "mode": "active"}))
    ns = NodeStatus(env, {"node1": "online", "node2": "online", "node3": "online"})
    steps = group_migration.GroupMigration()
    for _ in range(group_migration.FIRST_ATTEMPT_ROUNDS):
        steps.step(env, ns, {})
    return logs


def test_the_migration_writes_rules_then_resources_then_unlinks_groups(root):
    for node in ("node1", "node2", "node3"):
        pvestatd.publish(EtcPve(root), node, "9.1.1")
    logs = migrate(root)
    assert logs[-1] == "notice: ha groups migration successful"
    assert (root / "ha/rules.cfg").read_text() == (
        "node-affinity: ha-group-group1\n"
        "\tcomment Generated from HA group 'group1'.\n"
        "\tnodes node1\n"
        "\tresources vm:101\n"
        "\tstrict 1\n\n"
        "node-affinity: ha-group-group2\n"
        "\tcomment Generated from HA group 'group2'.\n"
        "\tnodes node2:2,node3\n"
        "\tresources vm:102,vm:103\n\n")
    assert (root / "ha/resources.cfg").read_text() == (
        "vm: 101\n\n"
        "vm: 102\n\tfailback 0\n\n"
        "vm: 103\n\tfailback 0\n\n"
        "vm: 104\n\tmax_restart 2\n\n")  # without a group: untouched (since 5.1.1)
    assert not (root / "ha/groups.cfg").exists()


def test_a_node_that_published_no_version_blocks_the_migration(root):
    pvestatd.publish(EtcPve(root), "node1", "9.1.1")
    pvestatd.publish(EtcPve(root), "node2", "9.1.1")
    logs = migrate(root)
    assert "err: abort ha groups migration: could not retrieve version from node " \
           "'node3'" in logs
    assert (root / "ha/groups.cfg").read_text() == GROUPS
    assert (root / "ha/resources.cfg").read_text() == RESOURCES
    assert not (root / "ha/rules.cfg").exists()


def test_the_version_info_value_is_pvestatds():
    assert config.version_of(config.version_info("9.0.0~16")) == "9.0.0~16"
    assert config.version_of("not json") is None and config.version_of(None) is None
