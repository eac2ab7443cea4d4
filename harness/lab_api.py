"""The seam between the harness and every lab backend.

harness/ and scenarios/ know a lab only through this protocol: which nodes exist and how
to reach them over SSH, and the power and network switches. Everything else goes over
SSH with PVE's own commands.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from harness.errors import UnsupportedFault


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
    ssh_password: str | None = None  # when the node takes no key (an inventory may say so)

    @property
    def cluster_address(self) -> str:
        return self.link0 or self.address


@dataclass(frozen=True)
class SharedStorage:
    """The NFS export a lab offers as the guests' shared storage (`pvesm add nfs`)."""

    storage_id: str  # the PVE storage id to give it, e.g. "shared"
    server: str
    export: str


@dataclass(frozen=True)
class GuestRecipe:
    """How a lab's test guest is made and watched; everything else goes over SSH.

    The template's container runs the guest service: it answers every TCP connection on
    ``port`` with one line ``<sid> <node> <boot-id> <seq>`` and appends a write record
    every 100 ms to its write log (harness/writelog.py), which any node with the shared
    storage active can read at ``log_path``.
    """

    vmid: int
    template: str  # the CT template's volume id, present on every node
    address: str  # the guest's IPv4 address, inside the lab's own range
    prefixlen: int
    bridge: str
    port: int
    storage_id: str  # the shared storage its root disk lives on
    log_path: str  # path of the guest's write log on any node with the storage active
    # extra `pct create` options that make every start of the guest fail (the guest that
    # keeps failing ends in HA's `error` state)
    failing_start: tuple[str, ...] = ()
    # further `pct create` options every guest of this lab needs (mount points, hook)
    create_options: tuple[str, ...] = ()
    # commands run on the node before `pct create` (e.g. the write log's directory)
    prepare: tuple[tuple[str, ...], ...] = ()

    @property
    def sid(self) -> str:
        return f"ct:{self.vmid}"


class Capability(enum.Flag):
    POWER = enum.auto()  # power_cut / power_on
    PARTITION = enum.auto()  # link_down / link_up
    SHAPE = enum.auto()
    FREEZE = enum.auto()  # freeze / thaw (the node's vCPUs stop; it keeps its state)
    SHUTDOWN = enum.auto()  # shutdown: the ACPI power button, PVE shuts down cleanly
    RESET = enum.auto()  # reset: the reset button, no shutdown, boots again at once
    SNAPSHOT = enum.auto()  # save_ready: a consistent cut the next start() reverts to
    EVENTS = enum.auto()  # subscribe: the lab reports power events it sees by itself
    STORAGE = enum.auto()  # storage_outage / storage_restore: the shared storage's server
    QDEVICE = enum.auto()  # qnetd_lost / qnetd_back: a QDevice arbiter (corosync-qnetd)
    UPGRADE = enum.auto()  # upgrade: the node's PVE to the lab's next version, rebooted


LabEventSink = Callable[[str, str, str], None]  # (node, event, detail)


@runtime_checkable
class Lab(Protocol):
    """What every lab backend provides. Every verb is a method of every lab; a lab without
    a verb's Capability raises ``unsupported(...)`` (the harness checks the flag first)."""

    name: str
    kind: str
    capabilities: Capability

    def nodes(self) -> tuple[LabNode, ...]: ...

    def start(self) -> None:
        """Boot every node; returns when each node answers SSH. The cluster is formed
        only when ``prepared()`` says so."""

    def prepared(self) -> bool:
        """True when the started nodes already form the cluster (an existing cluster, or
        a lab reverted to its `ready` snapshot): the harness then waits for the whole
        cluster instead of forming it."""

    def close(self) -> None:
        """Leave nothing behind. Safe twice and after a partial start."""

    def power_cut(self, node: str) -> None:
        """Abrupt loss of power: no graceful step."""

    def power_on(self, node: str) -> None:
        """Boot a node that is off; its services start by themselves."""

    def is_powered(self, node: str) -> bool: ...

    def link_down(self, node: str) -> None:
        """Cut the node's network (it keeps running). Capability.PARTITION."""

    def link_up(self, node: str) -> None:
        """Give a node cut by link_down its network back. Capability.PARTITION."""

    def shutdown(self, node: str) -> None:
        """The ACPI power button: PVE shuts the node down cleanly. Capability.SHUTDOWN."""

    def reset(self, node: str) -> None:
        """The reset button: no shutdown, the node boots again at once. Capability.RESET."""

    def freeze(self, node: str) -> None:
        """Stop the node's CPUs; it keeps its state. Capability.FREEZE."""

    def thaw(self, node: str) -> None:
        """Let a frozen node run on. Capability.FREEZE."""

    def storage_outage(self) -> None:
        """The shared storage's server stops answering, for every node at once (an NFS
        hard mount stalls). Capability.STORAGE."""

    def storage_restore(self) -> None:
        """The shared storage's server answers again. Capability.STORAGE."""

    def qnetd_address(self) -> str | None:
        """Where the lab's QDevice arbiter (corosync-qnetd, TCP 5403) listens, for `pvecm
        qdevice setup`; None when the lab runs none."""

    def qnetd_lost(self) -> None:
        """The QDevice arbiter becomes unreachable for every node. Capability.QDEVICE."""

    def qnetd_back(self) -> None:
        """The QDevice arbiter is reachable again. Capability.QDEVICE."""

    def upgrade(self, node: str) -> str:
        """Upgrade the node's PVE to the lab's next version and reboot it into that
        version; returns when the reboot has been started (the node may still be down),
        with what the upgrade printed. The node must be empty of HA guests first (the
        caller puts it in maintenance). The caller then waits for the node to answer on
        a new boot id. Capability.UPGRADE."""

    def save_ready(self) -> None:
        """Take the consistent `ready` cut the next start() reverts to. Capability.SNAPSHOT."""

    def subscribe(self, sink: LabEventSink) -> None:
        """Report the power events the lab sees by itself (sink(node, event, detail)).
        Capability.EVENTS."""

    def keeps_changes(self) -> bool:
        """True when what a scenario makes (its test guest) outlives the lab, as on an
        existing cluster: the harness then removes it afterwards."""

    def join_password(self) -> str | None:
        """The nodes' root password for `pvecm add --fingerprint` (password on stdin);
        None: the nodes trust each other's root SSH key, so joins use `--use_ssh`."""

    def shared_storage(self) -> SharedStorage:
        """The NFS export the HA scenarios put their guest on."""

    def guest_recipe(self, vmid: int) -> GuestRecipe:
        """Template, address and write log of the test guest with this VMID."""

    def describe(self) -> dict[str, str]:
        """Facts for reports: lab kind, addresses, versions."""

    def fault_refusal(self) -> str | None:
        """Why no fault may be set on this lab's nodes now (None: faults are allowed).
        An existing cluster refuses until its interlock is armed; the in-node faults
        (partitions, daemons, clocks, storage) ask this before touching a node."""


def unsupported(kind: str, verb: str, capability: Capability) -> UnsupportedFault:
    """The error of a lab (of this kind) asked for a verb it has no Capability for."""
    return UnsupportedFault(f"the {kind} lab cannot {verb.replace('_', ' ')}",
                            hint="skip this scenario on this lab, or run it on a lab "
                                 f"with {capability.name} (see README, 'Labs')")


# The optional verbs and the Capability each needs: the one table of them.
VERB_CAPABILITY: dict[str, Capability] = {
    "link_down": Capability.PARTITION, "link_up": Capability.PARTITION,
    "shutdown": Capability.SHUTDOWN, "reset": Capability.RESET,
    "freeze": Capability.FREEZE, "thaw": Capability.FREEZE,
    "save_ready": Capability.SNAPSHOT, "subscribe": Capability.EVENTS,
    "storage_outage": Capability.STORAGE, "storage_restore": Capability.STORAGE,
    "qnetd_lost": Capability.QDEVICE, "qnetd_back": Capability.QDEVICE,
    "upgrade": Capability.UPGRADE,
}


class RefusesWhatItLacks:
    """Base of the lab backends: each optional verb refuses, naming its Capability. A lab
    overrides the verbs of the capabilities it declares (tests/unit/test_lab_protocol.py
    checks that it does, and that what it does not declare stays refused)."""

    kind: str

    def fault_refusal(self) -> str | None:
        return None  # a lab the harness built for itself: every fault is allowed

    def _refuse(self, verb: str) -> UnsupportedFault:
        return unsupported(self.kind, verb, VERB_CAPABILITY[verb])

    def link_down(self, node: str) -> None:
        raise self._refuse("link_down")

    def link_up(self, node: str) -> None:
        raise self._refuse("link_up")

    def shutdown(self, node: str) -> None:
        raise self._refuse("shutdown")

    def reset(self, node: str) -> None:
        raise self._refuse("reset")

    def freeze(self, node: str) -> None:
        raise self._refuse("freeze")

    def thaw(self, node: str) -> None:
        raise self._refuse("thaw")

    def storage_outage(self) -> None:
        raise self._refuse("storage_outage")

    def storage_restore(self) -> None:
        raise self._refuse("storage_restore")

    def qnetd_address(self) -> str | None:
        return None  # no QDevice arbiter of the lab's own

    def qnetd_lost(self) -> None:
        raise self._refuse("qnetd_lost")

    def qnetd_back(self) -> None:
        raise self._refuse("qnetd_back")

    def upgrade(self, node: str) -> str:
        raise self._refuse("upgrade")

    def save_ready(self) -> None:
        raise self._refuse("save_ready")

    def subscribe(self, sink: LabEventSink) -> None:
        raise self._refuse("subscribe")
