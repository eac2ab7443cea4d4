"""The seam between the harness and every lab backend.

harness/ and scenarios/ know a lab only through this protocol: which nodes exist and how
to reach them over SSH, and the power and network switches. Everything else goes over
SSH with PVE's own commands.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class LabNode:
    """How to reach one node of a lab."""

    name: str
    address: str
    ssh_port: int = 22
    ssh_user: str = "root"
    ssh_key: Path | None = None
    host_key: str | None = None  # "ssh-ed25519 AAAA..." when the lab knows it; pinned
    link0: str | None = None  # corosync link0 address when it differs from `address`

    @property
    def cluster_address(self) -> str:
        return self.link0 or self.address


class Capability(enum.Flag):
    POWER = enum.auto()
    PARTITION = enum.auto()
    SHAPE = enum.auto()
    FREEZE = enum.auto()


@runtime_checkable
class Lab(Protocol):
    """What every lab backend provides."""

    name: str
    kind: str
    capabilities: Capability

    def nodes(self) -> tuple[LabNode, ...]: ...

    def start(self) -> None:
        """Boot every node; returns when each node answers SSH. The cluster is not formed."""

    def close(self) -> None:
        """Leave nothing behind. Safe twice and after a partial start."""

    def power_cut(self, node: str) -> None:
        """Abrupt loss of power: no graceful step."""

    def power_on(self, node: str) -> None:
        """Boot a node that is off; its services start by themselves."""

    def is_powered(self, node: str) -> bool: ...

    def link_down(self, node: str) -> None:
        """Cut the node's network (it keeps running). Labs with Capability.PARTITION."""

    def link_up(self, node: str) -> None:
        """Give a node cut by link_down its network back."""

    def describe(self) -> dict[str, str]:
        """Facts for reports: lab kind, addresses, versions."""
