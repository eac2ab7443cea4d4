"""Every SSH command and connect is one DEBUG line on ``pvechaos.ssh``: the node and its
address, the command, its exit status and duration, or why it failed.

The commands run through a real paramiko server over a socketpair (no network), which
answers each exec request with a scripted exit status; only a refused connect is faked
(paramiko's connect raising), since no node may be dialled from a unit test.
"""

from __future__ import annotations

import logging
import threading

import paramiko
import pytest

from harness.errors import CommandTimeout, NodeUnreachable
from harness.lab_api import LabNode
from harness.ssh import SshSession
from tests.unit.ssh_pair import OpenServer, TransportClient, connected

LOGGER = "pvechaos.ssh"


class _ScriptedExec(OpenServer):
    """Lets anyone in; `exit N` ends with status N after a line of output, `hang` never
    answers, anything else exits 0."""

    def check_channel_exec_request(self, channel, command):
        text = command.decode()
        if text != "hang":
            rc = int(text.split()[1]) if text.startswith("exit ") else 0
            threading.Thread(target=self._answer, args=(channel, rc), daemon=True).start()
        return True

    @staticmethod
    def _answer(channel: paramiko.Channel, rc: int) -> None:
        # as sshd: read the command's stdin to its end first; the client sends that end
        # only once the exec request was answered, so nothing here can overtake the answer
        channel.settimeout(10)
        while channel.recv(1024):
            pass
        channel.sendall(b"some output\n")
        channel.send_exit_status(rc)
        channel.shutdown_write()
        channel.close()


@pytest.fixture
def session(monkeypatch):
    with connected(_ScriptedExec()) as client:
        session = SshSession(LabNode("node2", "198.18.0.12"))
        monkeypatch.setattr(session, "_open", lambda: TransportClient(client))
        yield session


def ssh_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


def test_a_command_is_one_debug_line_with_host_command_status_and_duration(session, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    result = session.run(("exit", "3"), timeout_s=10)
    assert result.rc == 3
    connect, command = ssh_records(caplog)
    assert connect.levelno == logging.DEBUG
    assert connect.getMessage().startswith("node2 (198.18.0.12): connected to port 22 as "
                                           "root in ")
    assert command.levelno == logging.DEBUG
    message = command.getMessage()
    assert message.startswith("node2 (198.18.0.12): `exit 3` -> exit status 3 in ")
    assert message.endswith(" s") and "\n" not in message
    assert (command.node, command.address, command.command, command.rc) == (
        "node2", "198.18.0.12", "exit 3", 3)
    assert 0 <= command.duration_s <= result.duration_s


def test_the_session_is_connected_once_and_each_command_logged(session, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    session.run("true")
    session.run(("exit", "0"))
    messages = [r.getMessage() for r in ssh_records(caplog)]
    assert len(messages) == 3 and "connected" in messages[0]
    assert "`true` -> exit status 0" in messages[1]
    assert "`exit 0` -> exit status 0" in messages[2]


def test_a_script_stays_on_one_line_and_secrets_are_redacted(session, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    session.run("echo one\nchpasswd --password hunter2")
    (record,) = [r for r in ssh_records(caplog) if hasattr(r, "command")]
    assert "\n" not in record.getMessage()
    assert "echo one\\nchpasswd --password [REDACTED]" in record.getMessage()
    assert "hunter2" not in record.getMessage()


def test_a_command_without_an_answer_is_logged_with_its_deadline(session, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with pytest.raises(CommandTimeout):
        session.run("hang", timeout_s=0.3)
    record = ssh_records(caplog)[-1]
    assert record.getMessage().startswith(
        "node2 (198.18.0.12): `hang` -> no answer within 0.3 s in ")
    assert record.rc is None and record.duration_s >= 0.3


def test_a_failed_connect_is_logged_with_the_reason(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(paramiko.SSHClient, "connect", refuse)
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    session = SshSession(LabNode("node3", "198.18.0.13", ssh_port=2222))
    with pytest.raises(NodeUnreachable):
        session.run("true")
    (record,) = ssh_records(caplog)
    assert record.getMessage().startswith(
        "node3 (198.18.0.13): connect to port 2222 as root failed: "
        "[Errno 111] Connection refused in ")


def test_nothing_is_formatted_when_debug_is_off(session, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger=LOGGER)
    monkeypatch.setattr("harness.ssh.redact", lambda text: pytest.fail("redacted anyway"))
    assert session.run("true").ok
    assert ssh_records(caplog) == []
