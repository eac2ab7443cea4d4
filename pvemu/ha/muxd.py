"""watchdog-mux on an embedded node: `WatchdogMux` behind a unix socket, and softdog.

Clients (the CRM and LRM) connect to /run/watchdog-mux.sock: any byte is an update, `V`
before closing is the graceful close; a connection that ends without `V` is a crashed
client. When the device is not fed for its timeout, the node is reset at once, as softdog
does: the node's init kills every process and boots the node again.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import time

from pvemu import nodeinfo
from pvemu.ha.env_node import WATCHDOG_SOCKET
from pvemu.ha.watchdog import WatchdogMux
from pvemu.nodeinfo import CONTROL_SOCKET
from pvemu.timing import Timing


def reset_node(reason: str) -> None:
    print(f"watchdog-mux: {reason}: resetting the node", flush=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5)
        conn.connect(CONTROL_SOCKET)
        conn.sendall(b"reset watchdog")


def serve(timing: Timing) -> None:
    mux = WatchdogMux(timing)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(WATCHDOG_SOCKET)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(WATCHDOG_SOCKET)
    server.listen(8)
    server.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    clients: dict[socket.socket, tuple[int, bool]] = {}  # conn -> (id, saw 'V')
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    next_tick = time.monotonic()
    while not stopping:
        for key, _ in sel.select(timeout=max(0.0, next_tick - time.monotonic())):
            if key.fileobj is server:
                conn, _ = server.accept()
                conn.setblocking(False)
                clients[conn] = (mux.open(time.monotonic()), False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            cid, magic = clients[conn]
            try:
                data = conn.recv(64)
            except OSError:
                data = b""
            if data:
                mux.update(cid, time.monotonic())
                clients[conn] = (cid, magic or data.endswith(b"V"))
                continue
            sel.unregister(conn)
            conn.close()
            del clients[conn]
            if magic:
                mux.close(cid)
            else:
                print(f"watchdog-mux: client {cid} closed unexpectedly", flush=True)
                mux.disconnect(cid)
        now = time.monotonic()
        if now >= next_tick:
            next_tick = now + timing.watchdog_tick
            if not mux.tick(now) and mux.expired(now):
                reset_node("watchdog expired")
                return


def main() -> None:
    info = nodeinfo.load()
    serve(info.timing)


if __name__ == "__main__":
    main()
