"""--emulation-bug: a self-test switch that makes the embedded lab's HA stack unsafe on
purpose. It reaches the lab from pytest and from `pvechaos lab up`, only the embedded lab
takes it, and a lab with it on says so (describe, a WARNING at start, `lab status`)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.timescale import Timescale
from lab import cli, lab_cli
from lab.embedded import EmbeddedLab, detached, preflight
from lab.embedded.config import EmbeddedConfig
from tests.unit.detached_support import running_lab
from tests.unit.test_upgrade_verb import lab_options_of

ROOT = Path(__file__).resolve().parents[2]


def test_the_option_reaches_the_embedded_lab_and_its_description(monkeypatch):
    made = lab_options_of(monkeypatch, emulation_bug=["double-start"])
    assert made["emulation_bugs"] == ("double-start",)
    lab = EmbeddedLab.from_options(**made)
    assert lab.config.emulation_bugs == ("double-start",)
    assert lab.describe()["emulation.bugs"] == "double-start (deliberately unsafe)"


def test_without_the_option_no_bug_and_nothing_said(monkeypatch):
    made = lab_options_of(monkeypatch)
    assert made["emulation_bugs"] == ()
    assert "emulation.bugs" not in EmbeddedLab.from_options(**made).describe()


@pytest.mark.parametrize("kind", ["libvirt", "inventory"])
def test_another_lab_refuses_the_option(monkeypatch, kind):
    with pytest.raises(ConfigError) as info:
        lab_options_of(monkeypatch, lab=kind, emulation_bug=["double-start"])
    assert f"only the embedded lab emulates PVE and can break it on purpose, not --lab " \
           f"{kind}" in str(info.value)
    assert "fix: drop --emulation-bug" in str(info.value)
    assert "emulation_bugs" not in lab_options_of(monkeypatch, lab=kind)  # none: accepted


def test_an_unknown_bug_stops_the_run_before_any_test():
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "scenarios/", "--collect-only", "-q",
         "-p", "no:cacheprovider", "--emulation-bug", "double-stop"], cwd=ROOT,
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "emulation bug 'double-stop' is not known" in done.stderr
    assert "fix: give one of the known ones: double-start" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_lab_warns_when_it_starts_with_a_bug(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(preflight, "check_host", lambda: None)
    monkeypatch.setattr(EmbeddedLab, "_remove_stray_kernel_objects", lambda self: None)
    monkeypatch.setattr(EmbeddedLab, "_build", lambda self: None)
    caplog.set_level(logging.INFO, logger="pvechaos.lab")
    for bugs in ((), ("double-start",)):
        EmbeddedLab(EmbeddedConfig(name="bugs", state_root=tmp_path,
                                   emulation_bugs=bugs)).start()
    warnings = [r for r in caplog.records if r.name == "pvechaos.lab"
                and r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "lab 'bugs' starts with emulation bug double-start switched on: its HA stack breaks "
        "PVE's safety on purpose (a self-test switch, never for anything else)"]


def test_lab_up_takes_the_bug_and_refuses_an_unknown_one(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr(lab_cli, "run", lambda args: seen.update(vars(args)) or 0)
    assert cli.main(["lab", "up", "--emulation-bug", "double-start"]) == 0
    assert seen["config"].emulation_bugs == ("double-start",)
    seen.clear()
    assert cli.main(["lab", "up"]) == 0
    assert seen["config"].emulation_bugs == ()
    monkeypatch.setattr(preflight, "check_host", lambda *a: pytest.fail("a lab started"))
    assert cli.main(["lab", "up", "--emulation-bug", "nope"]) == 2
    err = capsys.readouterr().err
    assert "emulation bug 'nope' is not known" in err and "Traceback" not in err


def test_a_running_lab_remembers_its_bug_and_its_status_says_so(tmp_path, request,
                                                                monkeypatch):
    made = running_lab(tmp_path, request, name="unitb")
    record = made.config.lab_dir / detached.RECORD
    record.write_text(json.dumps({**json.loads(record.read_text()),
                                  "emulation_bugs": ["double-start"]}))
    running = detached.find(EmbeddedConfig(name="unitb", state_root=tmp_path))
    assert running is not None and running.config.emulation_bugs == ("double-start",)
    assert running.config.timescale == Timescale(0.1)
    monkeypatch.setattr(detached.Running, "powered", lambda self: dict.fromkeys(
        self.config.node_names, False))
    lines, _ = detached.status(running)
    assert "  emulation bug double-start (deliberately unsafe)" in lines
