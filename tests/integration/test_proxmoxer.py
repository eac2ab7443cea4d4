"""proxmoxer, the Python client most PVE automation uses, drives an embedded lab through
its SSH backend (`ssh_paramiko`: `pvesh <get|create|set|delete> <path> -<key> <value>
--output-format json` over SSH): every API path the emulated pvesh answers, on the PVE 8
flavour (HA groups) and the PVE 9 flavour (HA rules). One lab per flavour, shared by the
module's tests, which run in order (a story: later tests see what earlier ones made)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from proxmoxer import ProxmoxAPI, ResourceException

from harness.timescale import Timescale
from harness.waits import wait_until
from lab.embedded.ha_testbed import HaLab, boot_ha_lab
from tests.integration.conftest import leftovers

K = 0.1
CT, VM = 100, 101


@dataclass
class Px:
    h: HaLab
    api: ProxmoxAPI
    major: int


@pytest.fixture(scope="module", params=["8.4.1", "9.1.1"], ids=["pve8", "pve9"])
def px(request: pytest.FixtureRequest) -> Iterator[Px]:
    h = boot_ha_lab("pxapi", "198.18.76", timescale=Timescale(K), pve_version=request.param)
    try:
        h.create_ct("node1", CT, "--hostname", "web", "--memory", "256")
        h.node("node1").check("qm", "create", str(VM), "--name", "db", "--memory", "512",
                              "--scsi0", "shared:1", timeout_s=30)
        h.node("node1").check("pct", "start", str(CT), timeout_s=30)
        api = ProxmoxAPI(h.lab.config.node_address("node1"), user="root",
                         backend="ssh_paramiko", timeout=30,
                         private_key_file=str(h.lab.config.lab_dir / "id_ed25519"))
        yield Px(h, api, int(request.param.split(".")[0]))
    finally:
        h.close()
        assert leftovers(h.lab.config) == []


def test_version(px):
    v = px.api.version.get()
    major, minor = px.h.lab.config.pve_version.split(".")[:2]
    assert (v["version"], v["release"]) == (px.h.lab.config.pve_version, f"{major}.{minor}")
    assert re.fullmatch(r"[0-9a-f]{16}", v["repoid"])


def test_nodes(px):
    nodes = {n["node"]: n for n in px.api.nodes.get()}
    assert sorted(nodes) == ["node1", "node2", "node3"]
    for name, n in nodes.items():
        assert (n["id"], n["type"], n["status"], n["level"]) == (
            f"node/{name}", "node", "online", "")
        assert isinstance(n["cpu"], (int, float)) and 0 <= n["cpu"] <= 1
        for key in ("maxcpu", "mem", "maxmem", "disk", "maxdisk"):
            assert isinstance(n[key], int) and n[key] > 0, (name, key, n)
        assert n["mem"] <= n["maxmem"] and n["disk"] <= n["maxdisk"]
        assert "ssl_fingerprint" in n
    assert isinstance(nodes["node1"]["uptime"], int)


@pytest.mark.parametrize("name", ["node1", "node2"])  # node2's answer is proxied over SSH
def test_node_status(px, name):
    st = px.api.nodes(name).status.get()
    assert len(st["loadavg"]) == 3 and all(isinstance(x, str) for x in st["loadavg"])
    assert st["memory"]["total"] >= st["memory"]["used"] > 0
    assert st["cpuinfo"]["cpus"] >= 1 and isinstance(st["uptime"], int)
    assert st["pveversion"].startswith(f"pve-manager/{px.h.lab.config.pve_version}/")
    assert st["rootfs"]["total"] > 0


def test_guest_lists_and_status(px):
    node1 = px.api.nodes("node1")
    (ct,) = node1.lxc.get()
    assert (ct["vmid"], ct["name"], ct["type"], ct["status"]) == (CT, "web", "lxc", "running")
    assert ct["maxmem"] == 256 * 1024 ** 2 and ct["pid"] > 0 and ct["mem"] > 0
    (vm,) = node1.qemu.get()
    assert (vm["vmid"], vm["name"], vm["status"], vm["maxmem"]) == (
        VM, "db", "stopped", 512 * 1024 ** 2)
    cur = node1.lxc(CT).status.current.get()
    assert (cur["status"], cur["ha"]) == ("running", {"managed": 0})
    cur = node1.qemu(VM).status.current.get()
    assert (cur["status"], cur["qmpstatus"], cur["ha"]) == ("stopped", "stopped",
                                                            {"managed": 0})
    assert px.api.nodes("node2").lxc.get() == []  # proxied to node2
    with pytest.raises(ResourceException, match="does not exist"):
        node1.lxc(999).status.current.get()


def test_cluster_paths(px):
    status = px.api.cluster.status.get()
    assert status[0]["type"] == "cluster" and status[0]["quorate"] == 1
    assert {s["name"]: s["local"] for s in status[1:]} == {"node1": 1, "node2": 0,
                                                          "node3": 0}
    vms = px.api.cluster.resources.get(type="vm")
    assert {(r["id"], r["node"], r["status"]) for r in vms} == {
        (f"lxc/{CT}", "node1", "running"), (f"qemu/{VM}", "node1", "stopped")}
    assert [r["type"] for r in px.api.cluster.resources.get(type="node")] == ["node"] * 3
    assert px.api.cluster.options.get() == {}  # boot_ha_lab writes no datacenter.cfg


def test_ha_resources(px):
    ha = px.api.cluster.ha
    ha.resources.post(sid=f"ct:{CT}", state="started", max_restart=2)
    (res,) = ha.resources.get()
    assert (res["sid"], res["type"], res["state"], res["max_restart"]) == (
        f"ct:{CT}", "ct", "started", 2)
    ha.resources(f"ct:{CT}").put(max_relocate=3, comment="web")
    one = ha.resources(f"ct:{CT}").get()
    assert (one["max_relocate"], one["comment"]) == (3, "web")
    cur = px.api.nodes("node1").lxc(CT).status.current.get()
    assert cur["ha"]["managed"] == 1 and cur["ha"]["state"] == "started"
    wait_until("the CRM to take the service", lambda: any(
        s["id"] == f"service:ct:{CT}" for s in ha.status.current.get()),
        timeout_s=px.h.s(60) + 10)
    ms = ha.status.manager_status.get()
    assert f"ct:{CT}" in ms["manager_status"]["service_status"]
    assert ms["quorum"]["quorate"] == 1
    with pytest.raises(ResourceException, match="already defined"):
        ha.resources.post(sid=f"ct:{CT}")


def test_ha_groups_or_rules(px):
    ha = px.api.cluster.ha
    if px.major == 8:
        ha.groups.post(group="prefer1", nodes="node1:2,node2", restricted=1)
        assert [g["group"] for g in ha.groups.get()] == ["prefer1"]
        ha.groups("prefer1").put(comment="db", delete="restricted")
        one = ha.groups("prefer1").get()
        assert (one["nodes"], one["comment"], "restricted" in one) == (
            "node1:2,node2", "db", False)
        ha.resources(f"ct:{CT}").put(group="prefer1")
        assert ha.resources(f"ct:{CT}").get()["group"] == "prefer1"
        with pytest.raises(ResourceException, match="used by service"):
            ha.groups("prefer1").delete()
        ha.resources(f"ct:{CT}").put(delete="group")
        ha.groups("prefer1").delete()
        assert ha.groups.get() == []
        with pytest.raises(ResourceException, match="no 'get' handler"):
            ha.rules.get()
    else:
        ha.rules.post(rule="prefer1", type="node-affinity", resources=f"ct:{CT}",
                      nodes="node1:2,node2")
        (rule,) = ha.rules.get()
        assert (rule["rule"], rule["type"], rule["resources"], rule["nodes"]) == (
            "prefer1", "node-affinity", f"ct:{CT}", "node1:2,node2")
        ha.rules("prefer1").put(type="node-affinity", strict=1, comment="db")
        one = ha.rules("prefer1").get()
        assert (one["strict"], one["comment"]) == (1, "db")
        ha.rules("prefer1").delete()
        assert ha.rules.get() == []
        # PVE 9 without groups (pve-operations.md §3.4): HTTP 500
        with pytest.raises(ResourceException, match="ha groups have been migrated to rules"):
            ha.groups.get()


def test_ha_resource_delete(px):
    ha = px.api.cluster.ha
    ha.resources(f"ct:{CT}").delete()
    assert ha.resources.get() == []
    with pytest.raises(ResourceException, match="no such resource"):
        ha.resources(f"ct:{CT}").get()
    with pytest.raises(ResourceException, match="no 'get' handler for '/nothing'"):
        px.api.nothing.get()
