"""The units of an embedded node, as its emulated systemd (lab/embedded/pid1.py) runs them.

Each ``Service`` is one PVE unit with the restart policy it ships with (pve-faults.md §2.1):
pve-cluster has ``Restart=on-failure`` (CL ``debian/pve-cluster.service``) with systemd's
default ``RestartSec=100ms`` and start limit of 5 starts in 10 s (systemd.service(5),
systemd.unit(5) ``StartLimitIntervalSec``/``StartLimitBurst``); corosync, pve-ha-crm,
pve-ha-lrm and watchdog-mux do not restart. ``on-failure`` restarts after a non-zero exit
or a death by any signal but SIGHUP, SIGINT, SIGTERM and SIGPIPE, never after
``systemctl stop``. No unit stops or restarts another (PVE uses ``Wants=`` only, §2.1).

pid1 tells a unit when it reaped the unit's main process (``reaped``), and asks it whether
and when to start again (``restart_due``). Time here is the monotonic clock (systemd's).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import signal
import subprocess
import time
from pathlib import Path

# signals whose death is a clean exit for Restart=on-failure (systemd.service(5))
CLEAN_SIGNALS = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE})
START_LIMIT_BURST = 5  # systemd's DefaultStartLimitBurst


def stale_mount(path: str) -> bool:
    """A FUSE mount whose daemon died: every lookup fails with ENOTCONN."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


class Service:
    def __init__(self, name: str, argv: list[str], log: str, condition: str | None = None,
                 ready_mount: str | None = None, stop_timeout_s: float = 10.0,
                 restart_on_failure: bool = False, restart_s: float = 0.1,
                 start_limit_s: float = 10.0) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.condition, self.ready_mount = condition, ready_mount
        self.stop_timeout_s = stop_timeout_s
        self.restart_on_failure = restart_on_failure
        self.restart_s, self.start_limit_s = restart_s, start_limit_s
        self.proc: subprocess.Popen | None = None
        self.result = "success"  # systemd's Result=: success, exit-code, signal, start-limit-hit
        self.restarts = 0  # systemd's restart counter
        self._restart_at: float | None = None
        self._starts: collections.deque[float] = collections.deque(maxlen=START_LIMIT_BURST)

    # -- state as systemctl shows it ----------------------------------------------------
    def active(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def state(self) -> str:
        """`systemctl is-active`: active, activating (auto-restart pending), failed, inactive."""
        if self.active():
            return "active"
        if self._restart_at is not None:
            return "activating"
        return "inactive" if self.result == "success" else "failed"

    def main_pid(self) -> int | None:
        return self.proc.pid if self.active() and self.proc is not None else None

    def note(self, text: str) -> None:
        """A line of systemd's about this unit, in the unit's log (as journalctl -u shows)."""
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            log.write(f"{time.strftime('%b %d %H:%M:%S')} systemd[1]: {self.name}.service: "
                      f"{text}\n")

    # -- start, stop, signals -----------------------------------------------------------
    def start(self) -> str:
        if self.active():
            return "ok"
        self._restart_at = None
        if self.condition and not Path(self.condition).exists():
            return f"skipped: {self.condition} does not exist"
        now = time.monotonic()
        if len(self._starts) == START_LIMIT_BURST and now - self._starts[0] < self.start_limit_s:
            self.result = "start-limit-hit"
            self.note("Start request repeated too quickly.")
            self.note("Failed with result 'start-limit-hit'.")
            return f"error: start of {self.name}.service was attempted too often"
        self._starts.append(now)
        if self.ready_mount and stale_mount(self.ready_mount):
            # Stands in for pmxcfs's own umount2(MNT_FORCE) of a stale /etc/pve at start
            # (CL src/pmxcfs/pmxcfs.c; pve-faults.md §2.2) while pvemu/pmxcfs.py checks
            # only os.path.ismount, which is False on a dead FUSE mount (ENOTCONN).
            subprocess.run(["umount", "-l", self.ready_mount], check=False,
                           capture_output=True)
        self.result = "success"
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- {time.strftime('%F %T')} starting {self.name}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env={**os.environ})
        if self.ready_mount:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.active():
                if os.path.ismount(self.ready_mount):
                    break
                time.sleep(0.05)
            if not os.path.ismount(self.ready_mount):
                return f"error: {self.name} did not mount {self.ready_mount} (see {self.log})"
        return "ok"

    def stop(self) -> str:
        """`systemctl stop`: SIGTERM, SIGKILL after the stop timeout; never restarted."""
        self._restart_at = None
        if not self.active():
            self.result = "success"
            return "ok"
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)  # a paused main process must see TERM
        self.proc.terminate()
        try:
            self.proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.result = "success"
        if self.ready_mount and (os.path.ismount(self.ready_mount)
                                 or stale_mount(self.ready_mount)):
            subprocess.run(["umount", "-l", self.ready_mount], check=False)
        return "ok"

    def kill(self, signo: int) -> str:
        """`systemctl kill --kill-whom=main --signal=SIG`: the signal to the main process."""
        if not self.active():
            return f"error: No main process to kill for {self.name}.service"
        assert self.proc is not None
        os.kill(self.proc.pid, signo)
        return "ok"

    def forget(self) -> None:
        """A reset or reboot: the unit starts from scratch (its processes are gone)."""
        self.proc, self.result, self.restarts, self._restart_at = None, "success", 0, None
        self._starts.clear()

    # -- what pid1 tells the unit ---------------------------------------------------------
    def owns(self, pid: int) -> bool:
        return self.proc is not None and self.proc.pid == pid and self.proc.returncode is None

    def reaped(self, status: int) -> None:
        """pid1 reaped the main process (wait status): record it, schedule a restart."""
        assert self.proc is not None
        code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = code  # Popen must not wait for a pid pid1 already reaped
        if code < 0:
            signo = signal.Signals(-code)
            self.note(f"Main process exited, code=killed, status={-code}/"
                      f"{signo.name.removeprefix('SIG')}")
            clean = signo in CLEAN_SIGNALS
            self.result = "success" if clean else "signal"
        else:
            self.note(f"Main process exited, code=exited, status={code}/"
                      f"{'SUCCESS' if code == 0 else 'FAILURE'}")
            clean = code == 0
            self.result = "success" if clean else "exit-code"
        if clean:
            self.note("Deactivated successfully.")
            return
        self.note(f"Failed with result '{self.result}'.")
        if self.restart_on_failure:
            self._restart_at = time.monotonic() + self.restart_s

    def restart_due(self, now: float) -> float | None:
        """Seconds until the scheduled restart (<= 0: due), None when none is pending."""
        return None if self._restart_at is None else self._restart_at - now

    def auto_restart(self) -> str:
        self.restarts += 1
        self.note(f"Scheduled restart job, restart counter is at {self.restarts}.")
        return self.start()

    def status(self) -> str:
        """`systemctl status`, the lines a fault test reads."""
        state = self.state()
        detail = {"active": "running", "activating": "auto-restart", "inactive": "dead",
                  "failed": f"Result: {self.result}"}[state]
        lines = [f"* {self.name}.service", f"     Active: {state} ({detail})"]
        pid = self.main_pid()
        if pid is not None:
            lines.append(f"   Main PID: {pid}")
        return "\n".join(lines)

