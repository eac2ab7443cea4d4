"""lab/run_guardian.py: the records a run leaves, run by its guardian when the run is
killed (the last registered first, a failing one not stopping the rest), nothing done
when the run released them, and the leftovers of a run whose guardian died too found by
``pending`` for `pvechaos lab cleanup --all`. Real processes; no lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.waits import NotYet, wait_until
from lab import run_guardian
from lab.processes import process_start_time

REPO = Path(__file__).resolve().parents[2]
OWNER = """
import sys, time
from pathlib import Path
from lab import run_guardian
root, notes, release = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "release"
made = [run_guardian.guard(n, "tests.guard_target:note", root=root, path=notes, name=n)
        for n in ("first", "second")]
run_guardian.guard("broken", "tests.guard_target:fail", root=root, message="no luck")
gone = run_guardian.guard("released", "tests.guard_target:note", root=root, path=notes,
                          name="released")
gone.release()
made[1].update(name="second, updated")
if release:
    for g in run_guardian.records(made[0].path.parent):
        g.unlink()
print("ready", flush=True)
time.sleep(60 if not release else 0)
"""


def owner(tmp_path: Path, *, release: bool) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path / "guard"),
                             str(tmp_path / "notes"), "release" if release else "keep"],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def guardian_of(directory: Path) -> int:
    return int((directory / "guardian.pid").read_text().split()[0])


@pytest.fixture
def no_strays():
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_owner_records_run_last_first(tmp_path, no_strays):
    proc = owner(tmp_path, release=False)
    directory = run_guardian.owner_dir(tmp_path / "guard", proc.pid,
                                       process_start_time(proc.pid))
    no_strays.append(guardian_of(directory))
    records = [json.loads(p.read_text()) for p in run_guardian.records(directory)]
    assert [r["name"] for r in records] == ["broken", "second", "first"]
    assert records[1]["args"]["name"] == "second, updated"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    notes = tmp_path / "notes"
    wait_until("the guardian to run the records", lambda: True if not directory.exists()
               else NotYet("running"), timeout_s=10, interval_s=0.05)
    assert notes.read_text().splitlines() == ["second, updated", "first"]
    log = (tmp_path / "guard" / f"guardian-{proc.pid}.log").read_text()
    assert "owner ended without removing 3: broken, second, first" in log, log
    assert "broken: failed after" in log and "RuntimeError: no luck" in log, log
    assert "done in" in log and "1 failed" in log, log


def test_released_records_leave_the_guardian_nothing_to_do(tmp_path, no_strays):
    proc = owner(tmp_path, release=True)
    directory = run_guardian.owner_dir(tmp_path / "guard", proc.pid,
                                       process_start_time(proc.pid))
    no_strays.append(guardian_of(directory))
    proc.wait(timeout=10)
    wait_until("the guardian to end", lambda: True if not directory.exists()
               else NotYet("running"), timeout_s=10, interval_s=0.05)
    assert not (tmp_path / "notes").exists()
    assert list((tmp_path / "guard").iterdir()) == []  # no directory, no log kept


def test_pending_finds_records_nobody_will_run(tmp_path):
    root = tmp_path / "guard"
    gone = root / "999999999-1"  # no such pid: the owner is gone, and no guardian
    gone.mkdir(parents=True)
    (gone / "00000000000000000001-0000-lab.json").write_text(json.dumps(
        {"name": "lab", "teardown": "tests.guard_target:note",
         "args": {"path": str(tmp_path / "notes"), "name": "lab"}}))
    me = run_guardian.owner_dir(root, os.getpid(), process_start_time(os.getpid()))
    me.mkdir()
    (me / "00000000000000000001-0000-mine.json").write_text("{}")  # its owner runs
    # an owner whose start time was not read: its pid runs, so it may be the owner
    unknown = run_guardian.owner_dir(root, os.getpid(), None)
    unknown.mkdir()
    (unknown / "00000000000000000001-0000-maybe.json").write_text("{}")
    (root / "not-an-owner").mkdir()
    found = run_guardian.pending(root)
    assert list(found) == [gone]
    assert [r["name"] for r in found[gone]] == ["lab"]
    lines: list[str] = []
    assert run_guardian.run_records(gone, say=lines.append) == 0
    assert (tmp_path / "notes").read_text() == "lab\n"
    assert not gone.exists() and me.exists() and unknown.exists()
