"""The shared NFS storage the HA guest lives on, added with the nodes' own commands.

`pvesm add nfs` on one node (storage.cfg is cluster-wide), then a bounded wait until
`pvesm status` shows it active on every node. Idempotent: a cluster that has it already
(an existing cluster, a lab back at its `ready` snapshot) is left as it is.
"""

from __future__ import annotations

from harness.cluster import Cluster, Node
from harness.lab_api import SharedStorage
from harness.pve.storage import parse_pvesm_status
from harness.waits import NotYet, wait_until

COMMAND_TIMEOUT_S = 30.0
CONTENT = "rootdir,images,vztmpl,snippets"  # the guest's disk, template and hookscript


def storage_state(node: Node, storage_id: str) -> str | None:
    """The storage's status column in `pvesm status` on ``node`` (`active`, ...); None
    when the node does not list it. Listing activates it, as pvestatd would."""
    out = node.check("pvesm", "status", timeout_s=COMMAND_TIMEOUT_S)
    return parse_pvesm_status(out).get(storage_id)


def add_shared_storage(cluster: Cluster, storage: SharedStorage, *, on: str,
                       timeout_s: float = 30.0) -> None:
    """The storage added (from ``on``) unless listed already, then active on every node."""
    node = cluster.node(on)
    if storage_state(node, storage.storage_id) is None:
        node.check("pvesm", "add", "nfs", storage.storage_id, "--server", storage.server,
                   "--export", storage.export, "--content", CONTENT,
                   timeout_s=COMMAND_TIMEOUT_S)
    for each in cluster.nodes():
        wait_until(f"storage {storage.storage_id} active on {each.name}",
                   lambda each=each: (s := storage_state(each, storage.storage_id))
                   == "active" or NotYet(s), timeout_s=timeout_s)
