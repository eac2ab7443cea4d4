"""Storage faults: the shared NFS storage stops answering, for one node or for all.

What PVE does (pve-faults.md §8): nothing in HA watches storage (§8.1, pve-ha-manager
`src/PVE/HA/*`), so a storage fault changes no HA state by itself; a guest on it stalls
in I/O but stays `started`; the NFS mount is `hard` by default, so its I/O waits for the
server indefinitely (nfs(5)); `pvesm status` shows the storage inactive (§8.2,
pve-storage `NFSPlugin.pm` `check_connection`, `Storage.pm` `storage_info`).

Two verbs:
- ``storage_cut(node)``: in-node, every lab (real PVE too): nftables, in its own table
  ``inet pvechaos_storage``, drops the node's NFS traffic to and from the lab's shared
  storage server (``Lab.shared_storage().server``): TCP and UDP ports 2049 (nfsd) and 111
  (rpcbind, which `showmount` asks first). Only those ports: the harness's SSH to the node
  may come from the server's own address (the embedded lab's host). Guess: an NFSv3
  mount's mountd/lockd traffic (dynamic ports) is not cut; data I/O, which goes to 2049,
  is. One cut per node at a time (the undo removes the table).
- ``storage_outage()`` / ``storage_restore()``: the lab's server itself stops answering,
  every node at once (Capability.STORAGE; the embedded lab stops its stand-in server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import node_command
from harness.events import FaultBegin, FaultEnd
from harness.lab_api import Capability, unsupported
from harness.node_command import NodeCommand
from harness.steps import step
from harness.timeline import EventKind

if TYPE_CHECKING:
    from harness.faults import Fault

TABLE = "inet pvechaos_storage"
PORTS = "{ 111, 2049 }"  # rpcbind, nfsd (nfs(5))

node_command.SWEEPS[__name__] = f"{{ nft delete table {TABLE} 2>/dev/null || true; }}"
node_command.LEFTOVERS[__name__] = (f"{{ nft list table {TABLE} 2>/dev/null "
                                    "| grep -o 'chain [A-Za-z0-9_]*'; true; }")


def cut_command(server: str) -> NodeCommand:
    """nft rules dropping this node's NFS traffic to and from ``server``."""
    family = "ip6" if ":" in server else "ip"
    rules = (
        f"add table {TABLE}; "
        f"add chain {TABLE} out {{ type filter hook output priority 0; }}; "
        f"add chain {TABLE} in {{ type filter hook input priority 0; }}; "
        f"add rule {TABLE} out {family} daddr {server} meta l4proto {{ tcp, udp }} "
        f"th dport {PORTS} drop; "
        f"add rule {TABLE} in {family} saddr {server} meta l4proto {{ tcp, udp }} "
        f"th sport {PORTS} drop")
    return NodeCommand("storage.cut", f"NFS traffic to {server} dropped",
                       apply=f"nft '{rules}'",
                       undo=f"nft delete table {TABLE} 2>/dev/null || true")


class StorageFaults:
    """Mixin of FaultInjector (harness/faults.py): the storage verbs."""

    def storage_cut(self, node: str) -> Fault:
        """The node can no longer reach the shared storage's server; ended by end()."""
        server = self.lab.shared_storage().server  # type: ignore[attr-defined]
        return self._node_fault(node, cut_command(server))  # type: ignore[attr-defined]

    def storage_outage(self) -> Fault:
        """The shared storage's server stops answering (every node); undone at teardown
        or by storage_restore()."""
        from harness.faults import Effect, Fault, Undo

        lab = self.lab  # type: ignore[attr-defined]
        if Capability.STORAGE not in lab.capabilities:
            raise unsupported(lab.kind, "storage_outage", Capability.STORAGE)
        storage = lab.shared_storage()
        with step(f"storage outage: {storage.server}"):
            lab.storage_outage()
            event = self.timeline.record(  # type: ignore[attr-defined]
                EventKind.FAULT_BEGIN, "harness",
                FaultBegin("storage.outage", storage.server, _detail(storage.storage_id)))
        self._said(f"fault begin: storage.outage of {storage.server}")  # type: ignore[attr-defined]
        self._undo.append(Undo(Effect.STORAGE, storage.server))  # type: ignore[attr-defined]
        return Fault("storage.outage", storage.server, event)

    def storage_restore(self) -> Fault:
        from harness.faults import Effect, Fault

        lab = self.lab  # type: ignore[attr-defined]
        if Capability.STORAGE not in lab.capabilities:
            raise unsupported(lab.kind, "storage_restore", Capability.STORAGE)
        server = lab.shared_storage().server
        event = self._storage_restored(server)
        self._ended(Effect.STORAGE, server)  # type: ignore[attr-defined]
        return Fault("storage.restore", server, event)

    def _storage_restored(self, server: str):
        """Restore the server and record it (also FaultInjector's heal of Effect.STORAGE)."""
        lab = self.lab  # type: ignore[attr-defined]
        with step(f"storage restore: {server}"):
            lab.storage_restore()
            event = self.timeline.record(  # type: ignore[attr-defined]
                EventKind.FAULT_END, "harness",
                FaultEnd("storage.outage", server, _detail(lab.shared_storage().storage_id)))
        self._said(f"fault end: storage.outage of {server}")  # type: ignore[attr-defined]
        return event


def _detail(storage_id: str) -> str:
    return f"server of storage '{storage_id}' stops answering"
