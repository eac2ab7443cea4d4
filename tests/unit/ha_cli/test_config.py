"""pvemu.ha.config: the /etc/pve HA files, written exactly as PVE writes them."""

from __future__ import annotations

import pytest

from pvemu.ha import config

# pve-model.md §11.1, byte for byte (tab-indented keys, blank line after each section)
RESOURCES = ("vm: 100\n\tgroup mygroup\n\tmax_relocate 1\n\tmax_restart 1\n\tstate started\n\n"
             "ct: 101\n\tstate stopped\n\n")
GROUPS = ("group: mygroup1\n\tnodes node2:1,node4,node1:2,node3:1\n\tnofailback 0\n"
          "\trestricted 1\n\n")
RULES = "node-affinity: name\n\tnodes node2:2,node3:1\n\tresources vm:101\n\tstrict 1\n\n"


def test_resources_parse():
    res = config.parse_resources(RESOURCES)
    assert list(res) == ["vm:100", "ct:101"]
    assert res["vm:100"] == {"group": "mygroup", "max_relocate": 1, "max_restart": 1,
                             "state": "started"}
    assert res["ct:101"] == {"state": "stopped"}


def test_resources_roundtrip():
    assert config.render_resources(config.parse_resources(RESOURCES)) == RESOURCES


def test_resources_render_comment_first_then_sorted_and_bool():
    text = config.render_resources({"vm:102": {"state": "disabled", "comment": "db server",
                                               "max_restart": 0, "failback": False}})
    assert text == ("vm: 102\n\tcomment db server\n\tfailback 0\n\tmax_restart 0\n"
                    "\tstate disabled\n\n")


def test_resources_render_refuses_line_feed():
    with pytest.raises(config.HaConfigError):
        config.render_resources({"vm:1": {"comment": "a\nb"}})


def test_resources_skips_other_types_and_comments():
    text = "# hand edit\nvm: 100\n\tstate stopped\n\nfoo: 1\n\tbar 2\n\n"
    assert config.parse_resources(text) == {"vm:100": {"state": "stopped"}}


def test_resources_with_defaults():
    stored = {"vm:100": {"state": "enabled", "group": "g"}, "ct:101": {"comment": "c"},
              "vm:999": {"state": "started"}, "vm:102": {"state": "stopped", "failback": 0}}
    vms = {"vm:100": "node1", "ct:101": "node2", "vm:102": "node3"}
    got = config.resources_with_defaults(stored, vms)
    assert got == {
        "vm:100": {"type": "vm", "state": "started", "node": "node1", "max_restart": 1,
                   "max_relocate": 1, "group": "g", "failback": 1},
        "ct:101": {"type": "ct", "state": "started", "node": "node2", "max_restart": 1,
                   "max_relocate": 1, "failback": 1, "comment": "c"},
        "vm:102": {"type": "vm", "state": "stopped", "node": "node3", "max_restart": 1,
                   "max_relocate": 1, "failback": 0},
    }
    pve8 = config.resources_with_defaults(stored, vms, flavour=8)
    assert "failback" not in pve8["vm:100"] and pve8["vm:102"]["failback"] == 0


def test_resources_with_defaults_type_must_match_vmlist():
    # ct:100 is configured but guest 100 is a VM: its sid is not in the vmlist
    assert config.resources_with_defaults({"ct:100": {}}, {"vm:100": "node1"}) == {}


def test_groups_parse():
    groups = config.parse_groups(GROUPS)
    assert groups == {"mygroup1": {"nodes": {"node2": 1, "node4": 0, "node1": 2, "node3": 1},
                                   "restricted": 1, "nofailback": 0}}


def test_groups_roundtrip():
    assert config.render_groups(config.parse_groups(GROUPS)) == GROUPS


def test_groups_defaults_not_stored_when_new():
    text = config.render_groups({"g": {"nodes": {"node1": 2, "node2": 0}, "restricted": 0,
                                       "nofailback": 0, "comment": "x"}})
    assert text == "group: g\n\tcomment x\n\tnodes node1:2,node2\n\n"
    assert config.render_groups({"g": {"nodes": {"a": 0}, "nofailback": 1}}) == \
        "group: g\n\tnodes a\n\tnofailback 1\n\n"


def test_groups_explicit_zero_priority_roundtrips():
    text = "group: g\n\tnodes a:0,b\n\n"
    assert config.render_groups(config.parse_groups(text)) == text


def test_rules_parse_and_roundtrip():
    rules = config.parse_rules(RULES)
    assert rules == {"name": {"type": "node-affinity", "resources": ["vm:101"],
                              "nodes": {"node2": 2, "node3": 1}, "strict": 1}}
    assert config.render_rules(rules) == RULES


def test_resource_affinity_rule_roundtrip():
    text = ("resource-affinity: keep-apart\n\tcomment spread\n\taffinity negative\n"
            "\tresources vm:100,vm:101\n\n")
    rules = config.parse_rules(text)
    assert rules["keep-apart"]["affinity"] == "negative"
    assert rules["keep-apart"]["resources"] == ["vm:100", "vm:101"]
    assert config.render_rules(rules) == text


def test_rules_render_new():
    text = config.render_rules({"r": {"type": "node-affinity", "resources": ["ct:5"],
                                      "nodes": {"n1": 1}, "strict": 0}})
    assert text == "node-affinity: r\n\tnodes n1:1\n\tresources ct:5\n\n"


def test_datacenter_defaults():
    assert config.parse_datacenter("") == {
        "ha": {"shutdown_policy": "conditional"},
        "crs": {"ha": "basic", "ha-rebalance-on-start": 0}, "max_workers": 4}


def test_datacenter_values():
    dc = config.parse_datacenter("keyboard: en-us\nha: shutdown_policy=migrate\n"
                                 "crs: ha=static,ha-rebalance-on-start=1\nmax_workers: 2\n")
    assert dc["ha"]["shutdown_policy"] == "migrate"
    assert dc["crs"] == {"ha": "static", "ha-rebalance-on-start": 1}
    assert dc["max_workers"] == 2
    assert dc["keyboard"] == "en-us"


def test_paths():
    assert (config.RESOURCES_CFG, config.GROUPS_CFG, config.RULES_CFG) == \
        ("ha/resources.cfg", "ha/groups.cfg", "ha/rules.cfg")
    assert (config.MANAGER_STATUS, config.CRM_COMMANDS, config.DATACENTER_CFG) == \
        ("ha/manager_status", "ha/crm_commands", "datacenter.cfg")
    assert config.lrm_status_path("node2") == "nodes/node2/lrm_status"
