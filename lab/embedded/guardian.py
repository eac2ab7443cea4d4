"""The guardian of an embedded lab: removes the lab when the process that owns it ends
without closing it.

Why: a run killed with SIGKILL (or ended by a signal it does not handle, or exiting
without ``close()``) leaves the lab's bridge, namespaces and every surviving node's
processes running, reparented to PID 1. The guardian is started by the lab right after
it claims its state (``EmbeddedLab._build``), in a session of its own (a Ctrl-C to the
runner's process group does not reach it), and watches the owner through a pidfd
(``os.pidfd_open`` + poll; without pidfds it polls /proc/<pid>/stat, start time
included, so a reused pid is not the owner). When the owner is gone it removes the lab
with ``lab.embedded.remove_leftovers`` (the one teardown of a lab nobody closed: the next
start's sweep and ``pvechaos lab cleanup`` run the same), writes what it found and did to
``EmbeddedConfig.guardian_log`` (outside the lab directory, which the teardown removes),
and exits.

It is bounded: it exits after the teardown, when the lab's state file is gone (closed or
cleaned up by someone else), on SIGTERM (``close()`` stops it first, so it never races the
close), or when the lab was handed to another owner (``pvechaos lab up`` detaches it;
``EmbeddedLab.detach`` also stops it).

Run as ``python -m lab.embedded.guardian --lab-dir DIR --nodes N --owner PID
--owner-start TICKS`` (the lab directory in its command line also marks it as the lab's
process for whoever looks for leftovers).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lab import processes
from lab.embedded.config import EmbeddedConfig
from lab.embedded.state import LabState

POLL_S = 1.0  # how often the state file is looked at (and /proc, without a pidfd)
STOP_TIMEOUT_S = 5.0


def start(config: EmbeddedConfig, state: LabState, cwd: Path) -> subprocess.Popen:
    """Start the guardian of the lab ``state`` belongs to (owner: this process) and record
    it in the state. It needs no time to get ready: an owner gone before it watches is
    seen at once (pidfd_open fails, or the start time differs)."""
    owner = state.data["owner"]
    config.guardian_log.parent.mkdir(parents=True, exist_ok=True)
    with open(config.guardian_log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.embedded.guardian", "--lab-dir", str(config.lab_dir),
             "--nodes", str(config.node_count), "--owner", str(owner["pid"]),
             "--owner-start", str(owner["start"])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(cwd)}, start_new_session=True)
    state.set_guardian(proc.pid)
    return proc


def stop(proc: subprocess.Popen | None, state: LabState) -> None:
    """End the guardian before the lab is closed or handed over (bounded)."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    if state.guardian is not None and state.path.exists():
        state.set_guardian(None)


def watch(pid: int, start: int | None, state_path: Path) -> str:
    """Block until the owner is gone ("owner gone") or the lab's state file is ("state
    gone")."""
    why = processes.watch(pid, start, still_wanted=state_path.exists, poll_s=POLL_S)
    return "state gone" if why == "not wanted" else why


def _say(config: EmbeddedConfig, message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} guardian[{os.getpid()}] lab '{config.name}': {message}", flush=True)


def _listed(state: LabState) -> str:
    data = state.data
    running = ", ".join(f"{key} {entry['pid']}" for key, entry in
                        data.get("processes", {}).items()) or "none"
    return (f"processes {running}; links {', '.join(data.get('links', [])) or 'none'}; "
            f"namespaces {', '.join(data.get('netns', [])) or 'none'}; "
            f"cgroups {', '.join(data.get('cgroups', [])) or 'none'}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.embedded.guardian")
    parser.add_argument("--lab-dir", required=True, type=Path)
    parser.add_argument("--nodes", required=True, type=int)
    parser.add_argument("--owner", required=True, type=int)
    parser.add_argument("--owner-start", required=True, type=int)
    args = parser.parse_args(argv)
    config = EmbeddedConfig(name=args.lab_dir.name, state_root=args.lab_dir.parent,
                            node_count=args.nodes)

    def stopped(_signum: int, _frame: object) -> None:
        _say(config, "stopped (the lab is being closed or handed over): nothing removed")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stopped)
    for sig in (signal.SIGINT, signal.SIGHUP):  # not a terminal's or a group's to end
        signal.signal(sig, signal.SIG_IGN)
    _say(config, f"watching owner pid {args.owner} (start {args.owner_start})")
    why = watch(args.owner, args.owner_start, config.lab_dir / "state.json")
    if why == "state gone":
        _say(config, "its state is gone (closed or cleaned up): nothing to do")
        return 0
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the teardown runs to its end
    began = time.monotonic()
    state = LabState(config.lab_dir)
    if state.load():
        owner = state.data.get("owner") or {}
        if owner.get("pid") != args.owner and processes.owner_runs(owner.get("pid") or 0,
                                                         owner.get("start")):
            _say(config, f"owner pid {args.owner} ended; the lab belongs to pid "
                         f"{owner['pid']} now: left to it")
            return 0
        _say(config, f"owner pid {args.owner} ended without closing the lab: removing "
                     f"it; its state lists {_listed(state)}")
    else:
        _say(config, f"owner pid {args.owner} ended; no state file: removing the kernel "
                     "objects named for the lab")
    from lab.embedded import remove_leftovers  # here: lab.embedded imports this module

    try:
        remove_leftovers(config)  # refused if a live owner took it meanwhile
    except Exception as exc:  # noqa: BLE001 - recorded, and the next run's sweep retries
        _say(config, f"teardown incomplete after {time.monotonic() - began:.2f} s: {exc}; "
                     f"run `pvechaos lab cleanup {config.name}`")
        return 1
    _say(config, f"removed in {time.monotonic() - began:.2f} s: its processes, cgroups, "
                 "links, namespaces and directory")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

