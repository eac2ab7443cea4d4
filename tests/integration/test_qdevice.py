"""Two embedded nodes and the lab's qnetd host (--qdevice), on the real lab: the real
corosync-qnetd in its own namespace, `pvecm qdevice setup` / `remove` with the real
certutil tools over SSH, the real corosync-qdevice on the nodes (pve-operations.md §1)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.errors import UnsupportedFault
from harness.lab_api import Capability
from harness.timescale import Timescale
from harness.waits import NotYet, wait_until
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from pvemu import corosync_conf
from tests.integration.conftest import leftovers, running

QDEVICE_TIMEOUT_S = 60  # qdevice's own timers (heartbeat 8 s, timeout 10 s), unscaled


@pytest.fixture(scope="module")
def lab_and_cluster():
    lab = EmbeddedLab(EmbeddedConfig(name="qdv", subnet="198.18.141.0/24", node_count=2,
                                     qdevice=True, timescale=Timescale(0.1)))
    with running(lab, formed="pvechaos") as cluster:  # checks leftovers, qnetd host's too
        yield lab, cluster


def statuses(cluster, check):
    def every():
        seen = {}
        for node in cluster.nodes():
            s = node.quorum(timeout_s=5)
            mine = next(m for m in s.members if m.local)
            if not check(s, mine):
                return NotYet(f"{node.name}: flags={s.flags} qdevice={mine.qdevice} "
                              f"total={s.total_votes} expected={s.expected_votes}")
            seen[node.name] = s
        return seen
    return every


def test_the_qnetd_host_runs_qnetd_with_its_own_ca(lab_and_cluster):
    lab, cluster = lab_and_cluster
    address = lab.qnetd_address()
    assert address == "198.18.141.10"
    with socket.create_connection((address, 5403), timeout=3):
        pass
    ca = cluster.node("node1").check("ssh", f"root@{address}", "cat",
                                     "/etc/corosync/qnetd/nssdb/qnetd-cacert.crt")
    assert "BEGIN CERTIFICATE" in ca
    host_ca = Path("/etc/corosync/qnetd/nssdb/qnetd-cacert.crt")
    if host_ca.exists():  # the host's install made its own CA: the lab never uses it
        assert host_ca.read_text() != ca
    user = cluster.node("node1").check(
        "ssh", f"root@{address}", "ps", "-o", "user=", "-C", "corosync-qnetd").split()
    assert user == ["coroqnetd"]


def test_setup_adds_the_device_and_both_nodes_vote_through_it(lab_and_cluster):
    lab, cluster = lab_and_cluster
    node1 = cluster.node("node1")
    before = corosync_conf.config_version(node1.check("cat", "/etc/pve/corosync.conf"))
    out = node1.check("pvecm", "qdevice", "setup", lab.qnetd_address(), timeout_s=120)
    assert "INFO: add QDevice to cluster configuration" in out
    conf_text = node1.check("cat", "/etc/pve/corosync.conf")
    assert corosync_conf.config_version(conf_text) == before + 1
    assert corosync_conf.parse(conf_text)["quorum"]["device"] == {
        "model": "net", "votes": "1",
        "net": {"algorithm": "ffsplit", "host": lab.qnetd_address(), "tls": "on"}}
    seen = wait_until("the device to vote on both nodes", statuses(
        cluster, lambda s, me: s.device_voting and me.qdevice == ("A", "V", "NMW")),
        timeout_s=QDEVICE_TIMEOUT_S)
    for s in seen.values():
        assert (s.expected_votes, s.total_votes, s.quorum) == (3, 3, 2)
        assert s.flags == ("Quorate", "Qdevice")
    state = cluster.node("node2").check("corosync-qdevice-tool", "-sv")
    assert "State:\t\t\tConnected" in state and "Fifty-Fifty split" in state
    # the CA and the p12 went through /etc/pve and were deleted there
    assert node1.run("ls", "/etc/pve/qnetd-cacert.crt", "/etc/pve/qdevice-net-node.p12").rc != 0
    again = node1.run("pvecm", "qdevice", "setup", lab.qnetd_address())
    assert again.rc == 255 and "QDevice already configured!" in again.stderr


def test_qnetd_lost_leaves_both_nodes_quorate_without_the_device_vote(lab_and_cluster):
    lab, cluster = lab_and_cluster
    lab.qnetd_lost()
    try:
        seen = wait_until("the device to stop voting", statuses(
            cluster, lambda s, me: not s.device_voting and me.qdevice[:2] == ("A", "NV")),
            timeout_s=QDEVICE_TIMEOUT_S)
        for s in seen.values():
            assert s.quorate and (s.expected_votes, s.total_votes) == (3, 2)
            assert (s.device_votes, s.configured_votes) == (1, 3)
    finally:
        lab.qnetd_back()
    wait_until("the device to vote again", statuses(
        cluster, lambda s, me: s.device_voting and me.qdevice == ("A", "V", "NMW")),
        timeout_s=QDEVICE_TIMEOUT_S)


def test_remove_drops_the_device_everywhere(lab_and_cluster):
    _, cluster = lab_and_cluster
    out = cluster.node("node2").check("pvecm", "qdevice", "remove", timeout_s=60)
    assert out.strip().endswith("Removed Qdevice.")
    seen = wait_until("the device gone from both nodes", statuses(
        cluster, lambda s, me: not s.has_qdevice and s.expected_votes == 2),
        timeout_s=QDEVICE_TIMEOUT_S)
    assert all(s.quorate and s.total_votes == 2 for s in seen.values())
    for node in cluster.nodes():
        assert node.run("systemctl", "is-active", "corosync-qdevice").stdout.strip() \
            == "inactive"
        assert node.run("test", "-e", "/etc/corosync/qdevice").rc == 1


def test_a_lab_without_qdevice_refuses_the_qnetd_verbs():
    lab = EmbeddedLab(EmbeddedConfig(name="qdn", subnet="198.18.142.0/24"))
    assert lab.qnetd_address() is None and Capability.QDEVICE not in lab.capabilities
    with pytest.raises(UnsupportedFault, match="(?s)embedded lab cannot qnetd lost.*QDEVICE"):
        lab.qnetd_lost()
    assert leftovers(lab.config) == []
