"""A command's deadline holds even where paramiko itself waits without a bound.

paramiko's ``exec_command`` waits for the server's answer to the channel request with no
timeout; a node that dies between two packets never sends it, and nothing on the client
side notices until TCP gives up. Here a real paramiko server, over a socketpair (no
network), accepts the session and never answers the exec request.
"""

from __future__ import annotations

import threading
import time

import pytest

from harness.errors import CommandTimeout
from harness.lab_api import LabNode
from harness.ssh import ABORT_GRACE_S, SshSession
from tests.unit.ssh_pair import OpenServer, TransportClient, connected


class _SilentExec(OpenServer):
    """Lets anyone in, opens sessions, and holds every exec request unanswered."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def check_channel_exec_request(self, channel, command):
        self.release.wait(30)  # the node "died" before it could answer
        return False


@pytest.fixture
def silent_node(monkeypatch):
    release = threading.Event()
    try:
        with connected(_SilentExec(release)) as client:
            session = SshSession(LabNode("node1", "198.18.0.1"))
            monkeypatch.setattr(session, "_connect", lambda: TransportClient(client))
            yield session
            release.set()
    finally:
        release.set()


def test_a_command_whose_exec_request_is_never_answered_times_out(silent_node):
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        silent_node.run(("pvecm", "status"), timeout_s=0.5)
    took = time.monotonic() - started
    assert took < 0.5 + ABORT_GRACE_S + 2.0, f"held for {took:.1f} s"
    assert not silent_node._client  # the dead session is dropped: the next call reconnects
