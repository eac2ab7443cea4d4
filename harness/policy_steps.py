"""Steps the maintenance, shutdown-policy and failback scenarios share: put the guest on a
node that is not the CRM master, wait for a whole and calm cluster, find on the timeline
when a node left or rejoined the membership, and tell which way the cluster configures
HA placement (PVE 8 groups or PVE 9 node-affinity rules).

Lab-agnostic: PVE's own commands over SSH (harness/ha_admin.py, harness/ha_guest.py) and
the background watchers' timeline.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness import ha_admin
from harness.cluster import Cluster
from harness.events import Event
from harness.ha_guest import HaGuest
from harness.metrics import quorum_views_after
from harness.timeline import Timeline
from harness.waits import NotYet, wait_until

MEMBERSHIP_TIMEOUT_S = 60.0  # corosync's own timers (token + consensus ~ 8 s): unscaled


def away_from_master(cluster: Cluster, guest: HaGuest, *, timeout_s: float) -> tuple[str, str]:
    """(the guest's node, the CRM master), the guest first migrated (`ha-manager migrate`)
    to the first other node in name order if it ran on the master: a node that is not
    the master fails over as pve-model §10.1/§10.3 describe, the master as §10.2."""
    master = wait_until("a CRM master", lambda: ha_admin.master_node(cluster),
                        timeout_s=timeout_s)
    # `starting` until the LRM reported it running (pve-model §4.3): one LRM round
    placement = wait_until(f"{guest.sid} started somewhere", lambda: (
        (p := guest.placement()) is not None and p[0] is not None and p[1] == "started"
        and p or NotYet(p)), timeout_s=timeout_s)
    node = placement[0]
    if node == master:
        node = next(n for n in cluster.names if n != master)
        guest.migrate(node, timeout_s=timeout_s)
    return node, master


def wait_calm(cluster: Cluster, guest: HaGuest, *, timeout_s: float) -> None:
    """Every node answers SSH and sees the whole cluster quorate; every LRM reports."""
    for node in cluster.nodes():
        node.wait_reachable(timeout_s=timeout_s)
        cluster.wait_whole_view(node.name, timeout_s=timeout_s)
    guest.wait_lrms_reporting(timeout_s=timeout_s)


def _membership(timeline: Timeline, after: Event, survivors: Iterable[str], test) -> Event | None:
    return next((e for e in quorum_views_after(timeline, after, survivors)
                 if test(e.payload.members)), None)  # type: ignore[union-attr]


def left_membership(timeline: Timeline, node: str, after: Event, survivors: Iterable[str]
                    ) -> Event | None:
    """The first view (quorum watcher) of any survivor after ``after`` without ``node``."""
    return _membership(timeline, after, survivors, lambda members: node not in members)


def rejoined(timeline: Timeline, node: str, after: Event, survivors: Iterable[str]
             ) -> Event | None:
    """The first view of any survivor after ``after`` with ``node`` a member again."""
    return _membership(timeline, after, survivors, lambda members: node in members)


def wait_seen(what: str, find, *, timeout_s: float = MEMBERSHIP_TIMEOUT_S) -> Event:
    """Wait (bounded) until ``find()`` gives an Event of the timeline."""
    return wait_until(what, lambda: find() or NotYet("not on the timeline yet"),
                      timeout_s=timeout_s, interval_s=0.2)


# -- groups (PVE 8) or node-affinity rules (PVE 9) -------------------------------------------
GROUPS, RULES = "groups", "rules"


def placement_config(cluster: Cluster) -> tuple[str | None, str]:
    """(GROUPS or RULES or None, why), from every node's `pveversion`: HA groups up to
    PVE 8, node-affinity rules from PVE 9 (pve-model §9.2; pve-operations §3.4: on PVE 9
    rules replace groups once every node runs 9). A cluster of mixed majors has both
    half-way (groups until migrated): None, so a scenario skips with the reason."""
    majors = {n.name: n.pve_version().major for n in cluster.nodes()}
    found = sorted(set(majors.values()))
    described = ", ".join(f"{n} {m}" for n, m in sorted(majors.items()))
    if len(found) == 1 and found[0] < 9:
        return GROUPS, f"every node runs PVE {found[0]} ({described}): HA groups"
    if len(found) == 1:
        return RULES, f"every node runs PVE {found[0]} ({described}): node-affinity rules"
    return None, (f"the nodes run PVE {described}: neither groups (up to PVE 8) nor rules "
                  "(every node on 9) apply to the whole cluster")
