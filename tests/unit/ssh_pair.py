"""A real paramiko server over a socketpair (no network) for the unit tests of
harness/ssh.py: ``OpenServer`` lets anyone in and opens sessions (a subclass says how it
answers exec requests); ``connected(server)`` gives the client's transport, logged in;
``TransportClient`` is what SshSession needs of a paramiko.SSHClient around it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import paramiko


class OpenServer(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "none"

    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED


class TransportClient:
    """What SshSession needs of a paramiko.SSHClient: its transport, and close()."""

    def __init__(self, transport: paramiko.Transport) -> None:
        self.transport = transport

    def get_transport(self) -> paramiko.Transport:
        return self.transport

    def close(self) -> None:
        self.transport.close()


@contextlib.contextmanager
def connected(server_interface: paramiko.ServerInterface) -> Iterator[paramiko.Transport]:
    near, far = socket.socketpair()
    server = paramiko.Transport(far)
    server.add_server_key(paramiko.RSAKey.generate(1024))
    server.start_server(event=threading.Event(), server=server_interface)  # no wait
    client = paramiko.Transport(near)
    try:
        client.start_client(timeout=10)
        client.auth_none("root")
        yield client
    finally:
        client.close()
        server.close()
