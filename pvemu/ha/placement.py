"""Choosing a node for a service (pve-model.md §9; Manager.pm `select_service_node`).

PVE 8 (flavour 8) uses groups.cfg: a group lists `node[:prio]`; unrestricted groups add
every other online node at priority -1; `nofailback` keeps a service where it is. PVE 9
(flavour 9) uses node-affinity rules: `strict` is restricted and `failback` is a property
of the resource. A PVE 9 CRM places groups.cfg's groups as the rules it makes of them
(pvemu/ha/group_migration.py).

Preferences: `none` (stay put when allowed), `best-score` (recovery: the lowest score
wins, no current-node bonus), `try-next` (relocation after a failed start: skip the
failed nodes and take the next node after the current one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PREFERENCES = ("none", "best-score", "try-next")


def parse_nodes(nodes: Mapping[str, int] | str | Iterable[str]) -> dict[str, int]:
    """`node2:2,node3` / ["node2:2"] / {"node2": 2} -> {node: prio} (prio default 0)."""
    if isinstance(nodes, Mapping):
        return {str(n): int(p) for n, p in nodes.items()}
    entries = nodes.split(",") if isinstance(nodes, str) else list(nodes)
    result = {}
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        name, _, prio = entry.partition(":")
        result[name] = int(prio) if prio else 0
    return result


def _truthy(value: object) -> bool:
    return str(value).lower() not in ("0", "", "false", "none", "no")


def allowed_nodes(
    flavour: int, groups: Mapping[str, dict], rules: Mapping[str, dict], sid: str,
    service_conf: Mapping, online: Iterable[str],
) -> tuple[dict[str, int], bool]:
    """(online allowed node -> priority, nofailback) for one service (§9.1, §9.2)."""
    online = sorted(online)
    members: dict[str, int] | None = None
    restricted = False
    if flavour >= 9:
        nofailback = not _truthy(service_conf.get("failback", 1))
        for name in sorted(rules):
            rule = rules[name]
            if rule.get("type", "node-affinity") != "node-affinity":
                continue
            if _truthy(rule.get("disable", 0)):
                continue
            resources = rule.get("resources", [])
            if isinstance(resources, str):
                resources = [r.strip() for r in resources.split(",")]
            if sid in resources:
                members = parse_nodes(rule.get("nodes", {}))
                restricted = _truthy(rule.get("strict", 0))
                break
    else:
        group = groups.get(service_conf.get("group") or "")
        nofailback = bool(group) and _truthy(group.get("nofailback", 0))
        if group:
            members = parse_nodes(group.get("nodes", {}))
            restricted = _truthy(group.get("restricted", 0))
    if members is None:  # no group/rule: every online node at priority 0
        return {n: 0 for n in online}, nofailback
    result = {n: p for n, p in members.items() if n in online}
    if not restricted:
        for n in online:
            result.setdefault(n, -1)
    return result, nofailback


def select_service_node(
    *, flavour: int, groups: Mapping[str, dict], rules: Mapping[str, dict],
    usage: Mapping[str, int], sid: str, service_conf: Mapping, current_node: str,
    preference: str = "none", tried_nodes: Iterable[str] = (),
    maintenance_fallback: str | None = None,
) -> str | None:
    """The node a service should be on, or None when no allowed node is online.

    `usage` maps every *online* node to its score (counted HA services, §9.1)."""
    assert preference in PREFERENCES, preference
    allowed, nofailback = allowed_nodes(flavour, groups, rules, sid, service_conf, usage)
    if not allowed:
        return None
    if preference == "none" and nofailback and current_node in allowed:
        return current_node
    top = max(allowed.values())
    top_nodes = {n for n, p in allowed.items() if p == top}
    if preference == "try-next":
        top_nodes -= set(tried_nodes)
    nodes = sorted(top_nodes, key=lambda n: (usage.get(n, 0), n))
    if maintenance_fallback is not None and maintenance_fallback in nodes:
        return maintenance_fallback
    if not nodes:
        return None
    found = nodes.index(current_node) if current_node in nodes else None
    if preference == "try-next":
        if found is not None and found < len(nodes) - 1:
            return nodes[found + 1]
        return nodes[0]
    if preference == "none" and found is not None:
        return current_node
    return nodes[0]
