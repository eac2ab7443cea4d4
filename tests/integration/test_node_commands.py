"""The harness against one embedded lab: SSH deadlines, clear errors, PVE's own errors."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest

from harness.cluster import Cluster
from harness.errors import CommandError, CommandTimeout, ConfigError, NodeUnreachable
from harness.pve import parse_pvecm_nodes
from harness.ssh import SshSession
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig


@pytest.fixture(scope="module")
def lab():
    the_lab = EmbeddedLab(EmbeddedConfig(name="cmds", subnet="198.18.47.0/24",
                                         node_versions={"node3": "9.0.3"}))
    the_lab.start()
    yield the_lab
    the_lab.close()


@pytest.fixture(scope="module")
def cluster(lab):
    the_cluster = Cluster(lab)
    yield the_cluster
    the_cluster.close()


def test_a_command_past_its_deadline_raises_command_timeout(cluster):
    node = cluster.node("node1")
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as caught:
        node.run("sleep", "30", timeout_s=1)
    assert time.monotonic() - started < 5
    assert "node1" in str(caught.value) and "sleep 30" in str(caught.value)
    assert node.check("echo", "still usable").strip() == "still usable"


def test_every_byte_of_a_large_output_arrives(cluster):
    """sshd may send the exit status before the command's last output: a reader that
    stopped at the exit status lost the tail (the write log read back empty)."""
    node = cluster.node("node2")
    for _ in range(20):
        result = node.run("head -c 300000 /dev/zero | tr '\\0' x; echo; echo done >&2")
        assert (len(result.stdout), result.stderr, result.rc) == (300001, "done\n", 0)


def test_each_connect_and_command_is_a_debug_line_with_host_status_and_duration(lab, caplog):
    caplog.set_level(logging.DEBUG, logger="pvechaos.ssh")
    spec = lab.nodes()[2]
    result = SshSession(spec).run(("sh", "-c", "sleep 0.2; exit 7"))
    connect, command = [r for r in caplog.records if r.name == "pvechaos.ssh"]
    assert connect.getMessage().startswith(
        f"node3 ({spec.address}): connected to port {spec.ssh_port} as root in ")
    assert command.levelno == logging.DEBUG
    assert command.getMessage().startswith(
        f"node3 ({spec.address}): `sh -c 'sleep 0.2; exit 7'` -> exit status 7 in ")
    assert (command.node, command.address, command.rc) == ("node3", spec.address, 7)
    assert 0.2 <= command.duration_s <= result.duration_s


def test_a_wrong_key_is_reported_as_authentication_failure(lab, tmp_path):
    import subprocess
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    spec = dataclasses.replace(lab.nodes()[0], ssh_key=key)
    with pytest.raises(NodeUnreachable, match="authentication failed"):
        SshSession(spec).run("true")


def test_a_wrong_host_key_is_refused(lab):
    spec = dataclasses.replace(lab.nodes()[0], host_key=lab.nodes()[1].host_key)
    with pytest.raises(NodeUnreachable, match="host key mismatch"):
        SshSession(spec).run("true")


def test_an_unknown_node_name_names_the_valid_ones(cluster):
    with pytest.raises(ConfigError, match="node1, node2, node3"):
        cluster.node("pve1")


def test_check_reports_node_command_and_output(cluster):
    with pytest.raises(CommandError) as caught:
        cluster.node("node2").check("ls", "/nonexistent")
    message = str(caught.value)
    assert "node2" in message and "ls /nonexistent" in message and "No such file" in message


def test_pvecm_errors_are_worded_as_pve_words_them(cluster):
    node = cluster.node("node1")
    status = node.run("pvecm", "status")
    assert status.rc == 255
    assert "does not exist - is this node part of a cluster?" in status.stderr
    expected = node.run("pvecm", "expected", "abc")
    assert expected.rc == 255
    assert "expected: type check ('integer') failed - got 'abc'" in expected.stderr
    unknown = node.run("pvecm", "create", "c1", "--bogus", "1")
    assert unknown.rc == 255 and "Unknown option: bogus" in unknown.stderr
    api = node.run("pvecm", "add", "198.18.47.12")
    assert api.rc == 255 and "--use_ssh" in api.stderr
    not_local = node.run("pvecm", "create", "c1", "--link0", "198.18.47.99")
    assert "cannot use IP '198.18.47.99', not found on local node!" in not_local.stderr


def test_cluster_formation_then_joining_twice_is_refused(cluster):
    from harness.formation import form_cluster

    form_cluster(cluster, "cmds")
    members = parse_pvecm_nodes(cluster.node("node2").check("pvecm", "nodes"))
    assert [(m.nodeid, m.name) for m in members] == [(1, "node1"), (2, "node2"), (3, "node3")]
    assert [m.local for m in members] == [False, True, False]
    again = cluster.node("node3").run("pvecm", "add", cluster.node("node1").address,
                                      "--link0", cluster.node("node3").address, "--use_ssh")
    assert again.rc == 255
    assert "authentication key '/etc/corosync/authkey' already exists" in again.stderr
    assert "Check if node may join a cluster failed!" in again.stderr
    create = cluster.node("node1").run("pvecm", "create", "other")
    assert "cluster config '/etc/pve/corosync.conf' already exists" in create.stderr
    conf = cluster.node("node3").check("cat", "/etc/corosync/corosync.conf")
    assert "config_version: 3" in conf  # create = 1, then one bump per joining node


def test_each_node_reports_its_own_pve_version(cluster):
    versions = {n.name: n.pve_version() for n in cluster.nodes()}
    assert versions["node1"].manager == versions["node2"].manager == "8.4.1"
    assert versions["node3"].manager == "9.0.3" and versions["node3"].major == 9


def test_each_node_has_a_testinfra_host(cluster):
    host = cluster.node("node2").host
    assert host.file("/etc/hostname").content_string.strip() == "node2"
    assert host.file("/etc/pve").is_directory
    assert host.run("hostname").stdout.strip() == "node2"
