"""A story's plan, derived from the cluster it runs on instead of assumed: which nodes lose
power in which order, which cut loses quorum, what `pvecm expected` the survivors need,
and which node HA should pick for a recovery. Lab-agnostic: the inputs are node names,
the votes read from `pvecm status` and HA's own status.

The cut order: --story-nodes FIRST,SECOND,SURVIVOR when given (FIRST and SECOND are cut
first and second, SURVIVOR is never cut), else the nodes in name order with the last one
as SURVIVOR; on more than three nodes the other nodes are cut after SECOND in name
order. The quorum story cuts along that order until the survivors are a minority. The
HA story cuts the node HA recovered its guest to second (``after_recovery``).

The arithmetic is corosync votequorum's as PVE configures it (pve-operations.md §2.1,
§2.3; pve-model.md §14.1): every node has its `quorum_votes` (1 unless `pvecm add
--votes`), expected votes are their sum, quorum = max(floor(expected/2)+1,
floor(total/2)+1). `pvecm expected N` is refused below the current total votes, so the
survivors get exactly their own votes.

HA's choice (pve-model.md §9.1, §9.2: the "basic" scheduler, PVE's default): only online
nodes; with a group (PVE 8) or a node-affinity rule (PVE 9) only the highest priority
class of its online nodes, other online nodes at priority -1 unless it is restricted
(strict); among those the fewest counted HA services, ties by node name. The `static`
CRS mode scores by CPU and memory, for which the model gives no rule: not planned here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.errors import PvechaosError
from harness.pve import QuorumStatus, ServiceLine

MIN_NODES = 3  # first cut, second cut, survivor; PVE's minimum for HA as well


class PlanUnsupported(PvechaosError):
    """The cluster lacks the shape a story needs; the message says why (a skip reason)."""


def quorum_of(expected_votes: int, total_votes: int | None = None) -> int:
    """votequorum's quorum: max(floor(expected/2)+1, floor(total/2)+1) (pve-model §14.1)."""
    if expected_votes < 1:
        raise ValueError(f"expected votes must be >= 1, got {expected_votes}")
    total = expected_votes if total_votes is None else total_votes
    return max(expected_votes // 2 + 1, total // 2 + 1)


def cut_order(names: Iterable[str], chosen: Sequence[str] | None = None) -> tuple[str, ...]:
    """Every node, in the order the stories cut them; the last one is SURVIVOR.

    ``chosen`` is --story-nodes' FIRST, SECOND, SURVIVOR (already checked against the
    cluster by harness/options.py); without it the nodes in name order."""
    nodes = sorted(set(names))
    if len(nodes) < MIN_NODES:
        raise PlanUnsupported(
            f"the cluster has {len(nodes)} node(s) ({', '.join(nodes) or 'none'}); the "
            f"stories need at least {MIN_NODES}: a first and a second node to cut and a "
            "survivor")
    if chosen is None:
        return tuple(nodes)
    first, second, survivor = chosen
    unknown = [n for n in chosen if n not in nodes]
    if unknown:
        raise PlanUnsupported(f"--story-nodes names {', '.join(unknown)}, not a node of "
                              f"this cluster ({', '.join(nodes)})")
    rest = [n for n in nodes if n not in chosen]
    return (first, second, *rest, survivor)


def after_recovery(order: Sequence[str], second: str) -> tuple[str, ...]:
    """``order`` (``cut_order``) once HA chose where the first cut node's guest comes back:
    that node, ``second``, is cut second (the HA story cuts the guest's node again). When
    HA chose the planned survivor, the last of the other nodes survives instead."""
    first, *middle, survivor = order
    if second == first or second not in order:
        raise ValueError(f"{second!r} is not a node the guest can come back on "
                         f"({', '.join(order[1:])})")
    if second == survivor:
        survivor = middle.pop()
    else:
        middle.remove(second)
    return (first, second, *middle, survivor)


@dataclass(frozen=True)
class Cut:
    """One power cut of the quorum story and what corosync must answer after it."""

    node: str
    survivors: tuple[str, ...]  # the nodes still up, in name order
    survivor_votes: int
    quorate: bool  # the survivors keep quorum


@dataclass(frozen=True)
class QuorumPlan:
    """Power cuts until the survivors lose quorum, then `pvecm expected` on them."""

    votes: tuple[tuple[str, int], ...]  # (node, quorum_votes), in name order
    expected_votes: int  # the cluster's, as corosync reports it whole
    quorum: int
    cuts: tuple[Cut, ...]  # the last one loses quorum, all before it keep it
    survivor: str  # where `pvecm expected` runs (SURVIVOR)

    @property
    def keeping(self) -> tuple[Cut, ...]:
        """The cuts after which the survivors stay quorate (none when one cut suffices)."""
        return self.cuts[:-1]

    @property
    def losing(self) -> Cut:
        """The cut that leaves the survivors a minority."""
        return self.cuts[-1]

    @property
    def survivors(self) -> tuple[str, ...]:
        return self.losing.survivors

    @property
    def cut_nodes(self) -> tuple[str, ...]:
        return tuple(c.node for c in self.cuts)

    @property
    def expected_after_loss(self) -> int:
        """What `pvecm expected` gets on the survivors: their votes (a lower value is
        refused by votequorum, pve-operations §2.3)."""
        return self.losing.survivor_votes

    @property
    def quorum_after_expected(self) -> int:
        return quorum_of(self.expected_after_loss)

    def describe(self) -> str:
        steps = [f"cut {c.node}: {', '.join(c.survivors)} hold {c.survivor_votes} of "
                 f"{self.expected_votes} votes, quorum {self.quorum}: "
                 f"{'quorate' if c.quorate else 'quorum lost'}" for c in self.cuts]
        return "; ".join(steps) + (f"; pvecm expected {self.expected_after_loss} on "
                                   f"{self.survivor}")


def plan_quorum(votes: Mapping[str, int], expected_votes: int,
                order: Sequence[str]) -> QuorumPlan:
    """The quorum story on a cluster whose nodes have ``votes`` (node -> quorum_votes) and
    whose corosync expects ``expected_votes``, cutting along ``order`` (``cut_order``)."""
    if sorted(order) != sorted(votes):
        raise ValueError(f"the cut order {list(order)} does not name the cluster's nodes "
                         f"{sorted(votes)}")
    bad = {n: v for n, v in votes.items() if v < 1}
    if bad:
        raise PlanUnsupported(f"nodes without a vote ({bad}): the quorum story cuts voting "
                              "nodes only")
    node_votes = sum(votes.values())
    if expected_votes != node_votes:
        raise PlanUnsupported(
            f"expected votes {expected_votes} are not the nodes' {node_votes}: a QDevice "
            "(or a changed expected_votes) holds the rest, and its vote moves between "
            "partitions; the QDevice story covers that shape")
    quorum = quorum_of(expected_votes)
    survivor = order[-1]
    up = dict(votes)
    cuts = []
    for node in order[:-1]:
        del up[node]
        held = sum(up.values())
        cuts.append(Cut(node, tuple(sorted(up)), held, held >= quorum))
        if held < quorum:
            break
    else:
        raise PlanUnsupported(f"{survivor} alone holds {votes[survivor]} of "
                              f"{expected_votes} votes, quorum {quorum}: no cut loses quorum")
    return QuorumPlan(tuple(sorted(votes.items())), expected_votes, quorum, tuple(cuts),
                      survivor)


def votes_from_status(status: QuorumStatus, names: Iterable[str],
                      name_of=lambda member: member) -> dict[str, int]:
    """node -> votes from a whole cluster's `pvecm status` (members are listed by address:
    ``name_of`` maps them to node names, as Cluster.name_of does)."""
    votes = {name_of(m.name): m.votes for m in status.members}
    missing = sorted(set(names) - set(votes))
    if missing:
        raise PvechaosError(
            f"`pvecm status` lists no votes for {', '.join(missing)}: not members now",
            hint="plan the story on a whole cluster (every node a member), before any cut")
    return {n: votes[n] for n in sorted(names)}


def plan_from_status(status: QuorumStatus, order: Sequence[str],
                     name_of=lambda member: member) -> QuorumPlan:
    """The quorum plan of a whole cluster cut along ``order`` (``cut_order``), from one
    node's `pvecm status`."""
    return plan_quorum(votes_from_status(status, order, name_of), status.expected_votes,
                       order)


# -- HA's recovery node (pve-model.md §9.1) ------------------------------------------------
# CRM states counted on a service's node by the basic scheduler; migrate and relocate count
# on source and target, but `ha-manager status` does not show the target
COUNTED = frozenset({"started", "request_stop", "fence", "freeze", "error", "recovery"})
MOVING = frozenset({"migrate", "relocate"})


@dataclass(frozen=True)
class Affinity:
    """An HA group (PVE 8: nodes with priorities, ``restricted``) or a node-affinity rule
    (PVE 9: the same, ``strict``)."""

    priorities: Mapping[str, int]  # node -> priority (0 by default; higher is preferred)
    strict: bool = False  # restricted group / strict rule: members only


def load_of(services: Iterable[ServiceLine]) -> dict[str, int]:
    """node -> number of HA services the basic scheduler counts there, from HA's status
    (the CRM state of /cluster/ha/status/current where known, else the verbose state)."""
    load: dict[str, int] = {}
    for s in services:
        state = s.crm_state or s.state
        if state in MOVING:
            raise PvechaosError(
                f"{s.sid} is in {state}: its target counts too, and HA's status does not "
                "show it", hint="plan once no service migrates or relocates")
        if state == "starting" and s.crm_state is None:
            raise PvechaosError(
                f"{s.sid} shows 'starting', which is either CRM state stopped (not counted) "
                "or started (counted)", hint="read /cluster/ha/status/current, which "
                "gives the CRM state")
        if state in COUNTED and s.node:
            load[s.node] = load.get(s.node, 0) + 1
    return load


def recovery_node(online: Iterable[str], load: Mapping[str, int],
                  affinity: Affinity | None = None) -> str | None:
    """The node HA recovers a service to; None when no allowed node is online (the
    service stays in ``recovery``). ``online``: the nodes HA sees online (not the dead
    one, not in maintenance)."""
    up = set(online)
    if affinity is None:
        classes = dict.fromkeys(up, 0)
    else:
        classes = {n: p for n, p in affinity.priorities.items() if n in up}
        if not affinity.strict:
            classes.update({n: -1 for n in up - set(classes)})
    if not classes:
        return None
    top = max(classes.values())
    return min((n for n, p in classes.items() if p == top), key=lambda n: (load.get(n, 0), n))
