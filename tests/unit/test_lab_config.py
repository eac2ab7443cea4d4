"""Embedded lab configuration: bad input is refused with a fix, before anything exists."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from lab.embedded.config import EmbeddedConfig


def test_defaults_give_three_nodes_inside_the_reserved_range():
    config = EmbeddedConfig()
    assert config.node_names == ("node1", "node2", "node3")
    assert config.host_address == "198.18.0.1"
    assert [config.node_address(n) for n in config.node_names] == [
        "198.18.0.11", "198.18.0.12", "198.18.0.13"]


@pytest.mark.parametrize("kwargs, message, hint", [
    ({"name": "Main"}, "lab name 'Main' is not valid", "lowercase"),
    ({"name": "toolongname"}, "is not valid", "1-8 characters"),
    ({"subnet": "10.0.0.0/24"}, "outside the lab range", "inside 198.18.0.0/15"),
    ({"subnet": "198.18.0.0/28"}, "too small", "/27"),
    ({"subnet": "not-a-net"}, "bad lab subnet", "198.18.0.0/24"),
    ({"subnet": "198.18.0.5/24"}, "bad lab subnet", "198.18.0.0/24"),
    ({"node_count": 0}, "node count 0", "1 to 9"),
    ({"pve_version": "eight"}, "PVE version 'eight'", "8.4.1"),
    ({"node_versions": {"node2": "9.x"}}, "for node2", "8.4.1"),
    ({"node_versions": {"node7": "9.0.3"}}, "unknown node(s) ['node7']", "node1, node2"),
    # (a bad factor never becomes a Timescale: tests/unit/test_timescale.py)
    ({"timescale": 0.1}, "timescale 0.1 is not a Timescale", "Timescale(factor)"),
])
def test_bad_configuration_names_the_fix(kwargs, message, hint):
    with pytest.raises(ConfigError) as info:
        EmbeddedConfig(**kwargs)
    assert message in str(info.value)
    assert hint in str(info.value)


def test_per_node_versions_override_the_lab_version():
    config = EmbeddedConfig(pve_version="8.4.1", node_versions={"node3": "9.0.3"})
    assert [config.version_of(n) for n in config.node_names] == ["8.4.1", "8.4.1", "9.0.3"]


def test_kernel_object_names_fit_the_15_character_limit():
    config = EmbeddedConfig(name="abcdefgh", node_count=9)
    names = [config.bridge, *(config.veth(n) for n in config.node_names)]
    assert all(len(name) <= 15 for name in names), names
    assert len(set(names)) == len(names)


def test_every_lab_object_is_named_after_the_lab():
    a, b = EmbeddedConfig(name="a"), EmbeddedConfig(name="b")
    assert a.bridge != b.bridge and a.netns("node1") != b.netns("node1")
    assert a.lab_dir != b.lab_dir and a.lab_dir.name == "a"


def test_an_unknown_emulation_bug_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError) as info:
        EmbeddedConfig(emulation_bugs=("double-stop",))
    assert "emulation bug 'double-stop' is not known" in str(info.value)
    assert "fix: give one of the known ones: double-start (" in str(info.value)


def test_emulation_bugs_are_off_unless_named_and_kept_once_each():
    from lab.embedded.config import EMULATION_BUGS

    assert EmbeddedConfig().emulation_bugs == ()
    assert set(EMULATION_BUGS) == {"double-start"}
    assert EmbeddedConfig(emulation_bugs=["double-start", "double-start"]).emulation_bugs == \
        ("double-start",)
    assert EmbeddedConfig(emulation_bugs="double-start").emulation_bugs == ("double-start",)



def test_the_emulated_stack_knows_every_bug_the_lab_offers():
    """pvemu imports nothing of lab/: the names are agreed, not shared."""
    from lab.embedded.config import EMULATION_BUGS
    from pvemu.ha.node_status import EMULATION_BUGS as HANDLED

    assert set(EMULATION_BUGS) == set(HANDLED)
