"""The guardian of a run's libvirt labs, qemu test beds and BMC servers: what they put
on this machine is removed when the process that made it ends without removing it.

The embedded lab has a guardian of its own (lab/embedded/guardian.py: one per lab, its
state file is its record). Everything else registers here. ``guard(name, teardown,
**args)`` writes a record, ``<root>/<owner pid>-<owner start>/<seq>-<name>.json``, naming
a teardown function (``"module:function"``) and its keyword arguments (JSON), and makes
sure one guardian process watches this process (started in a session of its own, so a
Ctrl-C to the run's process group does not reach it). ``Guarded.release()`` removes the
record once the owner has removed what it names itself.

When the owner ends, by any signal or without releasing, the guardian runs every record
left, the last registered first (a lab on a bed goes before the bed, BMCs before the
domains they switch), each bounded by its own teardown, logs what it did to
``<root>/guardian-<owner pid>.log``, removes the records and exits. A teardown that
fails is logged and the next one still runs. While the owner runs, the guardian only
waits on its pidfd (lab/processes.py). With no records left when the owner ends (the
usual end) it removes its directory and its log and exits.

``pending(root)`` lists the records of owners that are gone (for `pvechaos lab cleanup
--all`), and ``run_records`` runs them, as the guardian would have.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab.processes import owner_runs, process_alive, process_start_time, watch

ROOT = Path(os.environ.get("PVECHAOS_GUARD_ROOT", "/run/pvechaos/guard"))
REPO = Path(__file__).resolve().parents[1]
_SEQ = itertools.count()
_STARTING = threading.Lock()


@dataclass
class Guarded:
    """One registration; ``release()`` once its owner has removed what it names."""

    path: Path

    def update(self, **args) -> None:
        """The record's arguments, now (what it names has grown)."""
        record = json.loads(self.path.read_text())
        _write(self.path, {**record, "args": {**record["args"], **args}})

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def release(guarded: Guarded | None) -> None:
    """``guarded.release()`` when there is one; None, for ``self._guarded = release(...)``."""
    if guarded is not None:
        guarded.release()


def _write(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def owner_dir(root: Path, pid: int, start: int | None) -> Path:
    return root / f"{pid}-{start}"


def guard(name: str, teardown: str, /, *, root: Path | None = None, **args) -> Guarded:
    """Register ``teardown`` (``"module:function"``, called with ``args``) to run if this
    process ends before ``release()``; starts this process's guardian if none runs."""
    root = ROOT if root is None else root
    pid = os.getpid()
    directory = owner_dir(root, pid, process_start_time(pid))
    with _STARTING:  # two threads registering at once start one guardian, not two
        directory.mkdir(parents=True, exist_ok=True)
        _ensure_guardian(directory, root, pid)
    seq = f"{time.time_ns():020d}-{next(_SEQ):04d}"
    path = directory / f"{seq}-{name}.json"
    _write(path, {"name": name, "teardown": teardown, "args": args})
    return Guarded(path)


def _ensure_guardian(directory: Path, root: Path, pid: int) -> None:
    marker = directory / "guardian.pid"
    try:
        gpid, gstart = map(int, marker.read_text().split())
    except (OSError, ValueError):
        gpid, gstart = 0, None
    if gpid and owner_runs(gpid, gstart):
        return
    log = root / f"guardian-{pid}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.run_guardian", "--dir", str(directory)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    marker.write_text(f"{proc.pid} {process_start_time(proc.pid)}\n")


def records(directory: Path) -> list[Path]:
    """The records left, the last registered first."""
    return sorted(directory.glob("*.json"), reverse=True)


def pending(root: Path | None = None) -> dict[Path, list[dict]]:
    """Records of owners that are gone and whose guardian is gone too: what nobody will
    remove (owner directory -> its records, each with its ``path``). An owner directory
    without a start time counts as running while its pid does: never removed unless
    known gone."""
    root = ROOT if root is None else root
    found: dict[Path, list[dict]] = {}
    for directory in sorted(root.glob("*-*")) if root.is_dir() else []:
        pid_text, _, start_text = directory.name.partition("-")
        if not directory.is_dir() or not pid_text.isdigit():
            continue
        if start_text.isdigit():
            if owner_runs(int(pid_text), int(start_text)):
                continue
        elif process_alive(int(pid_text), None):
            continue  # no start time recorded: a live pid may be the owner, so not gone
        try:
            gpid, gstart = map(int, (directory / "guardian.pid").read_text().split())
        except (OSError, ValueError):
            gpid, gstart = 0, None  # no guardian recorded (the owner died starting it)
        if gpid and owner_runs(gpid, gstart):
            continue  # its guardian is at work
        found[directory] = [{**json.loads(p.read_text()), "path": p}
                            for p in records(directory)]
    return found


def run_records(directory: Path, say=print) -> int:
    """Run every record of ``directory``, the last registered first; returns how many
    failed. Each record is removed once run (a failed one too: logged, and its objects
    are for `pvechaos lab cleanup` by name, or by hand)."""
    failed = 0
    for path in records(directory):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            say(f"unreadable record {path.name}: {exc}")
            path.unlink(missing_ok=True)
            failed += 1
            continue
        began = time.monotonic()
        say(f"{record['name']}: {record['teardown']} ...")
        try:
            module, _, function = record["teardown"].partition(":")
            getattr(importlib.import_module(module), function)(**record["args"])
        except Exception as exc:  # noqa: BLE001 - logged; the next record still runs
            failed += 1
            say(f"{record['name']}: failed after {time.monotonic() - began:.2f} s: "
                f"{type(exc).__name__}: {exc}")
        else:
            say(f"{record['name']}: removed in {time.monotonic() - began:.2f} s")
        path.unlink(missing_ok=True)
    _forget(directory)
    return failed


def _forget(directory: Path) -> None:
    """The owner's directory gone, once its records are (a record left keeps it)."""
    (directory / "guardian.pid").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        directory.rmdir()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.run_guardian")
    parser.add_argument("--dir", required=True, type=Path)
    directory = parser.parse_args(argv).dir
    pid, _, start = directory.name.partition("-")

    def say(message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} run-guardian[{os.getpid()}] owner {pid}: {message}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for sig in (signal.SIGINT, signal.SIGHUP):  # not a terminal's or a group's to end
        signal.signal(sig, signal.SIG_IGN)
    say("watching")
    watch(int(pid), int(start) if start != "None" else None)
    left = records(directory)
    if not left:  # the usual end: nothing done, so no log kept either
        _forget(directory)
        (directory.parent / f"guardian-{pid}.log").unlink(missing_ok=True)
        return 0
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the teardown runs to its end
    began = time.monotonic()
    say(f"owner ended without removing {len(left)}: "
        f"{', '.join(p.stem.split('-', 2)[-1] for p in left)}")
    failed = run_records(directory, say)
    say(f"done in {time.monotonic() - began:.2f} s" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
