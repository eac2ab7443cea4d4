"""The running copies of one node's guests: process records, the per-guest lock, and
starting and ending the guest process (pvemu/guest_process.py).

Runtime state is per node, in /run/pvechaos/guests/<vmid>.json (the node's /run is its
own tmpfs): pid, process start time, sid, address. An entry whose process is gone (or a
zombie) reads as stopped. The per-guest lock is a flock in the same directory, as
PVE::AbstractConfig::lock_config's flock on a per-guest lock file.
Checking a record against the process's start time is what PVE::ProcFSTools's
check_process_running does with a pid file.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pvemu.etc_pve import atomic_write
from pvemu.guest_config import GuestError

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path("/run/pvechaos/guests")
LOG_DIR = Path("/var/log/pvechaos-guests")
START_TIMEOUT_S = 10.0
LOCK_TIMEOUT_S = 10.0


def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks), None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass
class RunState:
    sid: str
    pid: int
    start: int
    address: str
    port: int
    started_at: float

    def alive(self) -> bool:
        return process_start(self.pid) == self.start


class GuestLock:
    """flock on a per-guest file in the node's /run (PVE's lock_config), bounded."""

    def __init__(self, path: Path, what: str, timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path, self.what, self.timeout_s = path, what, timeout_s
        self.fd: int | None = None

    def __enter__(self) -> GuestLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                os.close(self.fd)
                raise GuestError(f"can't lock file '{self.path}' - got timeout "
                                 f"({self.what})")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


class GuestRuntime:
    """The process records in ``run_dir`` (one node's /run/pvechaos/guests)."""

    def __init__(self, run_dir: Path = RUN_DIR) -> None:
        self.run_dir = run_dir

    def state_path(self, vmid: int) -> Path:
        return self.run_dir / f"{vmid}.json"

    def run_state(self, vmid: int) -> RunState | None:
        """The running copy on this node, None when stopped (stale entries are dropped)."""
        path = self.state_path(vmid)
        try:
            state = RunState(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if state.alive():
            return state
        path.unlink(missing_ok=True)
        return None

    def lock(self, vmid: int, what: str) -> GuestLock:
        return GuestLock(self.run_dir / f"{vmid}.lock", what)

    def record(self, vmid: int, state: RunState) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_path(vmid)
        atomic_write(path, json.dumps(state.__dict__) + "\n")

    def forget(self, vmid: int) -> None:
        self.state_path(vmid).unlink(missing_ok=True)

    def spawn(self, sid: str, vmid: int, cidr: str, mac: str, port: int, disk: Path, *,
              node: str, lab: Path) -> RunState:
        """Start the guest process (``lab``: the lab directory, as the node mounts it)
        and record it; bounded by START_TIMEOUT_S."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pvemu.guest_process", "--sid", sid,
               "--vmid", str(vmid), "--node", node, "--address", cidr, "--hwaddr", mac,
               "--port", str(port), "--disk", str(disk), "--lab", str(lab)]
        started_at = time.time()
        with open(LOG_DIR / f"{vmid}.log", "ab") as log:
            log.write(f"--- {time.strftime('%F %T')} starting {sid} on {node}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, cwd="/",
                                    env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=START_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=5)
                raise GuestError(f"{sid}: start timed out after {START_TIMEOUT_S:g} s "
                                 f"(see {LOG_DIR / f'{vmid}.log'})") from None
        if proc.returncode != 0 or not out.strip().isdigit():
            detail = _tail(LOG_DIR / f"{vmid}.log")
            label, _, _ = sid.partition(":")
            message = (f"startup for container '{vmid}' failed" if label == "ct" else
                       "start failed: QEMU exited with code 1")
            raise GuestError(f"{detail}\n{message}" if detail else message)
        pid = int(out.strip())
        start = process_start(pid)
        if start is None:
            raise GuestError(f"{sid}: the guest process {pid} exited right after starting "
                             f"(see {LOG_DIR / f'{vmid}.log'})")
        state = RunState(sid, pid, start, cidr, port, started_at)
        self.record(vmid, state)
        return state


def terminate(state: RunState, timeout_s: float) -> None:
    """SIGTERM, SIGKILL after timeout_s (0: SIGKILL at once); bounded."""
    steps = [(signal.SIGTERM, timeout_s)] if timeout_s > 0 else []
    steps.append((signal.SIGKILL, 5.0))
    for sig, wait_s in steps:
        try:
            os.kill(state.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not state.alive():
                return
            time.sleep(0.05)
    if state.alive():
        raise GuestError(f"{state.sid}: process {state.pid} survived SIGKILL")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])
