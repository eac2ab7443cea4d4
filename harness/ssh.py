"""SSH to one node with a deadline on every command (paramiko).

A node under test may be powered off or frozen on purpose, so nothing here may block
without a bound: connecting, authenticating and each command have their own limits.

Every connect and every command is logged at DEBUG on ``pvechaos.ssh``, one line each:
the node and its address, the command (secrets redacted), its exit status and duration,
or why it failed (``pytest --log-cli-level=DEBUG`` shows them as they happen; paramiko's
own DEBUG chatter is held back: ``quiet_paramiko``).
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from dataclasses import dataclass

import paramiko

from harness.errors import CommandTimeout, NodeUnreachable
from harness.lab_api import LabNode
from harness.report.redact import redact

log = logging.getLogger("pvechaos.ssh")


def quiet_paramiko() -> None:
    """Hold paramiko's own loggers at INFO unless someone set their level: at DEBUG it
    writes some 35 lines per connect and 8 per command (key exchange, channel windows),
    which bury the one line per command above. Called by the pytest plugin; a conftest
    that wants the wire detail sets ``logging.getLogger("paramiko").setLevel(DEBUG)``."""
    paramiko_log = logging.getLogger("paramiko")
    if paramiko_log.level == logging.NOTSET:
        paramiko_log.setLevel(logging.INFO)


@dataclass(frozen=True)
class CommandResult:
    node: str
    command: str
    rc: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


CONNECT_TIMEOUT_S = 5.0  # connect, banner and authentication, each
ABORT_GRACE_S = 1.0  # past a command's deadline, its session is closed under it


class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
    def __init__(self, expected: str | None) -> None:
        self.expected = expected

    def missing_host_key(self, client, hostname, key) -> None:
        if self.expected is None:
            return  # the lab gave no key to pin: accept (as testinfra does)
        seen = f"{key.get_name()} {key.get_base64()}"
        if seen.split()[:2] != self.expected.split()[:2]:
            raise paramiko.SSHException(
                f"host key mismatch for {hostname}: expected {self.expected[:40]}..., "
                f"got {seen[:40]}...")


class SshSession:
    """One lazily opened SSH connection to a node, reopened after it breaks."""

    def __init__(self, node: LabNode, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.node = node
        self.connect_timeout_s = connect_timeout_s
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        """How log lines name the node: ``node1 (198.18.0.1)``."""
        return f"{self.node.name} ({self.node.address})"

    def _log(self, message: str, started: float, **fields: object) -> None:
        if log.isEnabledFor(logging.DEBUG):
            duration = time.monotonic() - started
            log.debug("%s: %s in %.3f s", self.host, message, duration,
                      extra={"node": self.node.name, "address": self.node.address,
                             "duration_s": duration, **fields})

    def _connect(self) -> paramiko.SSHClient:
        started = time.monotonic()
        try:
            client = self._open()
        except NodeUnreachable as exc:
            self._log(f"connect to port {self.node.ssh_port} as {self.node.ssh_user} "
                      f"failed: {exc.reason}", started)
            raise
        self._log(f"connected to port {self.node.ssh_port} as {self.node.ssh_user}", started)
        return client

    def _open(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_PinnedHostKey(self.node.host_key))
        t = self.connect_timeout_s
        try:
            client.connect(
                self.node.address, port=self.node.ssh_port, username=self.node.ssh_user,
                key_filename=str(self.node.ssh_key) if self.node.ssh_key else None,
                password=self.node.ssh_password,
                timeout=t, banner_timeout=t, auth_timeout=t, channel_timeout=t,
                allow_agent=False,
                look_for_keys=self.node.ssh_key is None and self.node.ssh_password is None)
        except paramiko.AuthenticationException as exc:
            client.close()
            raise NodeUnreachable(self.node.name, self.node.address,
                                  f"authentication failed ({exc}); check the SSH key or "
                                  "password the lab or inventory gives for this node") from exc
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            raise NodeUnreachable(self.node.name, self.node.address,
                                  str(exc) or type(exc).__name__) from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(2)
        return client

    def client(self) -> paramiko.SSHClient:
        """The connected client (opened now if need be), e.g. for testinfra."""
        return self._client_or_connect()

    def _client_or_connect(self) -> paramiko.SSHClient:
        with self._lock:
            client = self._client
            if client is None or client.get_transport() is None \
                    or not client.get_transport().is_active():
                if client is not None:
                    client.close()
                self._client = None
                client = self._connect()
                self._client = client
            return client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def run(self, argv: tuple[str, ...] | str, *, timeout_s: float = 10.0,
            stdin: str | None = None) -> CommandResult:
        """Run a command; never raises on a non-zero exit code.

        Raises NodeUnreachable when no session can be had and CommandTimeout when the
        command gives no complete answer within ``timeout_s``.
        """
        command = argv if isinstance(argv, str) else shlex.join(argv)
        started = time.monotonic()
        deadline = started + timeout_s
        client = self._client_or_connect()
        # paramiko waits without a bound for the answer to a channel request (exec_command)
        # and for window space: a node that dies between two packets of a session would
        # hold this call until TCP gives up (minutes). Past the deadline the transport is
        # closed under it, which ends every such wait.
        aborted = threading.Event()

        def abort() -> None:
            aborted.set()
            client.close()

        guard = threading.Timer(timeout_s + ABORT_GRACE_S, abort)
        guard.daemon = True
        guard.start()
        try:
            transport = client.get_transport()
            if transport is None:
                raise paramiko.SSHException("no transport")
            channel = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
            channel.settimeout(0.2)
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                drained = False
                while channel.recv_ready():
                    out += channel.recv(65536)
                    drained = True
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                    drained = True
                # sshd may send the exit status before the last of the output (it reads
                # the command's pipes after it exited): done only at EOF, drained
                if channel.exit_status_ready() and (channel.eof_received or channel.closed) \
                        and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if time.monotonic() > deadline:
                    channel.close()
                    raise CommandTimeout(self.node.name, command, timeout_s)
                if not drained:
                    channel.status_event.wait(0.05)
            if not channel.eof_received:
                # the connection ended without the channel's EOF: the node died (a reset,
                # a power cut) while the output was on the way, after sshd had sent the
                # exit status; what came is cut, so it is no result
                raise EOFError("the connection ended before the command's output did "
                               f"(output cut after {len(out)} bytes)")
            rc = channel.recv_exit_status()
            channel.close()
        except CommandTimeout:
            self._log_command(command, started, f"no answer within {timeout_s:g} s")
            raise
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
            self.close()
            if aborted.is_set():
                self._log_command(command, started, f"no answer within {timeout_s:g} s")
                raise CommandTimeout(self.node.name, command, timeout_s) from exc
            self._log_command(command, started, f"session broke: {exc}")
            raise NodeUnreachable(self.node.name, self.node.address,
                                  f"session broke during `{command}`: {exc}") from exc
        finally:
            guard.cancel()
        self._log_command(command, started, f"exit status {rc}", rc=rc)
        return CommandResult(self.node.name, command, rc, out.decode(errors="replace"),
                             err.decode(errors="replace"), time.monotonic() - started)

    def _log_command(self, command: str, started: float, outcome: str, *,
                     rc: int | None = None) -> None:
        """One line per command: its text redacted and on one line (a script's newlines
        shown as \\n), what came of it (``rc`` None: no exit status)."""
        if log.isEnabledFor(logging.DEBUG):
            shown = redact(command).replace("\n", "\\n")
            self._log(f"`{shown}` -> {outcome}", started, command=shown, rc=rc)
