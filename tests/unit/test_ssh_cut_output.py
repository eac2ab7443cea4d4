"""A node that dies while its command's output is on the way gives no result.

sshd may send a command's exit status before the last of its output (it reads the
command's pipes after it exited). If the node dies then (a reset, a power cut), the
session ends without the channel's EOF: the status says 0 and the output is cut. Taken
as a result, a guest's write log read that way looked like a disk missing its last
writes: a chaos run's "lost write" came from `cat` on a node reset at that moment, and
the 3389 whole records it held make 131 064 bytes, the first 128 KiB of the log cut
inside record 3390. A real paramiko server over a socketpair (no network) does just
that here.
"""

from __future__ import annotations

import threading
import time

import pytest

from harness.errors import NodeUnreachable
from harness.lab_api import LabNode
from harness.ssh import SshSession
from tests.unit.ssh_pair import OpenServer, TransportClient, connected

HEAD = b"1 node1 abc 1\n" * 1000


class _DiesMidOutput(OpenServer):
    """Sends part of the output and exit status 0, then the node dies (no EOF, no close)."""

    def __init__(self, eof: bool) -> None:
        self.eof = eof

    def check_channel_exec_request(self, channel, command):
        def answer() -> None:
            # the client shuts its side once exec_command returned: answer after that
            deadline = time.monotonic() + 5
            while not channel.eof_received and time.monotonic() < deadline:
                time.sleep(0.01)
            channel.sendall(HEAD)
            channel.send_exit_status(0)
            if self.eof:
                channel.shutdown_write()  # the whole output was sent: EOF, then close
                channel.close()
            else:
                channel.get_transport().close()  # the reset: the connection just ends

        threading.Thread(target=answer, daemon=True).start()
        return True


def run_on(server: OpenServer, command: tuple[str, ...]):
    with connected(server) as client:
        session = SshSession(LabNode("node1", "198.18.0.1"))
        session._connect = lambda: TransportClient(client)
        return session.run(command, timeout_s=5)


def test_output_cut_by_the_node_dying_is_no_result():
    with pytest.raises(NodeUnreachable, match="output cut"):
        run_on(_DiesMidOutput(eof=False),
               ("cat", "/mnt/pve/shared/images/100/vm-100-disk-0.raw"))


def test_output_that_ended_with_eof_is_a_result():
    result = run_on(_DiesMidOutput(eof=True), ("cat", "log"))
    assert result.rc == 0 and result.stdout.encode() == HEAD
