"""libvirtd and virtlogd for the qemu test bed: a system instance, started here when none
runs and stopped again by ``stop``; one that already runs (a runner's own) is used and
left running.

virtlogd writes the domains' serial logs (`<serial><log file=...>`); without systemd
nothing starts it on demand, so it is started with libvirtd. Both run in the foreground
under lab/qemu_bed/reaper.py, so ``stop`` ends exactly the processes it started, and
whatever qemu they left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

from harness.errors import LabError, WaitTimeout
from harness.waits import NotYet, wait_until

SOCKET = Path("/run/libvirt/libvirt-sock")
RUN_DIR = Path("/run/pvechaos-qbed")
INSTALL_HINT = ("apt-get install libvirt-daemon-system qemu-system-x86 (bash .ci/setup "
                "installs the test bed's packages)")


def answers(path: Path = SOCKET) -> bool:
    """Whether a libvirtd listens on its system socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


KVM = "/dev/kvm"


def kvm_device_as_debian() -> tuple[int, int] | None:
    """/dev/kvm as Debian's udev rule leaves it (group kvm, mode 0660); returns the mode
    and group to put back, or None when nothing changed.

    Where no udev ran, /dev/kvm can be root's alone (0600). libvirt then probes qemu's
    capabilities with KVM usable (as root) but judges KVM unusable for its qemu user
    (libvirt-qemu, in group kvm), finds its capability cache outdated on every call
    ("KVM was enabled when probing ..., but it is not available now") and probes qemu
    again: 7-27 s per define, measured here. The test bed runs TCG either way."""
    import grp

    try:
        st = os.stat(KVM)
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except (OSError, KeyError):
        return None
    mode = stat.S_IMODE(st.st_mode)
    if st.st_gid == kvm_gid and mode & 0o060 == 0o060:
        return None
    print(f"pvechaos qemu bed: {KVM} set to group kvm, mode 0660 as udev would (it was "
          f"{mode:04o}, gid {st.st_gid}; put back when the bed stops)")
    os.chown(KVM, -1, kvm_gid)
    os.chmod(KVM, 0o660)
    return mode, st.st_gid


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie's parent has not reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _flock(fd: int, mode: int, what: str, timeout_s: float) -> None:
    def taken() -> bool | NotYet:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return NotYet(f"{what} is held by another test bed")
        return True

    wait_until(what, taken, timeout_s=timeout_s, interval_s=0.2)


class Daemons:
    """The daemons, shared by every test bed on this machine: each bed holds a shared
    lock on ``users.lock`` while it uses them; the last one to leave stops them, if a
    bed started them (``reaper.pid``), and puts /dev/kvm back."""

    def __init__(self, run_dir: Path = RUN_DIR) -> None:
        self.run_dir = run_dir
        self._users: int | None = None  # our shared lock on users.lock

    @property
    def reaper_pidfile(self) -> Path:
        return self.run_dir / "reaper.pid"

    def join(self) -> None:
        """Count this process among the daemons' users (the shared lock), starting
        nothing: a guardian tearing down a killed run's bed (``stop`` then stops them
        when it is the last user and a bed started them)."""
        if os.geteuid() != 0:
            raise LabError("the qemu test bed starts a system libvirtd and needs root",
                           hint="run the test bed as root (sudo)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self._users is None:
            fd = os.open(self.run_dir / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _flock(fd, fcntl.LOCK_SH, "the test beds' users lock", 120)
            except BaseException:
                os.close(fd)
                raise
            self._users = fd

    def start(self, timeout_s: float = 60.0) -> None:
        self.join()
        with self._starting():
            if answers():
                return  # a runner's own libvirtd, or one another bed started
            try:
                self._start_reaper(timeout_s)
            except BaseException:
                self._stop_reaper()
                raise

    def _start_reaper(self, timeout_s: float) -> None:
        for daemon in ("virtlogd", "libvirtd"):
            if shutil.which(daemon) is None:
                raise LabError(f"{daemon} is not installed", hint=INSTALL_HINT)
        restore = kvm_device_as_debian()
        if restore is not None:
            (self.run_dir / "kvm.restore").write_text(f"{restore[0]} {restore[1]}\n")
        self.reaper_pidfile.unlink(missing_ok=True)
        with (self.run_dir / "daemons.log").open("ab") as log:
            # lab/qemu_bed/reaper.py: libvirtd and virtlogd under a subreaper (why there)
            reaper = subprocess.Popen(
                [sys.executable, "-m", "lab.qemu_bed.reaper", str(self.reaper_pidfile)],
                cwd=Path(__file__).resolve().parents[2], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)

        def listening() -> bool | NotYet:
            if reaper.poll() is not None:
                raise LabError(f"libvirtd did not start (see {self.run_dir}/daemons.log)",
                               hint=INSTALL_HINT)
            return True if answers() else NotYet(f"nothing listens on {SOCKET} yet")

        wait_until("libvirtd to listen", listening, timeout_s=timeout_s, interval_s=0.2)

    @contextlib.contextmanager
    def _starting(self):
        fd = os.open(self.run_dir / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _flock(fd, fcntl.LOCK_EX, "the test beds' start lock", 120)
            yield
        finally:
            os.close(fd)

    def stop(self, timeout_s: float = 40.0) -> None:
        """This bed is done with the daemons; the last bed out stops them (when a bed
        started them) and everything left under them, bounded: SIGTERM to the reaper
        (which ends both daemons, then any qemu), SIGKILL after ``timeout_s``."""
        fd, self._users = self._users, None
        if fd is None:
            return
        try:
            with self._starting():
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # another bed still uses them
                self._stop_reaper(timeout_s)
        finally:
            os.close(fd)

    def _stop_reaper(self, timeout_s: float = 40.0) -> None:
        try:
            pid = int(self.reaper_pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = None
        try:
            if pid is not None and _running(pid):
                os.kill(pid, signal.SIGTERM)
                try:
                    wait_until("the test bed's libvirtd to stop",
                               lambda: True if not _running(pid) else NotYet("running"),
                               timeout_s=timeout_s, interval_s=0.2)
                except WaitTimeout:
                    os.killpg(pid, signal.SIGKILL)
        finally:
            self.reaper_pidfile.unlink(missing_ok=True)
            restore = self.run_dir / "kvm.restore"
            if restore.is_file():
                mode, gid = map(int, restore.read_text().split())
                os.chown(KVM, -1, gid)
                os.chmod(KVM, mode)
                restore.unlink()
