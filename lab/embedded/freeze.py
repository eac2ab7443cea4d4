"""Whole-node freeze of an embedded node: every process of the node stops at once.

A node is a VM whose vCPUs stop (pve-faults.md §9): this is the *clock-running* kind of
§9.3 (a SIGSTOP of the QEMU process, or a cgroup freeze of an emulated node): the host's
clocks run on, so on thaw the node's monotonic and wall clocks have jumped by the time
it was frozen, and whatever timers it runs (softdog, watchdog-mux, corosync's token)
see the jump at once.

Mechanism, best first:
- a per-lab-per-node cgroup v2 (``cgroup.freeze``), at /sys/fs/cgroup (pure v2) or
  /sys/fs/cgroup/unified (hybrid); a frozen v2 task still dies of SIGKILL;
- a cgroup v1 freezer (``freezer.state``); a frozen v1 task dies only once thawed, so a
  kill is sent first and the cgroup thawed after it (``kill_all``);
- neither: SIGSTOP / SIGCONT to every process of the node's pid namespace (``Stopper``).

The node's launcher joins its cgroup before it execs (lab/embedded/node.py), so every
descendant is inside. The cgroup is listed in the lab's state file before it is made, so
close() and the sweep of a killed run thaw and remove it (``remove``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import LabError
from pvemu import softdog

V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
V1_ROOT = Path("/sys/fs/cgroup/freezer")
SETTLE_S = 5.0  # bound on the kernel reaching the frozen / empty state


def cgroup_root() -> Path | None:
    """Where this machine can make a freezable cgroup; None: no freezer at all."""
    for root in V2_ROOTS:
        if (root / "cgroup.procs").exists() and (root / "cgroup.subtree_control").exists():
            return root
    if (V1_ROOT / "freezer.state").exists() or (V1_ROOT / "cgroup.procs").exists():
        return V1_ROOT
    return None


def is_v1(path: Path) -> bool:
    return path.parent == V1_ROOT


def cgroup_path(lab: str, node: str) -> Path | None:
    root = cgroup_root()
    return None if root is None else root / f"pvechaos-{lab}-{node}"


def make(path: Path) -> None:
    try:
        path.mkdir(exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot make the freezer cgroup {path}: {exc}",
                       hint="run as root on a host with cgroup v2 (or the v1 freezer) "
                            "mounted under /sys/fs/cgroup") from None


def procs(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _frozen(path: Path) -> bool:
    if is_v1(path):
        return (path / "freezer.state").read_text().strip() == "FROZEN"
    for line in (path / "cgroup.events").read_text().splitlines():
        if line.startswith("frozen "):
            return line.split()[1] == "1"
    return False


def is_frozen(path: Path) -> bool:
    try:
        return _frozen(path)
    except OSError:
        return False


def is_stopped(path: Path) -> bool:
    """Whether no task of the cgroup can run: frozen as the kernel says, or (v2) frozen
    but for threads that wait on a FUSE answer whose server is frozen (``fuse_blocked``).
    This is what ``set_frozen(path, True)`` returns on; a freeze that catches a read of
    /etc/pve mid-answer, which load makes likely, is the second kind."""
    return is_frozen(path) or (not is_v1(path) and fuse_blocked(path))


def _set(path: Path, frozen: bool) -> None:
    if is_v1(path):
        (path / "freezer.state").write_text("FROZEN" if frozen else "THAWED")
    else:
        (path / "cgroup.freeze").write_text("1" if frozen else "0")


def set_frozen(path: Path, frozen: bool, timeout_s: float = SETTLE_S) -> None:
    """Freeze or thaw the cgroup; returns once the kernel says it is done (bounded).

    A freeze is also done when the only threads the kernel could not freeze sleep in the
    kernel waiting for a FUSE answer (``fuse_blocked``): the node serves its own /etc/pve
    (pmxcfs) and shared storage (nfs_client) over FUSE, and a request in flight when its
    server froze keeps the client in a killable sleep, which the cgroup v2 freezer does
    not enter, so ``frozen`` never turns 1. Such a thread cannot run before its server is
    thawed: the node is stopped, as a VM whose vCPUs stop is (§9)."""
    _set(path, frozen)
    deadline = time.monotonic() + timeout_s
    blocked_since: float | None = None
    while is_frozen(path) != frozen:
        now = time.monotonic()
        if frozen and not is_v1(path) and fuse_blocked(path):
            blocked_since = blocked_since if blocked_since is not None else now
            if now - blocked_since >= FUSE_SETTLE_S:  # the same answer twice, apart
                return
        else:
            blocked_since = None
        if now > deadline:
            raise LabError(f"cgroup {path} did not {'freeze' if frozen else 'thaw'} within "
                           f"{timeout_s:g} s", hint=f"read {path} (a task stuck in the kernel?)")
        time.sleep(0.01)


FUSE_SETTLE_S = 0.2  # how long the FUSE-blocked answer must hold before it counts


def fuse_blocked(path: Path) -> bool:
    """True when the cgroup has threads in uninterruptible sleep (state D) and each of
    them waits for a FUSE answer (``fuse`` in its kernel stack); threads in any other
    state are frozen, or about to be: the freezer wakes every other sleep."""
    try:
        tids = [int(t) for t in (path / "cgroup.threads").read_text().split()]
    except OSError:
        return False
    waiting = 0
    for tid in tids:
        state = _state(tid)
        if state != "D":
            continue
        try:
            stack = Path(f"/proc/{tid}/stack").read_text()
        except OSError:
            return False  # cannot tell: not a FUSE wait we can vouch for
        if "fuse" not in stack:
            return False
        waiting += 1
    return waiting > 0


def kill_all(path: Path) -> None:
    """SIGKILL every task of the cgroup, then thaw it (a v1 frozen task dies only then)."""
    for pid in procs(path):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        _set(path, False)
    except OSError:
        pass


def remove(path: Path, timeout_s: float = SETTLE_S) -> None:
    """Thaw, kill what is left, and remove the cgroup; nothing there is fine."""
    if not path.exists():
        return
    kill_all(path)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise LabError(f"cannot remove cgroup {path}: {exc}",
                               hint=f"tasks left: {procs(path)}") from None
            time.sleep(0.05)


class Stopper:
    """Fallback without a freezer: SIGSTOP / SIGCONT every process of the pid namespace
    of ``init_pid`` (init included). Guess: a stopped process's timers are as overdue on
    SIGCONT as a frozen one's; the difference is that a process of the node may see the
    others stop one by one (microseconds apart)."""

    def __init__(self, init_pid: int) -> None:
        self.init_pid = init_pid

    def members(self) -> list[int]:
        try:
            ns = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        except OSError:
            return []
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def stop(self, timeout_s: float = SETTLE_S) -> None:
        """SIGSTOP every process; returns once each is stopped (bounded); a process forked
        meanwhile is caught by the next round."""
        stop_all(self.members, timeout_s)

    def cont(self) -> None:
        for pid in self.members():
            _signal(pid, signal.SIGCONT)


def stop_all(members: Callable[[], list[int]], timeout_s: float = SETTLE_S) -> None:
    """SIGSTOP every pid ``members()`` lists and return once each is stopped (state T),
    bounded: a signal takes effect only when its target next runs, so a caller that looks
    right after ``kill`` may still see it running."""
    deadline = time.monotonic() + timeout_s
    while True:
        running = [p for p in members() if not _stopped(p)]
        if not running:
            return
        if time.monotonic() > deadline:
            raise LabError(f"processes {running} did not stop within {timeout_s:g} s",
                           hint="ps -o pid,stat,wchan -p " + ",".join(map(str, running)))
        for pid in running:
            _signal(pid, signal.SIGSTOP)
        time.sleep(0.01)


def _stopped(pid: int) -> bool:
    """Stopped, gone, or asleep in the kernel with SIGSTOP pending: such a task stops
    before it runs any of its own code again (a read of /etc/pve waits, killable but not
    stoppable, for a FUSE daemon that is itself stopped)."""
    state = _state(pid)
    if state in ("T", "t", "Z", "X", None):
        return True
    return state == "D" and _sigstop_pending(pid)


def _sigstop_pending(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone
    bit = 1 << (signal.SIGSTOP - 1)
    return any(int(line.split()[1], 16) & bit for line in status.splitlines()
               if line.startswith(("SigPnd:", "ShdPnd:")))


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def softdog_overdue(init_pid: int) -> bool:
    """Whether the softdog of the node whose init is ``init_pid`` is past its deadline
    and would reset it (not with soft_noboot), as the init last published it: read
    through the init's root, so a frozen node can be asked."""
    root = Path(f"/proc/{init_pid}/root")
    try:
        text = (root / softdog.DEADLINE_FILE.lstrip("/")).read_text()
    except OSError:
        return False
    return softdog.overdue(text, time.monotonic()) and \
        not (root / softdog.NOBOOT_FILE.lstrip("/")).exists()


def kill(pid: int) -> None:
    """SIGKILL; a frozen task dies at once (cgroup v2, a stopped one) or on thaw (v1),
    without running any of its own code again."""
    _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
