"""Power for one embedded node: boot its init in fresh namespaces, or kill them all; and
freeze / thaw it (lab/embedded/freeze.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.errors import LabError
from lab.embedded import freeze
from lab.embedded.config import EmbeddedConfig
from lab.embedded.provision import REPO_ROOT, node_dir
from lab.embedded.state import LabState
from lab.processes import process_alive, process_start_time


class NodePower:
    def __init__(self, config: EmbeddedConfig, name: str, state: LabState) -> None:
        self.config, self.name, self.state = config, name, state
        self._launcher: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.cgroup = freeze.cgroup_path(config.name, name)  # None: SIGSTOP fallback
        self.frozen = False

    @property
    def powered(self) -> bool:
        return self.init_pid is not None and process_alive(
            self.init_pid, self.state.data["processes"].get(self.name, {}).get("start"))

    def boot(self) -> None:
        if self.powered:
            return
        root = node_dir(self.config, self.name)
        argv = ["nsenter", f"--net=/run/netns/{self.config.netns(self.name)}", "--",
                # no CAP_SYS_TIME in the node: the host's clock is every node's, a node's
                # clock is pvemu/wallclock.py (its `date -s` steps only that)
                "setpriv", "--bounding-set", "-sys_time",
                "unshare", "--pid", "--fork", "--mount", "--uts", "--mount-proc",
                "--kill-child", sys.executable, "-m", "lab.embedded.pid1",
                str(root / "boot.json")]
        if self.cgroup is not None:
            # the launcher joins the node's cgroup before it execs: every process of the
            # node is born inside (freeze / thaw); listed before it is made (sweep)
            self.state.add("cgroups", str(self.cgroup))
            freeze.make(self.cgroup)
            argv = ["sh", "-c", 'echo $$ > "$0" && exec "$@"',
                    str(self.cgroup / "cgroup.procs"), *argv]
        self.frozen = False
        log = open(root / "log" / "init.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._launcher = subprocess.Popen(
                argv,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                start_new_session=True)
        finally:
            log.close()
        self.state.set_process(f"{self.name}-launcher", self._launcher.pid)
        self.init_pid = self._find_init(self._launcher.pid)
        self.state.set_process(self.name, self.init_pid)

    def _find_init(self, launcher: int, timeout_s: float = 5.0) -> int:
        children = Path(f"/proc/{launcher}/task/{launcher}/children")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                pids = children.read_text().split()
            except OSError:
                pids = []
            if pids:
                return int(pids[0])
            if self._launcher is not None and self._launcher.poll() is not None:
                break
            time.sleep(0.01)
        log = node_dir(self.config, self.name) / "log" / "init.log"
        raise LabError(f"{self.name} did not boot: its init never started",
                       hint=f"read {log}")

    def cut(self, timeout_s: float = 10.0) -> None:
        """SIGKILL the node's init: the kernel kills every process in its pid namespace."""
        if self.init_pid is not None and self.powered:
            os.kill(self.init_pid, signal.SIGKILL)
        if self.cgroup is not None:
            freeze.kill_all(self.cgroup)  # a frozen node dies too (v1: once thawed)
        self.frozen = False
        if self._launcher is not None:
            try:
                self._launcher.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._launcher.kill()
                self._launcher.wait(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while self.init_pid is not None and process_start_time(self.init_pid) is not None:
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: init {self.init_pid} survived SIGKILL")
            time.sleep(0.01)
        self.init_pid = self._launcher = None
        self.state.set_process(self.name, None)
        self.state.set_process(f"{self.name}-launcher", None)

    def request_poweroff(self) -> subprocess.Popen | None:
        """Press the node's power button: its `poweroff` (run inside the node) asks the
        init to stop every service in order (the HA daemons release their locks), then
        the init ends. Returns the command's process (None: the node is off);
        ``wait_off`` then waits for the end, bounded."""
        if not self.powered:
            return None
        return subprocess.Popen(
            [*self._inside(), "/usr/local/sbin/poweroff"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def _inside(self) -> list[str]:
        """The prefix that runs a command in the running node, as its own shell would."""
        return ["nsenter", f"--target={self.init_pid}", "--mount", "--uts", "--net", "--pid",
                "--"]

    def run_inside(self, argv: list[str], *, stdin: str = "",
                   timeout_s: float = 30.0) -> subprocess.CompletedProcess:
        """Run a command in the powered node (its mounts: its own /etc), bounded."""
        if not self.powered:
            raise LabError(f"{self.name} is powered off: nothing runs in it",
                           hint="power it on first (power_on)")
        try:
            return subprocess.run([*self._inside(), *argv], input=stdin, text=True,
                                  capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise LabError(f"{self.name}: `{' '.join(argv)}` gave no answer within "
                           f"{timeout_s:g} s", hint=f"read the node's logs in "
                           f"{node_dir(self.config, self.name) / 'log'}") from None

    def wait_off(self, deadline: float) -> bool:
        """Wait (until the monotonic ``deadline``) for a requested poweroff to end the
        init; then power is cut either way, which also clears the node's records. True
        when it went off by itself."""
        while self.powered and time.monotonic() < deadline:
            time.sleep(0.05)
        clean = not self.powered
        self.cut()
        return clean

    # -- freeze / thaw ---------------------------------------------------------------
    def freeze(self) -> None:
        """Stop every process of the node at once (its clocks run on: §9.3)."""
        if not self.powered:
            raise LabError(f"cannot freeze {self.name}: it is powered off",
                           hint="power it on first (power_on)")
        if self.cgroup is not None:
            freeze.set_frozen(self.cgroup, True)
        else:
            freeze.Stopper(self.init_pid).stop()  # type: ignore[arg-type]
        self.frozen = True

    def thaw(self) -> None:
        """Let the frozen node run on; a node that is not frozen is left as it is."""
        if not self.powered:
            raise LabError(f"cannot thaw {self.name}: it is powered off",
                           hint="power it on (power_on); a power cut ends a freeze")
        if self.frozen and freeze.softdog_overdue(self.init_pid):  # type: ignore[arg-type]
            # The kernel's timer ran on while userspace was frozen and fires from the
            # first timer interrupt after the thaw, before any process of the node runs
            # (pve-faults.md §9.3, a Guess there). The init stands in for that kernel:
            # everything else dies first, and the init, thawed, finds its timer expired.
            self._kill_userspace()
        if self.cgroup is not None:
            freeze.set_frozen(self.cgroup, False)
        elif self.frozen:
            freeze.Stopper(self.init_pid).cont()  # type: ignore[arg-type]
        self.frozen = False

    def _kill_userspace(self) -> None:
        members = freeze.procs(self.cgroup) if self.cgroup is not None else \
            freeze.Stopper(self.init_pid).members()  # type: ignore[arg-type]
        # the launcher (unshare --kill-child, in the cgroup too) is the node's "hardware":
        # its death would take the init with it
        keep = {self.init_pid, self._launcher.pid if self._launcher is not None else None}
        for pid in members:
            if pid not in keep:
                freeze.kill(pid)
