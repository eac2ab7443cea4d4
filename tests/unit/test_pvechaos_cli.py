"""`pvechaos`: every bad value is refused with its fix before anything starts; `lab up`
needs root; a lab that is not running is named; compare and report are reachable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lab import cli, lab_cli
from lab.embedded import config as embedded_config
from lab.embedded import preflight


@pytest.fixture
def nothing_starts(monkeypatch):
    """Fail the test if a lab verb runs (or the host is even checked)."""
    def started(*args, **kwargs):
        pytest.fail("a lab verb ran after a bad value")

    monkeypatch.setattr(lab_cli, "run", started)
    monkeypatch.setattr(preflight, "check_host", started)


@pytest.mark.parametrize(("argv", "said"), [
    (["lab", "up", "--subnet", "garbage"],
     "--lab-subnet 'garbage': not an IPv4 network\n  fix: write it as address/prefix"),
    (["lab", "up", "--subnet", "10.0.0.0/24"], "lies outside --lab-range 198.18.0.0/15"),
    (["lab", "up", "--subnet", "198.18.60.0/28"], "198.18.60.0/28 is too small for a lab"),
    (["lab", "up", "--subnet", "2001:db8::/64"], "an IPv6 network"),
    (["lab", "up", "--name", ""], "--lab-name '': not a valid lab name\n  fix: give 1-8"),
    (["lab", "up", "--name", "Lab_1"], "--lab-name 'Lab_1': not a valid lab name"),
    (["lab", "up", "--name", "toolongname"], "not a valid lab name"),
    (["lab", "up", "--timescale", "inf"], "--timescale 'inf': not a timescale from 0.01 to 10"),
    (["lab", "up", "--timescale", "banana"], "--timescale 'banana': not a timescale"),
    (["lab", "up", "--timescale", "0"], "fix: use a number from 0.01 to 10"),
    (["lab", "up", "--nodes", "0"], "node count 0 is not supported\n  fix: use 1 to 9 nodes"),
    (["lab", "up", "--nodes", "12"], "node count 12 is not supported"),
    (["lab", "up", "--cluster-name", "my cluster"],
     "--cluster-name 'my cluster': not a PVE cluster name\n  fix: give 1-15 letters"),
    (["lab", "up", "--cluster-name=x-"], "not a PVE cluster name"),
    (["lab", "up", "--cluster-name", "a" * 16], "not a PVE cluster name"),
    (["lab", "status", "--name", "a b"], "--lab-name 'a b': not a valid lab name"),
    (["lab", "down", "--name", "UP"], "--lab-name 'UP': not a valid lab name"),
    (["lab", "ssh", "--name=-x", "node1"], "not a valid lab name"),
    (["lab", "cleanup", "ok", "../etc"], "--lab-name '../etc': not a valid lab name"),
])
def test_a_bad_value_is_refused_with_its_fix_before_anything_starts(nothing_starts, capsys,
                                                                    argv, said):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pvechaos lab: ") and said in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["lab", "up", "--pve-flavour", "7"],
    ["lab", "up", "--nodes", "three"],
    ["lab", "ssh"],
    ["lab", "sideways"],
])
def test_an_unknown_choice_or_missing_argument_is_argparse_usage(nothing_starts, capsys, argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage: pvechaos lab" in capsys.readouterr().err


def test_up_takes_the_values_it_was_given(monkeypatch):
    seen = {}
    monkeypatch.setattr(lab_cli, "run", lambda args: seen.update(vars(args)) or 0)
    argv = ["lab", "up", "--name", "cli", "--subnet", "198.18.60.7/24", "--nodes", "5",
            "--pve-flavour", "9", "--timescale", "0.1", "--guest"]
    assert cli.main(argv) == 0
    made = seen["config"]
    assert (made.name, made.subnet, made.node_count) == ("cli", "198.18.60.0/24", 5)
    assert (made.pve_version, made.timescale.factor) == ("9.1.1", 0.1)
    assert seen["guest"] is True and seen["cluster_name"] == "pvechaos"
    assert seen["argv"] == argv and seen["prog"] == "pvechaos"


def test_up_takes_a_qdevice(monkeypatch):
    seen = {}
    monkeypatch.setattr(lab_cli, "run", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(["lab", "up", "--nodes", "2", "--qdevice"]) == 0
    assert seen["config"].qdevice and seen["config"].node_count == 2


@pytest.mark.parametrize("name", ["pvechaos", "a", "Lab-2", "x" * 15, "9lives"])
def test_up_takes_every_name_pvecm_create_takes(monkeypatch, name):
    monkeypatch.setattr(lab_cli, "run", lambda args: 0)
    assert cli.main(["lab", "up", "--cluster-name", name]) == 0


def test_the_defaults_stay_clear_of_the_test_runs_lab(monkeypatch):
    seen = {}
    monkeypatch.setattr(lab_cli, "run", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(["lab", "up"]) == 0
    made = seen["config"]
    assert made.name != "main"  # pytest's default lab name
    assert not made.network.overlaps(__import__("ipaddress").ip_network("198.18.0.0/18"))
    assert (made.node_count, made.timescale.factor, seen["guest"]) == (3, 1.0, False)


def test_up_as_non_root_names_the_fix_and_makes_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(lab_cli.detached, "up", lambda *a, **k: pytest.fail("booted"))
    assert cli.main(["lab", "up", "--name", "cli", "--guest"]) == 1
    err = capsys.readouterr().err
    assert "the embedded lab needs root: it creates network namespaces" in err
    assert "fix: run as root, e.g. `sudo pvechaos lab up --name cli --guest`" in err


@pytest.mark.parametrize("verb", [["status"], ["down"], ["ssh", "node1"], ["cleanup"]])
def test_the_other_lab_verbs_as_non_root_name_the_fix(monkeypatch, capsys, verb):
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(lab_cli.detached, "find", lambda *a: pytest.fail("looked for a lab"))
    assert cli.main(["lab", *verb]) == 1
    err = capsys.readouterr().err
    assert f"`pvechaos lab {verb[0]}` needs root: the lab's state, SSH key" in err
    assert f"fix: run as root, e.g. `sudo pvechaos lab {' '.join(verb)}`" in err


@pytest.mark.parametrize("verb", [["status"], ["down"], ["ssh", "node1", "true"]])
def test_a_lab_that_is_not_running_is_named_with_how_to_start_it(monkeypatch, capsys,
                                                                 tmp_path, verb):
    monkeypatch.setattr(embedded_config, "STATE_ROOT", tmp_path)
    monkeypatch.setattr(lab_cli.os, "execvp", lambda *a: pytest.fail("ssh ran"))
    assert cli.main(["lab", verb[0], "--name", "gone", *verb[1:]]) == 1
    err = capsys.readouterr().err
    assert "pvechaos: no lab named 'gone' is running\n  fix: start one with: pvechaos lab " \
           "up --name gone" in err


def test_ssh_execs_the_system_client_with_the_command(monkeypatch, tmp_path, request):
    from tests.unit.detached_support import running_lab

    running = running_lab(tmp_path, request)
    monkeypatch.setattr(embedded_config, "STATE_ROOT", tmp_path)
    called = []
    monkeypatch.setattr(lab_cli.os, "execvp", lambda prog, argv: called.append(argv))
    cli.main(["lab", "ssh", "--name", "cli", "node2", "pvecm", "status", "-x"])
    assert called == [running.ssh_argv("node2", ["pvecm", "status", "-x"])]
    assert called[0][-4:] == ["root@198.18.60.12", "pvecm", "status", "-x"]


def test_ssh_to_an_unknown_node_lists_the_lab_nodes(monkeypatch, tmp_path, capsys, request):
    from tests.unit.detached_support import running_lab

    running_lab(tmp_path, request)
    monkeypatch.setattr(embedded_config, "STATE_ROOT", tmp_path)
    monkeypatch.setattr(lab_cli.os, "execvp", lambda *a: pytest.fail("ssh ran"))
    assert cli.main(["lab", "ssh", "--name", "cli", "node9"]) == 1
    err = capsys.readouterr().err
    assert "'node9' is not a node of lab 'cli'\n  fix: its nodes are node1, node2, node3" in err


def test_compare_is_harness_compare_under_its_new_name(tmp_path, capsys):
    from harness.metrics import Metric

    def metrics_file(name: str, value_s: float) -> Path:
        row = Metric("test_ha_story", "recovery", value_s, {"node": "node1"}, None,
                     None).to_json()
        path = tmp_path / name
        path.write_text(json.dumps({"run": name, "metrics": [row]}))
        return path

    before, after = metrics_file("before.json", 10.0), metrics_file("after.json", 40.0)
    assert cli.main(["compare", str(before), str(after)]) == 1  # a regression
    assert "1 regression(s)" in capsys.readouterr().out
    assert cli.main(["compare", str(before), str(before)]) == 0
    with pytest.raises(SystemExit):
        cli.main(["compare", "--abs-noise", "-1", str(before), str(after)])
    assert "usage: pvechaos compare" in capsys.readouterr().err


def test_report_refuses_a_missing_results_directory(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "none"), "-o", str(tmp_path / "html")]) == 1
    err = capsys.readouterr().err
    assert f"results directory {tmp_path / 'none'} does not exist" in err
    assert "fix: give the --alluredir of a pytest run" in err


def test_pvechaos_lab_is_the_same_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["pvechaos-lab", "lab", "status", "--name", "BAD"])
    assert cli.lab_main() == 2
    assert capsys.readouterr().err.startswith("pvechaos-lab lab: --lab-name 'BAD'")


def test_the_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        cli.main(["-h"])
    out = capsys.readouterr().out
    for verb in ("lab up", "lab status", "lab ssh", "lab down", "lab cleanup", "compare",
                 "report", "libvirt build", "guest-template", "inventory check"):
        assert f"pvechaos {verb}" in out


def test_both_commands_are_installed_from_one_module():
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'pvechaos = "lab.cli:main"' in text
    assert 'pvechaos-lab = "lab.cli:lab_main"' in text


def test_cleanup_takes_a_running_lab_down_then_sweeps_the_rest(monkeypatch, tmp_path, request,
                                                              capsys):
    from tests.unit.detached_support import running_lab

    running = running_lab(tmp_path, request, name="unitx")
    monkeypatch.setattr(embedded_config, "STATE_ROOT", tmp_path)
    swept = []
    monkeypatch.setattr("lab.embedded.__main__.main", lambda argv: swept.append(argv) or 0)
    assert cli.main(["lab", "cleanup"]) == 0
    assert "unitx: was running; taken down" in capsys.readouterr().out
    assert not running.config.lab_dir.exists()
    assert swept == [["cleanup"]]  # then every lab's leftovers, as before
