"""A command's deadline holds even where paramiko itself waits without a bound.

paramiko's ``exec_command`` waits for the server's answer to the channel request with no
timeout; a node that dies between two packets never sends it, and nothing on the client
side notices until TCP gives up. Here a real paramiko server, over a socketpair (no
network), accepts the session and never answers the exec request.
"""

from __future__ import annotations

import socket
import threading
import time

import paramiko
import pytest

from harness.errors import CommandTimeout
from harness.lab_api import LabNode
from harness.ssh import ABORT_GRACE_S, SshSession


class _SilentExec(paramiko.ServerInterface):
    """Lets anyone in, opens sessions, and holds every exec request unanswered."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def get_allowed_auths(self, username):
        return "none"

    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.release.wait(30)  # the node "died" before it could answer
        return False


class _Client:
    """What SshSession needs of a paramiko.SSHClient: its transport, and close()."""

    def __init__(self, transport: paramiko.Transport) -> None:
        self.transport = transport

    def get_transport(self) -> paramiko.Transport:
        return self.transport

    def close(self) -> None:
        self.transport.close()


@pytest.fixture
def silent_node(monkeypatch):
    near, far = socket.socketpair()
    release = threading.Event()
    server = paramiko.Transport(far)
    server.add_server_key(paramiko.RSAKey.generate(1024))
    server.start_server(event=threading.Event(), server=_SilentExec(release))  # no wait
    client = paramiko.Transport(near)
    client.start_client(timeout=10)
    client.auth_none("root")
    session = SshSession(LabNode("node1", "198.18.0.1"))
    monkeypatch.setattr(session, "_connect", lambda: _Client(client))
    yield session
    release.set()
    client.close()
    server.close()


def test_a_command_whose_exec_request_is_never_answered_times_out(silent_node):
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        silent_node.run(("pvecm", "status"), timeout_s=0.5)
    took = time.monotonic() - started
    assert took < 0.5 + ABORT_GRACE_S + 2.0, f"held for {took:.1f} s"
    assert not silent_node._client  # the dead session is dropped: the next call reconnects
