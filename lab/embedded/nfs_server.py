"""The embedded lab's stand-in "NFS server": reachability, not a file protocol.

Every node of an embedded lab reaches the shared storage's files through its own FUSE
mount (pvemu/nfs_client.py) of the lab's export directory; what the network decides is
only whether the server *answers*. This process stands for the server: it listens on the
lab's host address on the bridge, TCP port 2049 (NFS's), and answers every byte a client
sends with the same byte (one round trip = one NFS RPC answered). A node that cannot get
an answer (its traffic dropped, or this server stopped) stalls like an NFS hard mount.

The lab starts it (``start``), lists it in its state file, stops it with SIGSTOP for a
storage outage and SIGCONT to restore: a stopped server still completes TCP handshakes
in the kernel but answers nothing, as a hung NFS server does. close() and the sweep of a
killed run SIGKILL it like every recorded process. Standard library only.

Run as ``python -m lab.embedded.nfs_server <address> <port> <lab-dir>`` (the lab
directory only names the process as the lab's, for whoever looks for leftovers).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.errors import LabError
from pvemu.nfs_wire import PORT, answers


def _serve_one(conn: socket.socket) -> None:
    with conn:
        while True:
            try:
                data = conn.recv(64)
            except OSError:
                return
            if not data:
                return
            try:
                conn.sendall(data)
            except OSError:
                return


def serve(address: str, port: int) -> None:
    listener = socket.create_server((address, port), backlog=64, reuse_port=False)
    print(f"nfs stand-in serving {address}:{port}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


def start(address: str, lab_dir: Path, cwd: Path, timeout_s: float = 5.0
          ) -> subprocess.Popen:
    """Start the server on the host; returns once it answers (bounded)."""
    log = lab_dir / "nfs-server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.embedded.nfs_server", address, str(PORT),
             str(lab_dir)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(cwd)}, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not answers(address, timeout_s=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=timeout_s)
            raise LabError(f"the lab's NFS stand-in did not answer on {address}:{PORT} "
                           f"within {timeout_s:g} s", hint=f"read {log}")
        time.sleep(0.05)
    return proc


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
