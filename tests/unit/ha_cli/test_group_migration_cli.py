"""What a client sees on a PVE 9 node before and after the HA groups are migrated to rules
(pve-operations.md §3.4's table), and on a PVE 8 node, through `ha-manager` and `pvesh`."""

from __future__ import annotations

import json

from pvemu.cli import ha_manager

from .pvesh_calls import get_json
from .pvesh_calls import run as pvesh

GROUPS = ("group: group1\n\tnodes node1\n\trestricted 1\n\n"
          "group: group2\n\tnodes node2:2,node3\n\tnofailback 1\n\n")
RESOURCES = "vm: 100\n\tgroup group1\n\nct: 101\n\tgroup group2\n\nvm: 102\n\n"
MIGRATED = "cannot index groups: ha groups have been migrated to rules\n"


def run(capsys, *argv):
    code = ha_manager.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def before(lab) -> None:
    lab.write("ha/groups.cfg", GROUPS)
    lab.write("ha/resources.cfg", RESOURCES)


def test_pve9_lists_the_groups_until_they_are_migrated(lab, capsys):
    before(lab)
    code, out, _ = run(capsys, "groupconfig")
    assert code == 0 and out.startswith("group: group1\n\tnodes node1\n\trestricted 1\n")
    assert [g["group"] for g in get_json(capsys, "/cluster/ha/groups")] == ["group1",
                                                                            "group2"]
    (lab.root / "ha/groups.cfg").unlink()  # what the CRM's migration does last
    assert run(capsys, "groupconfig") == (255, "", MIGRATED)
    assert pvesh(capsys, "get", "/cluster/ha/groups") == (255, "", MIGRATED)


def test_pve9_shows_the_groups_as_rules_before_the_migration(lab, capsys):
    before(lab)
    rules = {r["rule"]: r for r in get_json(capsys, "/cluster/ha/rules")}
    assert {k: rules["ha-group-group2"][k] for k in ("type", "resources", "nodes", "strict",
                                                     "comment")} == {
        "type": "node-affinity", "resources": "ct:101", "nodes": "node2:2,node3",
        "strict": 0, "comment": "Generated from HA group 'group2'."}
    assert rules["ha-group-group1"]["strict"] == 1
    code, out, _ = run(capsys, "rules", "config", "--output-format", "json")
    assert code == 0 and [r["rule"] for r in json.loads(out)] == ["ha-group-group1",
                                                                  "ha-group-group2"]
    assert not (lab.root / "ha/rules.cfg").exists()  # nothing written by reading
    # still not editable, and `--group` still taken
    assert run(capsys, "rules", "add", "node-affinity", "r1", "--resources", "vm:102",
               "--nodes", "node1")[2] == \
        "cannot create ha rule: ha groups have not been migrated yet\n"
    assert run(capsys, "set", "vm:102", "--group", "group1")[0] == 0
    assert "\tgroup group1\n" in lab.read("ha/resources.cfg").split("vm: 102\n")[1]


def test_pve9_after_the_migration_refuses_group_and_lists_the_file(lab, capsys):
    lab.write("ha/resources.cfg", "vm: 100\n\tfailback 0\n\n")
    lab.write("ha/rules.cfg", "node-affinity: ha-group-group1\n\tcomment Generated from HA "
              "group 'group1'.\n\tnodes node1\n\tresources vm:100\n\tstrict 1\n\n")
    code, _, err = run(capsys, "add", "ct:101", "--group", "group1")
    assert code == 255 and "ha groups have been migrated to rules" in err
    assert [r["rule"] for r in get_json(capsys, "/cluster/ha/rules")] == ["ha-group-group1"]
    assert run(capsys, "config")[1] == "vm:100\n\tfailback 0\n\n"


def test_pve8_has_no_rules_and_lists_groups(lab, capsys):
    lab.flavour(8)
    before(lab)
    assert pvesh(capsys, "get", "/cluster/ha/rules") == (
        255, "", "no 'get' handler for '/cluster/ha/rules'\n")  # pvesh's words; HTTP: 501
    assert [g["group"] for g in get_json(capsys, "/cluster/ha/groups")] == ["group1",
                                                                            "group2"]
