"""virtlogd and libvirtd as children of a child subreaper (``python -m lab.qemu_bed.reaper
PIDFILE``).

libvirtd double-forks qemu (its capability probes and the guests), so their parent becomes
the nearest subreaper or PID 1. Where PID 1 reaps nothing (a container's or a micro-VM's
init, as on this project's CI machines), a killed probe stays a zombie, libvirtd's
"kill painfully" waits its full 15 s for it to go, and every define stalls. This process
marks itself a subreaper (prctl PR_SET_CHILD_SUBREAPER), runs both daemons in the
foreground and reaps whatever ends under it. SIGTERM ends the daemons, then any qemu
still running under it, each bounded, and it exits; so does a daemon dying on its own.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
DAEMONS = (["virtlogd"], ["libvirtd"])
GRACE_S = 10.0


def _subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _children() -> list[int]:
    me = os.getpid()
    found = []
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except OSError:
            continue
    return found


def _reap() -> list[int]:
    ended = []
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append(pid)


def _signal_children(sig: int) -> None:
    for pid in _children():
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap_until_none(timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _children() and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)


def _end_all(sig: int) -> None:
    """Signal every child, then wait (bounded) for all to go, then SIGKILL the rest."""
    _signal_children(sig)
    _reap_until_none(GRACE_S)
    _signal_children(signal.SIGKILL)
    _reap_until_none(GRACE_S)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lab.qemu_bed.reaper PIDFILE", file=sys.stderr)
        return 2
    _subreaper()
    stop = False

    def on_term(signum, frame):  # noqa: ARG001
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    daemons = [subprocess.Popen(argv_, stdin=subprocess.DEVNULL) for argv_ in DAEMONS]
    with open(argv[0], "w") as f:
        f.write(f"{os.getpid()}\n")
    while not stop and all(d.poll() is None for d in daemons):
        _reap()
        time.sleep(0.2)
    # the daemons first (libvirtd leaves its guests running), then whatever is left
    for d in reversed(daemons):
        if d.poll() is None:
            d.terminate()
    for d in reversed(daemons):
        try:
            d.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            d.kill()
            d.wait(timeout=GRACE_S)
    _end_all(signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
