"""The embedded lab's NFS "wire": one TCP round trip to the server stands for one RPC.

The stand-in server (lab/embedded/nfs_server.py) answers every byte with the same byte on
TCP port 2049, NFS's port. A node's NFS client (pvemu/nfs_client.py) and `pvesm`'s
connection check (pvemu/storage.py) call ``answers``; a server stopped (storage outage)
or a path dropped (storage cut) gives no answer within the bound.
"""

from __future__ import annotations

import socket

PORT = 2049  # nfs(5): the NFS server's standard port


def answers(server: str, port: int = PORT, timeout_s: float = 1.0) -> bool:
    """One round trip to the server within ``timeout_s`` (connect, send, echo)."""
    try:
        with socket.create_connection((server, port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            conn.sendall(b"?")
            return conn.recv(1) == b"?"
    except OSError:
        return False
