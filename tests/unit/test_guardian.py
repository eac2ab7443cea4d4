"""The lab guardian's owner-alive logic (a reused pid is not the owner, a zombie is not
alive), its watch, and `pvechaos lab cleanup --all`'s choices, without a lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from lab import cli, lab_cli
from lab.embedded import guardian
from lab.embedded.state import LabState
from lab.processes import owner_runs, process_alive, process_start_time


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_the_owner_runs_only_with_its_own_start_time(child):
    start = process_start_time(child.pid)
    assert start is not None
    assert owner_runs(child.pid, start)
    assert not owner_runs(child.pid, start + 1)  # the pid reused by another
    assert not owner_runs(child.pid, None)  # nothing to tell a reused pid by


def test_an_ended_owner_is_dead_zombie_or_reaped(child):
    start = process_start_time(child.pid)
    child.kill()
    deadline = time.monotonic() + 5
    while process_start_time(child.pid) is not None and process_alive(child.pid, start):
        assert time.monotonic() < deadline, "the killed child still runs"
        time.sleep(0.01)
    assert not owner_runs(child.pid, start)  # a zombie (not reaped yet)
    child.wait(timeout=5)
    assert not owner_runs(child.pid, start)


def test_the_state_owner_with_another_start_time_is_gone(tmp_path, child):
    state = LabState(tmp_path / "lab1")
    state.data["owner"] = {"pid": child.pid, "start": process_start_time(child.pid)}
    assert state.owner_alive() == child.pid
    state.data["owner"]["start"] += 7
    assert state.owner_alive() is None


def test_the_guardian_is_recorded_with_the_owner(tmp_path, child):
    state = LabState(tmp_path / "lab1")
    state.claim()
    state.set_guardian(child.pid)
    again = LabState(tmp_path / "lab1")
    assert again.load()
    assert again.data["owner"]["pid"] == os.getpid()
    assert again.guardian == {"pid": child.pid, "start": process_start_time(child.pid)}
    again.set_guardian(None)
    assert again.guardian is None and again.data["owner"]["pid"] == os.getpid()


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "proc-polling"])
def test_watch_returns_when_the_owner_ends(tmp_path, child, monkeypatch, pidfd):
    if not pidfd:
        def no_pidfd(_pid):
            raise OSError(38, "Function not implemented")
        monkeypatch.setattr(guardian.os, "pidfd_open", no_pidfd)
    state_path = tmp_path / "state.json"
    state_path.write_text("{}")
    start = process_start_time(child.pid)
    killer = subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -9 {child.pid}"])
    began = time.monotonic()
    assert guardian.watch(child.pid, start, state_path) == "owner gone"
    assert time.monotonic() - began < 2.0
    killer.wait(timeout=5)


def test_watch_sees_a_reused_pid_at_once_and_a_removed_state(tmp_path, child):
    state_path = tmp_path / "state.json"
    start = process_start_time(child.pid)
    state_path.write_text("{}")
    assert guardian.watch(child.pid, start + 1, state_path) == "owner gone"
    state_path.unlink()
    assert guardian.watch(child.pid, start, state_path) == "state gone"


def write_state(root, name: str, owner: dict | None) -> None:
    state = LabState(root / name)
    state.data["owner"] = owner
    state.save()


def test_cleanup_all_removes_gone_owners_and_keeps_running_ones(tmp_path, child,
                                                                 monkeypatch,
                                                                 tmp_path_factory):
    write_state(tmp_path, "live", {"pid": child.pid, "start": process_start_time(child.pid)})
    write_state(tmp_path, "dead", {"pid": child.pid, "start": 1})  # its pid reused since
    monkeypatch.setattr(lab_cli.state, "kernel_objects",
                        lambda: {"dead": ["link pvc-dead"], "orphan": ["link pvc-orphan"]})
    removed: list[str] = []
    import lab.embedded

    monkeypatch.setattr(lab.embedded, "remove_leftovers",
                        lambda config, take_detached=False: removed.append(config.name))
    # a killed run's record (lab/run_guardian.py) whose guardian died too
    guard = tmp_path_factory.mktemp("guard")  # not under the labs' root
    run = guard / "999999999-1"
    run.mkdir(parents=True)
    (run / "00000000000000000001-0000-qemu-bed-q1.json").write_text(json.dumps(
        {"name": "qemu-bed-q1", "teardown": "tests.guard_target:note",
         "args": {"path": str(tmp_path / "notes"), "name": "q1"}}))
    lines: list[str] = []
    assert lab_cli.cleanup_all(tmp_path, dry_run=True, say=lines.append,
                               guard_root=guard) == 0
    assert removed == [] and run.exists()
    text = "\n".join(lines)
    assert f"  live: kept: owner pid {child.pid} runs" in text
    assert f"  dead: would be removed: owner pid {child.pid} is gone; 1 kernel object(s): " \
           "link pvc-dead" in text
    assert "  orphan: would be removed: no state directory" in text
    assert "  run pid 999999999: would be removed: owner and guardian gone; qemu-bed-q1" \
        in text
    assert "would remove 3, kept 1" in text
    lines.clear()
    assert lab_cli.cleanup_all(tmp_path, say=lines.append, guard_root=guard) == 0
    assert removed == ["dead", "orphan"]
    assert (tmp_path / "notes").read_text() == "q1\n" and not run.exists()
    assert "removed 3, kept 1" in "\n".join(lines)


def test_cleanup_all_with_names_or_dry_run_alone_is_refused(capsys):
    assert cli.main(["lab", "cleanup", "--all", "lab1"]) == 2
    assert "give lab names or --all, not both" in capsys.readouterr().err
    assert cli.main(["lab", "cleanup", "--dry-run"]) == 2
    assert "--dry-run goes with --all only" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["lab", "embedded"])
def test_both_spellings_of_cleanup_take_all_and_dry_run(kind, monkeypatch):
    calls: list[dict] = []
    monkeypatch.setattr(lab_cli.preflight_host, "require_root", lambda *a: None)
    monkeypatch.setattr(lab_cli, "cleanup_all",
                        lambda root, dry_run=False: calls.append({"dry_run": dry_run}) or 0)
    assert cli.main([kind, "cleanup", "--all", "--dry-run"]) == 0
    assert cli.main([kind, "cleanup", "--all"]) == 0
    assert calls == [{"dry_run": True}, {"dry_run": False}]
    assert cli.main([kind, "cleanup", "--all", "lab1"]) == 2
