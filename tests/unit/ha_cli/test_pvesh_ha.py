"""pvesh's HA groups (PVE 8) and rules (PVE 9) paths and /cluster/options against a
temporary /etc/pve; the resources and status paths are in test_pvesh.py."""

from __future__ import annotations

import hashlib

import pytest

from .test_pvesh_nodes import get_json, run


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def test_groups_crud_on_pve8(lab, capsys):
    lab.flavour(8)
    assert get_json(capsys, "/cluster/ha/groups") == []
    assert run(capsys, "create", "/cluster/ha/groups", "--group", "g1", "--nodes",
               "node1:2,node2", "--restricted", "1", "--output-format", "json") == (0, "", "")
    stored = lab.read("ha/groups.cfg")
    assert stored == "group: g1\n\tnodes node1:2,node2\n\trestricted 1\n\n"
    want = {"group": "g1", "type": "group", "nodes": "node1:2,node2", "restricted": 1,
            "digest": sha1(stored)}
    assert get_json(capsys, "/cluster/ha/groups") == [want]
    assert get_json(capsys, "/cluster/ha/groups/g1") == want
    assert run(capsys, "set", "/cluster/ha/groups/g1", "--comment", "db",
               "--delete", "restricted") == (0, "", "")
    one = get_json(capsys, "/cluster/ha/groups/g1")
    assert (one["comment"], "restricted" in one) == ("db", False)
    lab.write("ha/resources.cfg", "vm: 100\n\tgroup g1\n\n")
    assert run(capsys, "delete", "/cluster/ha/groups/g1") == (
        255, "", "delete ha group failed: ha group is used by service 'vm:100'\n")
    lab.write("ha/resources.cfg", "")
    assert run(capsys, "delete", "/cluster/ha/groups/g1") == (0, "", "")
    assert get_json(capsys, "/cluster/ha/groups") == []


def test_group_errors(lab, capsys):
    lab.flavour(8)
    code, _, err = run(capsys, "create", "/cluster/ha/groups", "--nodes", "node1")
    assert code == 255 and err.startswith("400 Parameter verification failed.\ngroup: "
                                          "property is missing")
    code, _, err = run(capsys, "create", "/cluster/ha/groups", "--group", "g1")
    assert code == 255 and "nodes: property is missing" in err
    assert run(capsys, "get", "/cluster/ha/groups/nope") == (
        255, "", "no such ha group 'nope'\n")
    assert run(capsys, "set", "/cluster/ha/groups/nope", "--comment", "x")[2] == \
        "update ha group failed: no such ha group 'nope'\n"


@pytest.mark.parametrize("cmd,path", [("create", "/cluster/ha/groups"),
                                      ("get", "/cluster/ha/groups/g1"),
                                      ("delete", "/cluster/ha/groups/g1")])
def test_no_groups_on_pve9(lab, capsys, cmd, path):
    assert run(capsys, cmd, path) == (255, "", f"no '{cmd}' handler for '{path}'\n")


@pytest.mark.parametrize("cmd,path", [("get", "/cluster/ha/rules"),
                                      ("create", "/cluster/ha/rules"),
                                      ("set", "/cluster/ha/rules/r1")])
def test_no_rules_on_pve8(lab, capsys, cmd, path):
    lab.flavour(8)
    assert run(capsys, cmd, path) == (255, "", f"no '{cmd}' handler for '{path}'\n")


def test_rules_crud_on_pve9(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\nct: 101\n\n")
    assert run(capsys, "create", "/cluster/ha/rules", "--rule", "keep", "--type",
               "node-affinity", "--resources", "vm:100", "--nodes", "node1:2,node2") == (
        0, "", "")
    assert run(capsys, "create", "/cluster/ha/rules", "--rule", "apart", "--type",
               "resource-affinity", "--resources", "vm:100,ct:101", "--affinity",
               "negative") == (0, "", "")
    digest = sha1(lab.read("ha/rules.cfg"))
    data = get_json(capsys, "/cluster/ha/rules")
    assert {d["rule"]: d for d in data} == {
        "keep": {"rule": "keep", "type": "node-affinity", "resources": "vm:100",
                 "nodes": "node1:2,node2", "strict": 0, "digest": digest},
        "apart": {"rule": "apart", "type": "resource-affinity", "resources": "vm:100,ct:101",
                  "affinity": "negative", "digest": digest}}
    assert [d["rule"] for d in get_json(capsys, "/cluster/ha/rules", "--type",
                                        "resource-affinity")] == ["apart"]
    assert [d["rule"] for d in get_json(capsys, "/cluster/ha/rules", "--resource",
                                        "ct:101")] == ["apart"]
    assert get_json(capsys, "/cluster/ha/rules/keep")["nodes"] == "node1:2,node2"
    assert run(capsys, "set", "/cluster/ha/rules/keep", "--type", "node-affinity",
               "--strict", "1", "--comment", "pin") == (0, "", "")
    one = get_json(capsys, "/cluster/ha/rules/keep")
    assert (one["strict"], one["comment"]) == (1, "pin")
    assert run(capsys, "delete", "/cluster/ha/rules/keep") == (0, "", "")
    assert [d["rule"] for d in get_json(capsys, "/cluster/ha/rules")] == ["apart"]


def test_rule_errors(lab, capsys):
    code, _, err = run(capsys, "create", "/cluster/ha/rules", "--rule", "r", "--type",
                       "node-affinity", "--resources", "vm:100", "--nodes", "node1")
    assert (code, err) == (255, "cannot use unmanaged resource(s) vm:100.\n")
    code, _, err = run(capsys, "set", "/cluster/ha/rules/r", "--comment", "x")
    assert code == 255 and err.startswith("400 Parameter verification failed.\ntype: "
                                          "property is missing")
    assert run(capsys, "get", "/cluster/ha/rules/r") == (
        255, "", "HA rule 'r' does not exist\n")
    lab.write("ha/groups.cfg", "group: g1\n\tnodes node1\n\n")
    lab.write("ha/resources.cfg", "vm: 100\n\n")
    code, _, err = run(capsys, "create", "/cluster/ha/rules", "--rule", "r", "--type",
                       "node-affinity", "--resources", "vm:100", "--nodes", "node1")
    assert (code, err) == (255, "cannot create ha rule: ha groups have not been migrated "
                                "yet\n")


def test_cluster_options(lab, capsys):
    assert get_json(capsys, "/cluster/options") == {}
    lab.write("datacenter.cfg", "# managed by hand\nkeyboard: en-us\nmax_workers: 2\n"
              "ha: shutdown_policy=migrate\ncrs: static,ha-rebalance-on-start=1\n"
              "migration: secure,network=198.18.60.0/24\n")
    assert get_json(capsys, "/cluster/options") == {
        "keyboard": "en-us", "max_workers": "2", "ha": {"shutdown_policy": "migrate"},
        "crs": {"ha": "static", "ha-rebalance-on-start": "1"},
        "migration": {"type": "secure", "network": "198.18.60.0/24"}}
