"""softdog, the kernel watchdog behind /dev/watchdog, for an embedded node.

On a PVE node the device timer lives in the kernel, so it outlives watchdog-mux: a mux
killed (or stopped with clients) leaves the timer running and the node resets when it is
not fed (pve-faults.md §3.4, §3.7). The embedded node's device therefore lives in its init
(lab/embedded/pid1.py), which serves it on ``DEVICE`` (a unix socket standing for
/dev/watchdog); watchdog-mux (pvemu/ha/muxd.py) opens it through ``DeviceClient``.

What the device does (Linux ``drivers/watchdog/watchdog_dev.c``, ``softdog.c``):
- one opener at a time (a second open is EBUSY); opening starts the timer with softdog's
  ``soft_margin`` (60 s) until ``WDIOC_SETTIMEOUT`` sets another (mux: 10 s);
- every write or ``WDIOC_KEEPALIVE`` restarts the timer; a write clears the permission to
  stop and a ``V`` in it grants it (the magic close);
- a release with the permission stops the timer; without it the timer keeps running, the
  kernel logs ``watchdog%d: watchdog did not stop!`` and pings once (``watchdog_release``);
- expiry: ``emergency_restart()``, no sync (``softdog_fire``). The timer is an hrtimer on
  CLOCK_MONOTONIC, so ``now`` here is always ``time.monotonic()``, never the node's
  (steppable) wall clock.
"""

from __future__ import annotations

import socket
import time

DEVICE = "/run/pvechaos/watchdog"  # stands for /dev/watchdog (served by the node's init)
# `options softdog soft_noboot=1` (pve-faults.md §3.7: a lab switch turning every fence into
# a log line); under /run, so a reset forgets it
NOBOOT_FILE = "/run/pvechaos/softdog_noboot"
# The timer's deadline on the host's monotonic clock, as the init last set it (empty: the
# timer is stopped). The kernel's timer runs while userspace is frozen; the init that
# stands in for it does not, so the lab reads this to fire it before a thawed node's
# processes run again (lab/embedded/node.py, pve-faults.md §9.3).
DEADLINE_FILE = "/run/pvechaos/softdog_deadline"
SOFT_MARGIN = 60.0  # softdog's default soft_margin, PVE seconds (Linux softdog.c)


class Softdog:
    """The device timer. ``now`` is the monotonic clock; durations are real seconds."""

    def __init__(self, soft_margin_s: float) -> None:
        self.soft_margin_s = soft_margin_s
        self.timeout_s = soft_margin_s
        self.opened = False
        self._deadline: float | None = None  # None: the timer is stopped
        self._allow_release = False

    def open(self, now: float) -> bool:
        """False when already open (EBUSY); else the timer starts."""
        if self.opened:
            return False
        self.opened, self._allow_release = True, False
        self._deadline = now + self.timeout_s
        return True

    def set_timeout(self, seconds: float, now: float) -> None:
        self.timeout_s = seconds
        self.keepalive(now)

    def keepalive(self, now: float) -> None:
        """A ping (re)starts the timer while the device is open or left running. A ping
        that comes after the deadline is too late: the kernel's hrtimer fired at the
        deadline, before any process could run again (a node thawed after its timeout:
        the init may read the mux's first ping after the thaw before it checks)."""
        if self.expired(now):
            return
        if self.opened or self._deadline is not None:
            self._deadline = now + self.timeout_s

    def write(self, data: bytes, now: float) -> None:
        """A write(2) to the device: a keepalive; a ``V`` in it allows a clean release."""
        self._allow_release = b"V" in data
        self.keepalive(now)

    def release(self, now: float) -> str | None:
        """The last close of the device. Returns the kernel's warning when the timer is left
        running (no magic close), None when the close stopped it."""
        self.opened = False
        if self._allow_release or self._deadline is None:
            self._deadline = None
            return None
        self.keepalive(now)  # watchdog_release pings once before leaving the timer on
        return "watchdog0: watchdog did not stop!"

    @property
    def running(self) -> bool:
        return self._deadline is not None

    @property
    def deadline(self) -> float | None:
        """When the timer fires (monotonic), None while it is stopped."""
        return self._deadline

    def remaining(self, now: float) -> float | None:
        """Seconds until the reset, None while the timer is stopped."""
        return None if self._deadline is None else self._deadline - now

    def expired(self, now: float) -> bool:
        return self._deadline is not None and now >= self._deadline

    def fire(self, noboot: bool) -> str:
        """The timer expired: softdog's console line. With ``soft_noboot`` the node stays
        up and the timer is stopped until the next ping (Linux softdog.c softdog_fire)."""
        self._deadline = None
        return "softdog: Triggered - Reboot ignored" if noboot else \
            "softdog: Initiating system reboot"


class DeviceError(OSError):
    """The device could not be opened (busy, or no init serving it)."""


class DeviceClient:
    """watchdog-mux's file descriptor on the device: open, WDIOC_SETTIMEOUT,
    WDIOC_KEEPALIVE, the magic close. Lines on a unix socket: ``timeout S``, ``keepalive``,
    ``write V`` (the magic character) and ``write`` (any other byte)."""

    def __init__(self, path: str = DEVICE) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(path)
            reply = sock.recv(64).decode().strip()
        except OSError as exc:
            sock.close()
            raise DeviceError(exc.errno, f"watchdog open: {exc.strerror or exc}") from None
        if reply != "ok":
            sock.close()
            raise DeviceError(16, f"watchdog open: {reply or 'Device or resource busy'}")
        self._sock: socket.socket | None = sock

    def _send(self, line: str) -> None:
        """One request, stamped with when it was made (``@<monotonic> <request>``): the
        kernel acts on write(2) and ioctl(2) as they are called, so the device takes a
        request at its stamp however late its server reads it."""
        if self._sock is not None:
            self._sock.sendall(f"@{time.monotonic():.6f} {line}\n".encode())

    def set_timeout(self, seconds: float) -> None:
        self._send(f"timeout {seconds:.6f}")

    def keepalive(self) -> None:
        self._send("keepalive")

    def close(self, magic: bool) -> None:
        """close(2); with ``magic`` the ``V`` is written first (the device stops)."""
        if self._sock is None:
            return
        if magic:
            self._send("write V")
        self._sock.close()
        self._sock = None


def handle_line(dog: Softdog, line: str, now: float) -> None:
    """One request from the device's opener (the server side of ``DeviceClient``), taken
    at its ``@<monotonic>`` stamp when it has one (never later than ``now``): a ping made
    before the deadline keeps the node up even when it is read after it (the node's init
    starved of CPU for a moment), and one made after it is too late, as in the kernel."""
    line = line.strip()
    if line.startswith("@"):
        stamp, _, line = line[1:].partition(" ")
        try:
            now = min(now, float(stamp))
        except ValueError:
            pass
    verb, _, arg = line.partition(" ")
    if verb == "timeout":
        dog.set_timeout(float(arg), now)
    elif verb == "keepalive":
        dog.keepalive(now)
    elif verb == "write":
        dog.write(arg.encode(), now)


def deadline_text(dog: Softdog) -> str:
    """What DEADLINE_FILE holds for this timer."""
    return "" if dog.deadline is None else repr(dog.deadline)


def overdue(text: str, now: float) -> bool:
    """Whether a timer whose DEADLINE_FILE reads ``text`` has passed its deadline."""
    try:
        return bool(text.strip()) and now >= float(text)
    except ValueError:
        return False
