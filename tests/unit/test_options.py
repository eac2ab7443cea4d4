"""harness/options.py and lab/options.py: each bad pytest-option value ends in a
UsageError naming the option, what is wrong and the fix; and `pytest scenarios/` stops
with it (exit code 4, no traceback) before any lab starts (collection only: nothing is booted)."""

from __future__ import annotations

import ipaddress
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import options
from harness.timescale import Timescale
from lab import options as lab_options

ROOT = Path(__file__).resolve().parents[2]


def refused(check, *args, **kwargs) -> str:
    with pytest.raises(pytest.UsageError) as info:
        check(*args, **kwargs)
    return str(info.value)


# -- --lab-subnet, --lab-range --------------------------------------------------------------
def test_a_subnet_that_is_no_network_is_refused():
    assert refused(lab_options.lab_network, "garbage", "198.18.0.0/15") == (
        "--lab-subnet 'garbage': not an IPv4 network\n"
        "  fix: write it as address/prefix, e.g. --lab-subnet 198.18.0.0/24")


def test_a_subnet_outside_the_range_is_refused():
    assert refused(lab_options.lab_network, "10.0.0.0/24", "198.18.0.0/15") == (
        "--lab-subnet '10.0.0.0/24': 10.0.0.0/24 lies outside --lab-range 198.18.0.0/15\n"
        "  fix: choose a subnet inside 198.18.0.0/15, or widen --lab-range on purpose")


def test_a_range_that_is_no_network_is_refused():
    assert refused(lab_options.lab_network, "198.18.0.0/24", "garbage") == (
        "--lab-range 'garbage': not an IPv4 network\n"
        "  fix: write it as address/prefix, e.g. --lab-range 198.18.0.0/15")


def test_an_ipv6_subnet_and_a_tiny_one_are_refused():
    assert "an IPv6 network" in refused(lab_options.lab_network, "fd00::/64", "198.18.0.0/15")
    message = refused(lab_options.lab_network, "198.18.0.0/28", "198.18.0.0/15")
    assert message.startswith("--lab-subnet '198.18.0.0/28': 198.18.0.0/28 is too small")
    assert "fix: give a /27 or larger" in message


def test_a_good_subnet_is_parsed():
    assert lab_options.lab_network("198.18.4.0/24", "198.18.0.0/15") == (
        ipaddress.ip_network("198.18.4.0/24"), ipaddress.ip_network("198.18.0.0/15"))


# -- --timescale ---------------------------------------------------------------------------
FIX_TIMESCALE = ("  fix: use a number from 0.01 to 10: 1 for PVE's real timings, 0.1 for ten "
                 "times faster")


@pytest.mark.parametrize("raw, shown", [
    (math.inf, "inf"), (math.nan, "nan"), (0.0, "0"), (-1.0, "-1"), (1e300, "1e+300"),
    (0.001, "0.001"), (11.0, "11"), ("banana", "'banana'")])
def test_a_timescale_outside_its_range_is_refused(raw, shown):
    assert refused(options.timescale, raw) == (
        f"--timescale {shown}: not a timescale from 0.01 to 10\n{FIX_TIMESCALE}")


def test_a_good_timescale_is_the_runs_timescale():
    assert options.timescale(0.1) == Timescale(0.1)
    assert options.timescale("1") == Timescale(1.0)


# -- --recovery-budget ---------------------------------------------------------------------
FIX_BUDGET = ("  fix: give the most time a recovery may take at timescale 1, e.g. "
              "--recovery-budget 120 (the default; it is scaled with --timescale)")


@pytest.mark.parametrize("raw, shown", [
    (-1.0, "-1"), (0.0, "0"), (math.inf, "inf"), (math.nan, "nan"), ("soon", "'soon'")])
def test_a_budget_that_is_no_positive_number_of_seconds_is_refused(raw, shown):
    assert refused(options.recovery_budget, raw) == (
        f"--recovery-budget {shown}: not a number of seconds > 0\n{FIX_BUDGET}")


def test_a_good_budget_is_its_seconds():
    assert options.recovery_budget(240.0) == 240.0


# -- --lab-name ----------------------------------------------------------------------------
FIX_NAME = ("  fix: give 1-8 characters, lowercase letters and digits, starting with a letter "
            "(it names the lab's bridges and namespaces), e.g. --lab-name lab1")


@pytest.mark.parametrize("raw", ["", "Main", "1abc", "toolongname", "a-b", "ab\n"])
def test_a_lab_name_breaking_the_rule_is_refused(raw):
    assert refused(lab_options.lab_name, raw) == (
        f"--lab-name {raw!r}: not a valid lab name\n{FIX_NAME}")


def test_a_good_lab_name_is_kept_and_none_means_the_default():
    assert lab_options.lab_name("abcdefgh") == "abcdefgh"
    assert lab_options.lab_name(None) is None


def test_the_embedded_lab_uses_the_same_name_rule():
    from harness.errors import ConfigError
    from lab.embedded.config import EmbeddedConfig

    with pytest.raises(ConfigError, match=lab_options.LAB_NAME_RULE.replace("(", r"\(")
                       .replace(")", r"\)")):
        EmbeddedConfig(name="1abc")


# -- --story-nodes -------------------------------------------------------------------------
def test_story_nodes_naming_a_node_twice_are_refused():
    assert refused(options.story_nodes, "node1,node1,node9") == (
        "--story-nodes 'node1,node1,node9': names node1 twice; the three nodes must differ\n"
        "  fix: give three different nodes, e.g. --story-nodes node2,node3,node1")


@pytest.mark.parametrize("raw, got", [("node1,node2", "2"), ("node1,node2,node3,node4", "4"),
                                      ("node1,,node2", "an empty one"), ("", "an empty one")])
def test_story_nodes_that_are_not_three_names_are_refused(raw, got):
    assert refused(options.story_nodes, raw) == (
        f"--story-nodes {raw!r}: needs 3 node names, got {got}\n"
        "  fix: give FIRST,SECOND,SURVIVOR: which nodes lose power first and second and which "
        "survives, e.g. --story-nodes node2,node3,node1")


def test_a_story_node_the_cluster_lacks_is_refused_naming_the_valid_ones():
    assert refused(options.story_nodes, "node1,node2,node9",
                   known=("node1", "node2", "node3")) == (
        "--story-nodes 'node1,node2,node9': node9 is not a node of this cluster\n"
        "  fix: choose three of node1, node2, node3")


def test_good_story_nodes_are_their_names():
    assert options.story_nodes("node2, node3,node1", known=("node1", "node2", "node3")) == (
        "node2", "node3", "node1")
    assert options.story_nodes(None) is None


# -- --metrics-file ------------------------------------------------------------------------
FIX_METRICS = "  fix: give a writable path, e.g. --metrics-file reports/metrics.json"


def test_a_metrics_file_under_a_file_is_refused(tmp_path):
    (tmp_path / "plain").write_text("")
    raw = str(tmp_path / "plain" / "reports" / "metrics.json")
    assert refused(options.metrics_file, raw) == (
        f"--metrics-file {raw!r}: {tmp_path / 'plain'} is a file, not a directory\n"
        f"{FIX_METRICS}")


def test_a_metrics_file_that_is_a_directory_is_refused(tmp_path):
    assert refused(options.metrics_file, tmp_path) == (
        f"--metrics-file {str(tmp_path)!r}: is a directory\n{FIX_METRICS}")


def test_a_metrics_file_in_an_unwritable_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    raw = str(locked / "new" / "metrics.json")
    try:
        if os.geteuid() == 0:  # root writes anywhere but /sys, /proc and read-only mounts
            raw = "/sys/pvechaos/metrics.json"
            where = "/sys"
        else:
            where = str(locked)
        message = refused(options.metrics_file, raw)
    finally:
        locked.chmod(0o700)
    assert message.startswith(f"--metrics-file {raw!r}: nothing can be written in {where} (")
    assert message.endswith(FIX_METRICS)


def test_a_writable_metrics_file_is_accepted_and_nothing_is_made(tmp_path):
    raw = tmp_path / "reports" / "metrics.json"
    assert options.metrics_file(raw) == raw
    assert list(tmp_path.iterdir()) == []


# -- --pve-version -------------------------------------------------------------------------
FLAVOURS = "8 (8.4.1), 9 (9.1.1)"


def test_a_pve_version_that_is_no_version_says_what_one_looks_like():
    assert refused(lab_options.pve_version, "banana", "8") == (
        "--pve-version 'banana': not a PVE version\n"
        f"  fix: write it as major.minor[.patch], e.g. --pve-version 8.4.1; the flavours "
        f"(--pve-flavour) are {FLAVOURS}")


def test_a_pve_version_of_the_other_flavour_names_the_flavour_to_add():
    assert refused(lab_options.pve_version, "9.1.1", "8") == (
        "--pve-version '9.1.1': not a version of --pve-flavour 8\n"
        "  fix: add --pve-flavour 9, or give a 8.x version")


def test_a_pve_version_of_no_flavour_names_the_flavours():
    assert refused(lab_options.pve_version, "7.4", "8") == (
        "--pve-version '7.4': not a version of --pve-flavour 8\n"
        f"  fix: give a 8.x version; the flavours (--pve-flavour) are {FLAVOURS}")


def test_a_good_pve_version_and_the_flavour_default():
    assert lab_options.pve_version("8.3", "8") == "8.3"
    assert lab_options.pve_version(None, "9") == "9.1.1"


# -- --nodes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["10", "0", "-3", "five", "3.5", ""])
def test_a_node_count_outside_three_to_nine_is_refused(raw):
    assert refused(lab_options.node_count, raw) == (
        f"--nodes {raw!r}: not a node count from 3 to 9\n"
        "  fix: give 3 (PVE's minimum for HA) to 9, e.g. --nodes 5, or --nodes 2 --qdevice")


def test_two_nodes_need_the_qdevice():
    message = refused(lab_options.node_count, "2")
    assert message.startswith("--nodes '2': two nodes have no quorum once one is lost")
    assert "fix: add --qdevice" in message
    assert lab_options.node_count("2", qdevice=True) == 2
    # the QDevice adds no other count below three
    assert refused(lab_options.node_count, "1", "embedded", qdevice=True).startswith(
        "--nodes '1': not a node count from 3 to 9")


def test_the_qdevice_is_the_embedded_labs_alone():
    assert lab_options.qdevice(True) is True and lab_options.qdevice(False, "libvirt") is False
    assert refused(lab_options.qdevice, True, "inventory").startswith(
        "--qdevice 'on': only the embedded lab makes a qnetd host, not --lab inventory")


def test_a_node_count_is_refused_for_the_labs_that_name_their_nodes():
    message = refused(lab_options.node_count, "5", "libvirt")
    assert message.startswith("--nodes '5': only the embedded lab takes a node count")
    assert "the libvirt lab's count is its YAML's `nodes`" in message


def test_good_node_counts_and_the_default():
    assert [lab_options.node_count(str(n)) for n in range(3, 10)] == list(range(3, 10))
    assert lab_options.node_count(None) == lab_options.node_count(None, "inventory") == 3


def test_the_node_count_reaches_the_embedded_lab(monkeypatch):
    import lab.pytest_plugin as plugin
    from lab.embedded import EmbeddedLab

    values = {"lab": "embedded", "nodes": "5", "lab_subnet": "198.18.77.0/24",
              "lab_range": "198.18.0.0/15", "node_version": [], "lab_name": "nodes5",
              "pve_version": None, "pve_flavour": "8", "cluster_name": "pvechaos",
              "lab_formed": "reuse", "qdevice": False, "upgrade_to": None,
              "upgrade_command": None, "emulation_bug": []}
    config = type("Config", (), {"getoption": lambda self, name: values[name]})()
    monkeypatch.setattr(plugin, "run_timescale", lambda config: Timescale(0.1))
    made = plugin.lab_options(config)
    assert made["node_count"] == 5
    lab = EmbeddedLab.from_options(**made)
    assert [n.name for n in lab.nodes()] == ["node1", "node2", "node3", "node4", "node5"]
    assert lab.nodes()[-1].address == "198.18.77.15"
    assert lab.qnetd_address() is None


def test_two_nodes_and_the_qdevice_reach_the_embedded_lab(monkeypatch):
    import lab.pytest_plugin as plugin
    from lab.embedded import EmbeddedLab

    values = {"lab": "embedded", "nodes": "2", "lab_subnet": "198.18.77.0/24",
              "lab_range": "198.18.0.0/15", "node_version": [], "lab_name": "qdev",
              "pve_version": None, "pve_flavour": "8", "qdevice": True,
              "cluster_name": "pvechaos", "lab_formed": "reuse", "upgrade_to": None,
              "upgrade_command": None, "emulation_bug": []}
    config = type("Config", (), {"getoption": lambda self, name: values[name]})()
    monkeypatch.setattr(plugin, "run_timescale", lambda config: Timescale(0.1))
    lab = EmbeddedLab.from_options(**plugin.lab_options(config))
    assert [n.name for n in lab.nodes()] == ["node1", "node2"]
    # the arbiter sits just below the nodes' .11.. (host .1, guests from .120)
    assert lab.qnetd_address() == "198.18.77.10"
    assert lab.describe()["qdevice.qnetd"] == "198.18.77.10:5403"


# -- end to end: `pytest scenarios/` stops before any lab starts ----------------------------
def collect(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/", "--collect-only", "-q",
         "-p", "no:cacheprovider", *argv], cwd=ROOT, capture_output=True, text=True,
        timeout=120)


@pytest.mark.parametrize("argv, message", [
    (("--lab-subnet", "garbage"), "ERROR: --lab-subnet 'garbage': not an IPv4 network\n"
                                  "  fix: write it as address/prefix"),
    (("--timescale", "inf"), f"ERROR: --timescale inf: not a timescale from 0.01 to 10\n"
                             f"{FIX_TIMESCALE}"),
    (("--story-nodes", "node1,node1,node9"), "ERROR: --story-nodes 'node1,node1,node9': "
                                             "names node1 twice"),
    (("--recovery-budget=-1",), f"ERROR: --recovery-budget -1: not a number of seconds > 0\n"
                                f"{FIX_BUDGET}"),
    (("--lab-name=",), f"ERROR: --lab-name '': not a valid lab name\n{FIX_NAME}"),
    (("--pve-version", "banana"), "ERROR: --pve-version 'banana': not a PVE version\n"),
    (("--metrics-file", "README.md/metrics.json"),
     "ERROR: --metrics-file 'README.md/metrics.json': "),
    (("--cluster-name", "my cluster"), "ERROR: --cluster-name 'my cluster': not a PVE "
                                       "cluster name\n"),
    (("--nodes", "2"), "ERROR: --nodes '2': two nodes have no quorum once one is lost"),
])
def test_pytest_scenarios_stops_with_a_usage_error_and_no_traceback(argv, message):
    done = collect(*argv)
    assert done.returncode == 4, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and "INTERNALERROR" not in done.stderr
    assert "collected" not in done.stdout  # stopped at configure: not even collected
