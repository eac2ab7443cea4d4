"""watchdog-mux on an embedded node (HA ``src/watchdog-mux.c``; pve-faults.md §3).

The device timer is not here: it is the node's softdog (pvemu/softdog.py, served by the
node's init), opened once at start with a 10 s timeout, so a killed or stopped mux leaves
it running and the node resets when nobody feeds it (§3.4, §3.7).

What the mux does, as the C source (PVE 9, 5.x; PVE 8 differences marked):
- refuses to start while ``/run/watchdog-mux.active`` exists (``watchdog active - unable
  to restart watchdog-mux``); creates it on every accept, removes it only when no active
  client is left, i.e. when the last one closed with ``V``;
- clients on ``/run/watchdog-mux.sock``: any byte is an update stamped with the node's
  WALL clock (``time(NULL)``: pvemu/wallclock.now()), the last byte decides the magic
  flag (``V``);
- each tick with no socket event (epoll's 1 s timeout) it checks the client ages (50 s
  warning, PVE 9 only; 60 s: ``client watchdog expired - disable watchdog updates``) and
  feeds the device unless updates are disabled;
- a client that closes without ``V`` disables updates (``client did not stop watchdog -
  disable watchdog updates``) and stays counted as active;
- once updates are disabled PVE 9 leaves its loop within a tick; PVE 8 (4.0.7) only at
  the next socket event (§3.6). Leaving with active clients: ``exit watchdog-mux with
  active connections`` and no ``V`` (the device keeps running: reset 10 s later); with
  none: ``clean exit`` and the magic close;
- SIGTERM/SIGINT: ``got terminate request`` and leave as above; SIGHUP: ``got SIGHUP -
  ignored``.
Guess: where PVE 9 puts the client's PID in its lines (``client (PID n) ...``); §3.2
says PVE 9 adds it, the 5.x source read here has none.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import struct
import sys
from dataclasses import dataclass

from pvemu import nodeinfo, wallclock
from pvemu.ha.env_node import WATCHDOG_SOCKET
from pvemu.ha.watchdog import WatchdogMux
from pvemu.softdog import DeviceClient, DeviceError
from pvemu.timing import Timing

ACTIVE_MARKER = "/run/watchdog-mux.active"
WARNING_AGE = 50  # CLIENT_WATCHDOG_TIMEOUT - 10, PVE seconds (PVE 9 only)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Client:
    cid: int
    pid: int
    magic: bool = False
    warned: bool = False
    crashed: bool = False  # closed without V: counted as active until the mux exits

    def name(self, flavour: int) -> str:
        return "client" if flavour < 9 else f"client (PID {self.pid})"


def peer_pid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[0]


class Mux:
    def __init__(self, timing: Timing, flavour: int, device: DeviceClient) -> None:
        self.timing, self.flavour, self.device = timing, flavour, device
        self.logic = WatchdogMux(timing)  # the client-age rule (shared with the simulator)
        self.clients: dict[socket.socket, Client] = {}
        self.update_watchdog = True

    def active(self) -> int:
        return len(self.clients)

    def accept(self, server: socket.socket) -> socket.socket:
        conn, _ = server.accept()
        conn.setblocking(False)
        self.clients[conn] = Client(self.logic.open(wallclock.now()), peer_pid(conn))
        os.makedirs(ACTIVE_MARKER, mode=0o600, exist_ok=True)
        say("added new client to watch")
        return conn

    def read(self, conn: socket.socket) -> bool:
        """Data from a client; False when it closed (the caller unregisters it)."""
        client = self.clients[conn]
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if data:
            client.magic = data.endswith(b"V")
            self.logic.update(client.cid, wallclock.now())
            return True
        if client.magic:
            self.logic.close(client.cid)
            del self.clients[conn]
        else:
            say(f"{client.name(self.flavour)} did not stop watchdog - disable watchdog updates")
            self.logic.disconnect(client.cid)
            client.crashed = True
            self.update_watchdog = False
        if not self.active():
            say("all watchdog client connections to the multiplexer closed")
            with contextlib.suppress(OSError):
                os.rmdir(ACTIVE_MARKER)
        return False

    def tick(self) -> None:
        """A tick without socket events: client ages on the wall clock, then the feed."""
        now = wallclock.now()
        for client in self.clients.values():
            if client.crashed:
                continue
            age = now - self.logic.clients[client.cid]
            if self.flavour >= 9:
                if client.warned and age <= self.timing.s(WARNING_AGE):
                    client.warned = False
                    say(f"{client.name(9)} watchdog was updated before expiring")
                if not client.warned and age > self.timing.s(WARNING_AGE):
                    client.warned = True
                    say(f"{client.name(9)} watchdog is about to expire")
            if age > self.timing.watchdog_client_timeout:
                self.update_watchdog = False
                say(f"{client.name(self.flavour)} watchdog expired - disable watchdog updates")
        if self.update_watchdog and self.logic.should_feed(now):
            self.device.keepalive()

    def leave(self) -> None:
        if self.active():
            say("exit watchdog-mux with active connections")
            # no V: the process's exit closes the device and the kernel leaves it running
        else:
            say("clean exit")
            self.device.close(magic=True)


def serve(timing: Timing, flavour: int) -> int:
    if os.path.exists(ACTIVE_MARKER):
        say("watchdog active - unable to restart watchdog-mux")
        return 1
    try:
        device = DeviceClient()
    except DeviceError as exc:
        say(str(exc))
        return 1
    device.set_timeout(timing.watchdog_device_timeout)
    say("Watchdog driver 'Software Watchdog', version 0")
    mux = Mux(timing, flavour, device)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(WATCHDOG_SOCKET)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(WATCHDOG_SOCKET)
    server.listen(32)
    server.setblocking(False)
    wake_r, wake_w = os.pipe()  # signalfd's part: a signal is an event of the loop
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    pending: list[int] = []
    for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signo, lambda n, _: pending.append(n))
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    while True:
        events = sel.select(timeout=timing.watchdog_tick)
        if not events:
            if mux.update_watchdog:
                mux.tick()
                continue
            if flavour >= 9:
                break  # PVE 9 leaves at once; PVE 8 waits for the next socket event
            continue
        if not mux.update_watchdog:
            break
        terminate = False
        for key, _ in events:
            if key.fileobj is server:
                sel.register(mux.accept(server), selectors.EVENT_READ)
            elif key.fileobj == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 64)
                for signo in pending:
                    if signo == signal.SIGHUP:
                        say("got SIGHUP - ignored")
                    else:
                        terminate = True
                        say("got terminate request")
                pending.clear()
            else:
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                if not mux.read(conn):
                    sel.unregister(conn)
                    conn.close()
        if terminate:
            break
    mux.leave()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(WATCHDOG_SOCKET)
    return 0


def main() -> None:
    info = nodeinfo.load()
    sys.exit(serve(info.timing, info.flavour))


if __name__ == "__main__":
    main()
