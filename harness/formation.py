"""Forming the cluster with the nodes' own commands, the same way on every lab.

`pvecm create` on the first node, then `pvecm add` on each other node, by one of PVE's
two join paths: with the first node's root password (read from stdin when it is not a
terminal) and its API certificate's fingerprint, when the lab gives a password (real PVE
installed with a password, the libvirt lab); or `--use_ssh` (root SSH between nodes, the
embedded lab).

Each step of the formation is one INFO line on the ``pvechaos.lab`` logger.
"""

from __future__ import annotations

import logging
import time

from harness.cluster import Cluster, Node
from harness.errors import CommandError, LabError, PvechaosError
from harness.lab_api import Capability
from harness.pve.certs import api_fingerprint
from harness.pve.cluster_fs import ETC_PVE
from harness.shared_storage import add_shared_storage
from harness.waits import NotYet, wait_until

log = logging.getLogger("pvechaos.lab")


def form_cluster(cluster: Cluster, name: str = "pvechaos", *, timeout_s: float = 60.0,
                 root_password: str | None = None) -> None:
    started = time.monotonic()
    first, *others = cluster.nodes()
    first.check("pvecm", "create", name, "--link0", first.cluster_address, timeout_s=60)
    log.info("cluster %s created on %s (link0 %s)", name, first.name, first.cluster_address)
    for node in others:
        join(first, node, timeout_s, root_password=root_password)
        log.info("%s joined cluster %s (link0 %s, %s)", node.name, name, node.cluster_address,
                 "with the root password" if root_password is not None else "--use_ssh")
    wait_for_whole_cluster(cluster, timeout_s=timeout_s)
    log.info("cluster %s formed: %d nodes quorate in %.1f s", name, len(cluster.names),
             time.monotonic() - started)


def bring_up(cluster: Cluster, name: str, *, wait_s: float = 120.0) -> None:
    """The lab's started nodes as one cluster, ready for the scenarios. A lab that says
    the cluster is there already (``prepared()``: an existing cluster, or a lab back at
    its `ready` snapshot) is only waited for; otherwise the cluster is formed, and a lab
    that can take snapshots gets the shared storage added and its `ready` snapshot taken.

    `ready` holds what every scenario shares: the cluster and its shared storage. The
    guest is not in it: each scenario makes its own as a step of its story (on a chosen
    node, on a non-master, made to fail, or none at all)."""
    lab = cluster.lab
    if lab.prepared():
        started = time.monotonic()
        wait_for_whole_cluster(cluster, timeout_s=wait_s)
        saved = lab.describe().get("lab.ready")  # a lab that booted a saved formed cluster
        log.info("%s lab %s: %s; all %d nodes quorate in %.1f s", lab.kind, lab.name,
                 f"booted the formed cluster (ready state from {saved})" if saved else
                 "its cluster is there already", len(cluster.names),
                 time.monotonic() - started)
        return
    form_cluster(cluster, name, root_password=lab.join_password())
    if Capability.SNAPSHOT in lab.capabilities:
        storage = lab.shared_storage()
        add_shared_storage(cluster, storage, on=cluster.names[0])
        log.info("shared storage %s (%s:%s) active on every node", storage.storage_id,
                 storage.server, storage.export)
        lab.save_ready()
        wait_for_whole_cluster(cluster, timeout_s=wait_s)  # a lab may power-cycle to save
        log.info("%s lab %s: `ready` snapshot saved", lab.kind, lab.name)


def join_options(first: Node, root_password: str | None) -> tuple[tuple[str, ...], str | None]:
    """The `pvecm add` options and stdin of the join path the lab allows."""
    if root_password is None:
        return ("--use_ssh",), None
    info = first.check("pvenode", "cert", "info", "--output-format", "json", timeout_s=30)
    return ("--fingerprint", api_fingerprint(info)), root_password + "\n"


def join(first: Node, node: Node, timeout_s: float, tries: int = 3, *,
         root_password: str | None = None) -> None:
    """`pvecm add` on node. The first node takes joins only while its /etc/pve is
    writable (quorate): after create, and after each join until the new member is
    counted; a join refused for "no quorum" (a quorum flap right after the check) is
    tried again, at most ``tries`` times."""
    for attempt in range(1, tries + 1):
        wait_until(f"{first.name}'s {ETC_PVE} to accept writes before {node.name} joins",
                   lambda: first.can_write_pve().rc == 0 or NotYet("read-only"),
                   timeout_s=timeout_s, interval_s=0.25)
        options, stdin = join_options(first, root_password)
        boot = node.boot_id()
        result = node.run("pvecm", "add", first.cluster_address, "--link0",
                          node.cluster_address, *options, timeout_s=120, stdin=stdin)
        if result.rc == 0:
            return
        _reset_during(node, boot, result.command)
        if "no quorum" not in result.stderr or attempt == tries:
            raise CommandError(node.name, result.command, result.rc, result.stdout,
                               result.stderr)


def _reset_during(node: Node, boot: str, command: str) -> None:
    """Raise a LabError naming it when ``node`` reset (or went down) while ``command`` ran:
    its exit status then says nothing of the command (-1: killed by the reset)."""
    seen = node.boot_changed(boot)
    if seen is not None:
        raise LabError(f"{node.name} reset or went down during `{command}`: {seen[:60]}",
                       hint=f"{node.name}'s logs say why (journalctl; a watchdog reset, or "
                       "lost power)")


def wait_for_whole_cluster(cluster: Cluster, *, timeout_s: float) -> None:
    """Every node quorate, seeing every node as a member, and taking writes to /etc/pve.

    `pvecm status` is corosync's view; pmxcfs learns quorum from corosync by itself and,
    when it started before corosync answered, tries its quorum service again only every
    5 s (pmxcfs `loop.c` restarts a failed service after more than 5 s). Until then every
    guest or HA command says `cluster not ready - no quorum?`, as a booted formed lab at
    timescale 1 showed; so the cluster is whole once each node's /etc/pve takes a write."""
    count = len(cluster.names)

    def whole() -> bool | NotYet:
        for node in cluster.nodes():
            try:
                status = node.quorum(timeout_s=5)
            except PvechaosError as exc:
                return NotYet(f"{node.name}: {exc}")
            if not status.quorate or status.nodes != count:
                return NotYet(f"{node.name} quorate={status.quorate} members={status.nodes}")
        for node in cluster.nodes():
            said = node.can_write_pve()
            if said.rc != 0:
                return NotYet(f"{node.name}: /etc/pve takes no write yet: "
                              f"{(said.stderr or said.stdout).strip()[-200:]}")
        return True

    wait_until(f"all {count} nodes quorate with {count} members and /etc/pve writable",
               whole, timeout_s=timeout_s, interval_s=0.5)
