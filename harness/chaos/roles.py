"""A schedule's roles resolved to nodes, from the cluster as it is when a fault begins.

``master``: the CRM master `ha-manager status` names; ``guest-node``: a node running one
of the run's HA guests; ``non-master``: any node but the master; ``any``: any node;
``minority``: as many nodes as the cluster can lose and stay quorate (at least one).
Nodes already under a fault are never chosen. The item's seeded ``pick`` chooses among
the nodes that fit, so the same schedule on the same cluster state aims at the same
nodes.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence

from harness.chaos.generate import group_size


def candidates(role: str, names: Sequence[str], master: str | None,
               placements: Mapping[str, str], busy: Collection[str] = ()) -> list[str]:
    free = sorted(n for n in names if n not in busy)
    if role == "master":
        return [master] if master in free else []
    if role == "guest-node":
        return sorted({n for n in placements.values() if n in free})
    if role == "non-master":
        return [n for n in free if n != master]
    return free  # any, minority


def resolve(role: str, pick: int, names: Sequence[str], master: str | None,
            placements: Mapping[str, str], busy: Collection[str] = ()
            ) -> tuple[str, ...] | None:
    """The nodes ``role`` names now, or None when no node fits (no master, every guest's
    node busy, ...)."""
    fits = candidates(role, names, master, placements, busy)
    size = group_size(role, len(names))
    if len(fits) < size or not fits:
        return None
    if role == "minority":
        return tuple(sorted(random.Random(pick).sample(fits, size)))
    return (fits[pick % len(fits)],)
