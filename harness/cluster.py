"""A cluster of nodes reached over SSH, running PVE's own commands.

Nothing here knows what kind of lab is behind the nodes: an embedded namespace node, a
nested PVE VM and a real server look the same.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from harness.errors import CommandError, ConfigError, PvechaosError
from harness.lab_api import Lab, LabNode
from harness.pve import (
    PveVersion,
    QuorumStatus,
    cluster_fs,
    parse_cfgtool_status,
    parse_pvecm_status,
    parse_pveversion,
)
from harness.pve.corosync_cfgtool import LinkPeer
from harness.ssh import CommandResult, SshSession
from harness.waits import NotYet, wait_until

T = TypeVar("T")
BOOT_ID = "/proc/sys/kernel/random/boot_id"  # Linux's (the embedded node's own per boot)


class Node:
    def __init__(self, spec: LabNode) -> None:
        self.spec = spec
        self.name = spec.name
        self.address = spec.address
        self.cluster_address = spec.cluster_address
        self._ssh = SshSession(spec)

    def __repr__(self) -> str:
        return f"Node({self.name}@{self.address})"

    def run(self, *argv: str, timeout_s: float = 10.0, stdin: str | None = None
            ) -> CommandResult:
        """Run argv (or one shell string) on the node; never raises on rc != 0."""
        command: tuple[str, ...] | str = argv[0] if len(argv) == 1 else argv
        return self._ssh.run(command, timeout_s=timeout_s, stdin=stdin)

    def check(self, *argv: str, timeout_s: float = 10.0, ok_codes: tuple[int, ...] = (0,)
              ) -> str:
        result = self.run(*argv, timeout_s=timeout_s)
        if result.rc not in ok_codes:
            raise CommandError(self.name, result.command, result.rc, result.stdout,
                               result.stderr)
        return result.stdout

    def quorum(self, *, timeout_s: float = 10.0) -> QuorumStatus:
        """`pvecm status`, parsed. Exit code 2 (not quorate) is an answer, not an error."""
        out = self.check("pvecm", "status", timeout_s=timeout_s, ok_codes=(0, 2))
        return parse_pvecm_status(out)

    def pve_version(self) -> PveVersion:
        return parse_pveversion(self.check("pveversion"))

    def links(self) -> tuple[LinkPeer, ...]:
        return parse_cfgtool_status(self.check("corosync-cfgtool", "-s"))

    def boot_id(self) -> str:
        """Linux's id of the current boot: it changes when the node resets or reboots."""
        return self.check("cat", BOOT_ID, timeout_s=5).strip()

    def boot_changed(self, boot: str, *, timeout_s: float = 3.0) -> str | None:
        """None while the node answers on ``boot``; else what one try saw instead: the
        node down (no answer) or on a new boot."""
        try:
            now = self.run("cat", BOOT_ID, timeout_s=timeout_s)
        except PvechaosError as exc:
            return f"down ({str(exc).splitlines()[0]})"
        if now.rc != 0:
            return f"down (exit {now.rc})"
        return None if now.stdout.strip() == boot else f"new boot {now.stdout.strip()}"

    def wait_reachable(self, *, timeout_s: float = 60.0) -> None:
        """Wait (bounded) until the node answers over SSH, as after a power-on or boot."""
        self.close()  # a connection from before a power cut is dead
        wait_until(f"{self.name} to answer over SSH",
                   lambda: self.run("true", timeout_s=5).rc == 0, timeout_s=timeout_s)

    def can_write_pve(self, path: str = cluster_fs.WRITE_PROBE) -> CommandResult:
        """Try to create and remove a file in the cluster filesystem; the result says why
        it failed."""
        return self.run(cluster_fs.write_probe_command(path))

    @property
    def host(self):
        """A testinfra host for assertions on the node (package, file, service...).

        It rides on this node's own SSH connection, so the host key stays pinned (testinfra
        alone would accept any key with a warning).
        """
        import testinfra.host
        from testinfra.backend.paramiko import ParamikoBackend

        spec = self.spec
        backend = ParamikoBackend(f"{spec.ssh_user}@{spec.address}:{spec.ssh_port}")
        backend.__dict__["client"] = self._ssh.client()  # fills its cached `client` property
        return testinfra.host.Host(backend)

    def close(self) -> None:
        self._ssh.close()


class Cluster:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._nodes = {spec.name: Node(spec) for spec in lab.nodes()}

    def node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise ConfigError(f"unknown node {name!r}",
                              hint=f"use one of {', '.join(sorted(self._nodes))}") from None

    def nodes(self) -> tuple[Node, ...]:
        return tuple(self._nodes[n] for n in sorted(self._nodes))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._nodes))

    def name_of(self, member: str) -> str:
        """A node name for a member as `pvecm status` lists it (an address) or as is."""
        for node in self._nodes.values():
            if member in (node.cluster_address, node.address, node.name):
                return node.name
        return member

    def wait_whole_view(self, name: str, *, timeout_s: float = 60.0) -> QuorumStatus:
        """Wait (bounded) until ``name``'s `pvecm status` shows every node a member,
        quorate, with expected votes back to the votes configured: the members' and a
        QDevice's (a healed cluster; one vote per node without a QDevice)."""
        return wait_until(f"{name} to see the whole cluster", lambda: self.whole_view(name),
                          timeout_s=timeout_s)

    def whole_view(self, name: str) -> QuorumStatus | NotYet:
        """One look at ``name``'s `pvecm status`: the status when it shows a healed
        cluster (every node a member, quorate, expected votes back to those configured),
        else what is missing."""
        status = self.node(name).quorum(timeout_s=5)
        members = sorted(map(self.name_of, status.member_names))
        if status.quorate and members == sorted(self._nodes) \
                and status.expected_votes == status.configured_votes:
            return status
        return NotYet(f"{name}: quorate={status.quorate} members={members} "
                      f"expected={status.expected_votes}")

    def each(self, fn: Callable[[Node], T], *, names: tuple[str, ...] | None = None,
             timeout_s: float = 15.0) -> dict[str, T | Exception]:
        """Call fn on several nodes in parallel; each result or the exception it raised."""
        targets = [self.node(n) for n in (names or self.names)]
        results: dict[str, T | Exception] = {}
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(targets))
        futures = {pool.submit(fn, node): node.name for node in targets}
        done, pending = concurrent.futures.wait(futures, timeout=timeout_s)
        for future in done:
            try:
                results[futures[future]] = future.result()
            except Exception as exc:  # noqa: BLE001 - reported per node
                results[futures[future]] = exc
        for future in pending:
            results[futures[future]] = TimeoutError(
                f"{futures[future]}: no result within {timeout_s} s")
        pool.shutdown(wait=False, cancel_futures=True)  # every command has its own deadline
        return results

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()
