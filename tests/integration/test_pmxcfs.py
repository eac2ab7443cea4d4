"""The emulated pmxcfs on a formed cluster: locks with PVE's rules, `.members`, `.vmlist`.

The lab runs at timescale 0.05, so the 120 s lock lifetime is 6 s.
"""

from __future__ import annotations

import json

import pytest

from harness.timescale import Timescale
from harness.waits import NotYet, wait_until
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import running

LOCK = "/etc/pve/priv/lock/pvechaos-test"
LIFETIME_S = 120 * 0.05


def py(node, code: str):
    """Run a little Python on the node; returns (rc, stdout+stderr)."""
    result = node.run("python3", "-c", code, timeout_s=15)
    return result.rc, result.stdout + result.stderr


def try_mkdir(node) -> str:
    return py(node, f"import os\ntry:\n os.mkdir('{LOCK}'); print('ok')\n"
                    f"except OSError as e:\n print(e.strerror)")[1].strip()


def try_utime(node, t: int) -> str:
    return py(node, f"import os\ntry:\n os.utime('{LOCK}', ({t}, {t})); print('ok')\n"
                    f"except OSError as e:\n print(e.strerror)")[1].strip()


@pytest.fixture(scope="module")
def cluster():
    lab = EmbeddedLab(EmbeddedConfig(name="cfs", subnet="198.18.48.0/24",
                                     timescale=Timescale(0.05), pmxcfs="cpg"))
    with running(lab, formed="pvechaos") as the_cluster:
        yield the_cluster


def members(node) -> dict:
    return json.loads(node.check("cat", "/etc/pve/.members"))


def test_members_lists_every_node_online_with_its_id_and_address(cluster):
    data = members(cluster.node("node2"))
    assert data["nodename"] == "node2"
    assert data["cluster"]["name"] == "pvechaos" and data["cluster"]["quorate"] == 1
    assert {n: (v["id"], v["online"], v["ip"]) for n, v in data["nodelist"].items()} == {
        node.name: (i + 1, 1, node.cluster_address) for i, node in enumerate(cluster.nodes())}


def test_vmlist_follows_the_directory_holding_a_guest_config(cluster):
    node1 = cluster.node("node1")
    node1.check("sh", "-c", "echo 'hostname: t' > /etc/pve/nodes/node2/lxc/901.conf")
    try:
        ids = json.loads(cluster.node("node3").check("cat", "/etc/pve/.vmlist"))["ids"]
        assert ids["901"]["node"] == "node2" and ids["901"]["type"] == "lxc"
        node1.check("mv", "/etc/pve/nodes/node2/lxc/901.conf", "/etc/pve/nodes/node3/lxc/")
        ids = json.loads(cluster.node("node1").check("cat", "/etc/pve/.vmlist"))["ids"]
        assert ids["901"]["node"] == "node3"
    finally:
        node1.run("rm", "-f", "/etc/pve/nodes/node3/lxc/901.conf")


def test_a_lock_is_one_nodes_until_it_expires_and_an_unlock_request_frees_it(cluster):
    node1, node2 = cluster.node("node1"), cluster.node("node2")
    assert try_mkdir(node1) == "ok"
    try:
        assert try_mkdir(node2) == "File exists"
        assert try_utime(node2, 2_000_000_000) == "Permission denied"  # not the owner
        assert try_utime(node1, 2_000_000_000) == "ok"                  # the owner renews
        assert try_utime(node1, 1_000_000_000) == "Permission denied"  # not newer
        # fresh (just renewed): an unlock request is ignored
        assert try_utime(node2, 0) == "ok"
        assert try_mkdir(node2) == "File exists"

        def freed() -> bool | NotYet:
            try_utime(node2, 0)  # PVE's HA asks again on every failed try
            return try_mkdir(node2) == "ok" or NotYet("the lock still exists")

        wait_until("the expired lock to be deleted on request", freed,
                   timeout_s=LIFETIME_S * 4, interval_s=0.5)
        assert py(node1, f"import os; print(os.path.isdir('{LOCK}'))")[1].strip() == "True"
        assert try_utime(node1, 2_100_000_000) == "Permission denied"  # node2's lock now
    finally:
        node1.run("rmdir", LOCK)


def test_without_quorum_no_lock_can_be_taken_and_members_show_who_is_gone(cluster):
    lab = cluster.lab
    lab.power_cut("node1")
    lab.power_cut("node2")
    node3 = cluster.node("node3")
    try:
        wait_until("node3 to lose quorum", lambda: not node3.quorum().quorate, timeout_s=60)
        assert try_mkdir(node3) == "Permission denied"
        data = members(node3)
        assert data["cluster"]["quorate"] == 0
        assert {n: v["online"] for n, v in data["nodelist"].items()} == {
            "node1": 0, "node2": 0, "node3": 1}
    finally:
        lab.power_on("node1")
        lab.power_on("node2")
