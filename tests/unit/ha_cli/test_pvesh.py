"""pvemu.cli.pvesh against a temporary /etc/pve (PVECHAOS_PVE_ROOT)."""

from __future__ import annotations

import json

import pytest

from .conftest import NOW
from .pvesh_calls import get_json, run


def test_cluster_status(lab, capsys):
    data = get_json(capsys, "/cluster/status")
    assert data[0] == {"type": "cluster", "id": "cluster", "name": "pvechaos", "version": 3,
                       "nodes": 3, "quorate": 1}
    assert data[1] == {"type": "node", "id": "node/node1", "name": "node1", "nodeid": 1,
                       "online": 1, "local": 1, "ip": "198.18.60.11", "level": ""}
    assert [(d["name"], d["online"], d["local"]) for d in data[2:]] == [
        ("node2", 1, 0), ("node3", 0, 0)]
    lab.inquorate()
    assert get_json(capsys, "/cluster/status")[0]["quorate"] == 0


def test_cluster_resources(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\n")
    lab.write("ha/manager_status", json.dumps({"service_status": {
        "vm:100": {"state": "started", "node": "node1"}}}))
    data = get_json(capsys, "/cluster/resources")
    assert [d["id"] for d in data] == ["node/node1", "node/node2", "node/node3", "qemu/100",
                                       "lxc/101", "qemu/102"]
    assert data[3]["hastate"] == "started" and data[3]["node"] == "node1"
    assert "hastate" not in data[4] and data[4]["status"] == "unknown"
    assert [d["type"] for d in get_json(capsys, "/cluster/resources", "--type", "node")] == \
        ["node"] * 3


def test_ha_status_current_and_manager_status(lab, capsys, monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    lab.write("ha/resources.cfg", "vm: 100\n\n")
    ms = {"master_node": "node2", "timestamp": NOW, "node_status": {"node1": "online"},
          "service_status": {"vm:100": {"state": "started", "node": "node1", "running": 1}}}
    lab.write("ha/manager_status", json.dumps(ms))
    lrm = {"state": "active", "mode": "active", "timestamp": NOW}
    lab.write("nodes/node1/lrm_status", json.dumps(lrm))
    data = get_json(capsys, "/cluster/ha/status/current")
    assert [d["id"] for d in data] == ["quorum", "master", "fencing", "lrm:node1",
                                       "service:vm:100"]
    assert data[4]["failback"] == 1 and data[4]["state"] == "started"
    full = get_json(capsys, "/cluster/ha/status/manager_status")
    assert full == {"manager_status": ms, "lrm_status": {"node1": lrm},
                    "quorum": {"node": "node1", "quorate": 1}}
    code, out, _ = run(capsys, "get", "/cluster/ha/status/manager_status", "--output-format",
                       "json-pretty")
    assert out.startswith('{\n   "lrm_status" : {\n')


def test_ha_resources_crud(lab, capsys):
    assert run(capsys, "create", "/cluster/ha/resources", "--sid", "vm:100", "--state",
               "stopped", "--output-format", "json", "--quiet") == (0, "", "")
    assert lab.read("ha/resources.cfg") == "vm: 100\n\tstate stopped\n\n"
    data = get_json(capsys, "/cluster/ha/resources")
    assert len(data) == 1 and data[0]["sid"] == "vm:100" and data[0]["type"] == "vm"
    assert data[0]["state"] == "stopped" and len(data[0]["digest"]) == 40
    one = get_json(capsys, "/cluster/ha/resources/vm:100")
    assert one["sid"] == "vm:100"
    assert run(capsys, "set", "/cluster/ha/resources/100", "--max_relocate", "3")[0] == 0
    assert lab.read("ha/resources.cfg") == "vm: 100\n\tmax_relocate 3\n\tstate stopped\n\n"
    assert run(capsys, "delete", "/cluster/ha/resources/vm:100")[0] == 0
    assert lab.read("ha/resources.cfg") == ""
    assert run(capsys, "get", "/cluster/ha/resources/vm:100") == (
        255, "", "no such resource 'vm:100'\n")


def test_ha_resources_errors(lab, capsys):
    code, _, err = run(capsys, "create", "/cluster/ha/resources")
    assert code == 255 and err.startswith("400 Parameter verification failed.\nsid: property "
                                          "is missing")
    assert run(capsys, "create", "/cluster/ha/resources", "--sid", "vm:999") == (
        255, "", "resource 'vm:999' does not exist in cluster\n")
    lab.inquorate()
    assert run(capsys, "create", "/cluster/ha/resources", "--sid", "vm:100") == (
        255, "", "cluster not ready - no quorum?\n")


def test_text_table_is_the_default(lab, capsys, monkeypatch):
    monkeypatch.setattr("locale.getpreferredencoding", lambda *a: "ANSI_X3.4-1968")
    code, out, _ = run(capsys, "get", "/cluster/ha/status")
    assert out == ("+----------------+\n"
                   "| name           |\n"
                   "+================+\n"
                   "| current        |\n"
                   "+----------------+\n"
                   "| manager_status |\n"
                   "+----------------+\n")
    code, out, _ = run(capsys, "get", "/cluster/ha/status", "--noheader", "1")
    assert out.splitlines()[:2] == ["+----------------+", "| current        |"]
    code, out, _ = run(capsys, "get", "/cluster/ha/status", "--noborder", "1")
    assert out.splitlines() == ["name", "current", "manager_status"]


def test_utf8_table(lab, capsys, monkeypatch):
    monkeypatch.setattr("locale.getpreferredencoding", lambda *a: "UTF-8")
    out = run(capsys, "get", "/cluster/ha/status")[1]
    assert out == ("┌────────────────┐\n"
                   "│ name           │\n"
                   "╞════════════════╡\n"
                   "│ current        │\n"
                   "├────────────────┤\n"
                   "│ manager_status │\n"
                   "└────────────────┘\n")
    assert out.splitlines()[0].startswith("┌─") and out.splitlines()[-1].startswith("└─")


@pytest.mark.parametrize("argv,err", [
    (["get", "/foo"], "no 'get' handler for '/foo'\n"),
    (["set", "/cluster/status"], "no 'set' handler for '/cluster/status'\n"),
    (["delete", "/cluster/ha/resources"], "no 'delete' handler for '/cluster/ha/resources'\n"),
    (["get", "/nodes/node1/openvz"], "no 'get' handler for '/nodes/node1/openvz'\n"),
    (["get", "/nodes/node1/qemu/100/status"],
     "no 'get' handler for '/nodes/node1/qemu/100/status'\n"),
    (["create", "/version"], "no 'create' handler for '/version'\n"),
])
def test_no_handler(lab, capsys, argv, err):
    assert run(capsys, *argv) == (255, "", err)


def test_bad_arguments(lab, capsys):
    code, _, err = run(capsys, "get", "/nodes", "--output-format", "xml")
    assert code == 255 and err.startswith("400 Parameter verification failed.\n"
                                          "output-format: value 'xml'")
    code, _, err = run(capsys, "get", "/nodes", "--bogus", "1")
    assert code == 255 and err.startswith("Unknown option: bogus\n")
    assert run(capsys, "frob")[0] == 255
    assert run(capsys, "get")[0] == 255
