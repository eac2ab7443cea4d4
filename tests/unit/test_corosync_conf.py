"""corosync.conf as pvecm writes it (pve-model.md §14.3)."""

from __future__ import annotations

import pytest

from pvemu import corosync_conf

# pve-model.md §14.3, the file `pvecm create mycluster --link0 10.0.0.1` writes on pve1
# with pve-cluster >= 9.1 (token_coefficient 125); older versions omit that one line.
CREATED = """\
logging {
  debug: off
  to_syslog: yes
}

nodelist {
  node {
    name: pve1
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 10.0.0.1
  }
}

quorum {
  provider: corosync_votequorum
}

totem {
  cluster_name: mycluster
  config_version: 1
  interface {
    linknumber: 0
  }
  ip_version: ipv4-6
  link_mode: passive
  secauth: on
  token_coefficient: 125
  version: 2
}
"""


def test_create_writes_the_documented_file():
    conf = corosync_conf.create("mycluster", "pve1", 1, 1, {0: "10.0.0.1"},
                                token_coefficient=125)
    assert corosync_conf.render(conf) == CREATED


def test_before_pve_9_1_no_token_key_at_all():
    text = corosync_conf.render(corosync_conf.create("mycluster", "pve1", 1, 1,
                                                     {0: "10.0.0.1"}, token_coefficient=None))
    assert text == CREATED.replace("  token_coefficient: 125\n", "")
    assert "token" not in text.replace("token_coefficient", "")


def test_two_links_give_two_interfaces_and_two_ring_addresses():
    conf = corosync_conf.create("c", "pve1", 1, 1, {1: "10.1.0.1", 0: "10.0.0.1"},
                                token_coefficient=None)
    assert corosync_conf.links_of(conf) == [0, 1]
    node = corosync_conf.nodes(conf)[0]
    assert (node["ring0_addr"], node["ring1_addr"]) == ("10.0.0.1", "10.1.0.1")
    text = corosync_conf.render(conf)
    assert text.index("linknumber: 0") < text.index("linknumber: 1")


def test_nodes_are_written_sorted_by_name():
    conf = corosync_conf.create("c", "pve2", 2, 1, {0: "10.0.0.2"}, token_coefficient=None)
    corosync_conf.nodes(conf).append({"name": "pve1", "nodeid": "1", "quorum_votes": "1",
                                      "ring0_addr": "10.0.0.1"})
    text = corosync_conf.render(conf)
    assert text.index("name: pve1") < text.index("name: pve2")


@pytest.mark.parametrize("name", ["pve8/corosync_conf.txt", "pve9/corosync_conf.txt"])
def test_a_three_node_file_parses_and_renders_back_unchanged(load, name):
    text = load(name)
    conf = corosync_conf.parse(text)
    assert [n["name"] for n in corosync_conf.nodes(conf)] == ["node1", "node2", "node3"]
    assert conf["totem"]["config_version"] == "3"  # create, then one bump per join
    assert corosync_conf.config_version(text) == 3
    assert corosync_conf.render(conf) == text


def test_parse_ignores_comments_and_blank_lines():
    conf = corosync_conf.parse("# head\ntotem {\n  version: 2 # inline\n\n}\n")
    assert conf == {"totem": {"version": "2"}}


@pytest.mark.parametrize("text, message", [
    ("totem {\n  version: 2\n", "not closed"),
    ("}\n", "unbalanced"),
    ("totem {\n  version 2\n}\n", "cannot read line"),
])
def test_parse_rejects_broken_files(text, message):
    with pytest.raises(ValueError, match=message):
        corosync_conf.parse(text)


def test_config_version_of_a_file_without_one_is_zero():
    assert corosync_conf.config_version("totem {\n}\n") == 0
