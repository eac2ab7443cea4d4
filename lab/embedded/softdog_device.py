"""/dev/watchdog of one embedded node: the kernel's side of softdog, in the node's init.

The device is served on a thread of its own, as the kernel serves write(2) and ioctl(2)
whatever PID 1 is doing: the init blocks for seconds at a time (``systemctl stop
corosync`` waits for corosync to leave the ring; a reboot stops every unit in order), and
pings that waited for it were read late, so the timer, past its deadline, fired although
watchdog-mux had fed it on time (a node reset by ``systemctl stop``). Each request also
carries when the mux made it (pvemu/softdog.py ``DeviceClient``), and the loop reads what
is still unread before it fires: when the whole init was starved of CPU on a busy host,
pings made in time count. (Suspected, not confirmed, in a CI run: a 5-node lab at
timescale 0.1, whose device timeout is 1 s, reset the node running the guest while three
nodes booted, with no watchdog-mux line before it.) The timer itself is
pvemu/softdog.py's; its expiry is acted on by the init's loop (``expired`` / ``fire``).

The deadline is also published at softdog.DEADLINE_FILE, where the lab reads it on thaw
(lab/embedded/node.py): the kernel's timer runs while userspace is frozen, this stand-in
does not.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pvemu import softdog

POLL_S = 0.2  # the thread's select bound: a closed device is noticed this soon


class SoftdogDevice:
    def __init__(self, margin_s: float, listener: socket.socket,
                 kernel: Callable[[str], None],
                 deadline_file: str = softdog.DEADLINE_FILE) -> None:
        self.margin_s = margin_s
        self.deadline_file = deadline_file
        self.listener = listener
        self.kernel = kernel  # a console line (the init's log)
        self._lock = threading.Lock()
        self.dog = softdog.Softdog(margin_s)
        self._conn: socket.socket | None = None  # the one open file of the device
        self._buffer = b""
        self._published: str | None = None
        self._publish()

    def start(self) -> None:
        threading.Thread(target=self._serve, daemon=True, name="softdog").start()

    # -- the init's side ------------------------------------------------------------------
    def remaining(self, now: float) -> float | None:
        with self._lock:
            return self.dog.remaining(now)

    def fire_if_expired(self, now: float, noboot: bool) -> bool | None:
        """None: not expired. Else softdog_fire's console line is written and the result
        is whether the node must reset (not with ``noboot``). Requests the opener made but
        the device thread has not read yet are taken first, at their stamps: when the
        whole init was starved of CPU, both threads wake together and this one must not
        fire on pings the mux made in time."""
        with self._lock:
            if not self.dog.expired(now):
                return None
            warning = self._drain()
            line = self.dog.fire(noboot) if self.dog.expired(now) else None
            self._publish()
        if warning:
            self.kernel(warning)
        if line is None:
            return None
        self.kernel(line)
        return not noboot

    def reset(self) -> None:
        """A reset or reboot: the kernel, and its timer, start afresh; the device's opener
        is gone with the rest of userspace."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn, self._buffer = None, b""
            self.dog = softdog.Softdog(self.margin_s)
            self._publish()

    # -- the kernel's side (its own thread) -----------------------------------------------
    def _serve(self) -> None:
        while True:
            with self._lock:
                conn = self._conn
            watched = [self.listener] + ([conn] if conn is not None else [])
            try:
                readable, _, _ = select.select(watched, [], [], POLL_S)
            except (OSError, ValueError):  # the device was closed under us (reset)
                continue
            if self.listener in readable:
                self._open()
            if conn is not None and conn in readable:
                self._io(conn)

    def _open(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with self._lock:
            if self._conn is not None or not self.dog.open(time.monotonic()):
                with contextlib.suppress(OSError), conn:
                    conn.sendall(b"Device or resource busy\n")
                return
            with contextlib.suppress(OSError):
                conn.sendall(b"ok\n")
            self._conn = conn
            self._publish()

    def _io(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        with self._lock:
            if conn is not self._conn:  # reset meanwhile
                return
            warning = self._take(conn, data)
            self._publish()
        if warning:
            self.kernel(warning)

    def _drain(self) -> str | None:
        """Take what the opener has written and nobody read yet (the lock is held)."""
        warning = None
        for _ in range(1000):  # bounded: each round reads up to 4 KiB of requests
            conn = self._conn
            if conn is None:
                break
            try:
                data = conn.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            warning = self._take(conn, data) or warning
        return warning

    def _take(self, conn: socket.socket, data: bytes) -> str | None:
        """Requests read from the opener, or its close (``data`` empty: the kernel's
        warning when the timer is left running). The lock is held."""
        now = time.monotonic()
        if data:
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                softdog.handle_line(self.dog, line.decode(errors="replace"), now)
            return None
        conn.close()
        self._conn, self._buffer = None, b""
        return self.dog.release(now)

    def _publish(self) -> None:
        """The timer's deadline at ``deadline_file`` (called with the lock held)."""
        text = softdog.deadline_text(self.dog)
        if text == self._published:
            return
        tmp = self.deadline_file + ".tmp"
        with contextlib.suppress(OSError):
            Path(tmp).write_text(text)
            os.replace(tmp, self.deadline_file)
            self._published = text
