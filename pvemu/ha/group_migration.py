"""PVE 9's HA groups -> rules migration (pve-operations.md §3.4; pve-model.md §9.2).

A PVE 9 CRM (pve-ha-manager >= 5.0.2) that finds groups.cfg does two things:

* every round, **in memory**: each resource of a group gets ``failback`` = not the
  group's ``nofailback``, and each group with at least one resource becomes the
  node-affinity rule ``ha-group-<group>`` (``strict`` = ``restricted``), so placement is
  what the group gave (`Groups.pm` `migrate_groups_to_resources`, `migrate_groups_to_rules`;
  `Manager.pm` `manage`);
* ``GroupMigration.step``, the persistent migration (`try_persistent_group_migration`):
  first tried on the 3rd round after becoming master, then every 6 rounds while groups.cfg
  has groups; each attempt checks the cluster (quorate; every node of the HA node status
  `online`, its LRM active (or idle with nothing active) and in mode active, its
  pve-manager at least 9.0.0~16, read from the version each node publishes), then writes
  rules.cfg, resources.cfg (no ``group``; ``failback 0`` where the group had
  nofailback), and unlinks groups.cfg, in that order. The log lines are PVE's.

A PVE 8 CRM reads groups.cfg as before (pvemu/ha/placement.py).
"""

from __future__ import annotations

import re

from .env import HaEnv
from .node_status import NodeStatus
from .status import count_active_services

MIN_VERSION = "9.0.0~16"  # Manager.pm $HA_RULES_MINVERSION: where the GUI moved to rules
FIRST_ATTEMPT_ROUNDS = 3  # the 3rd round after the Manager is made (becoming master)
COOLDOWN_ROUNDS = 6  # then every 6 rounds ("retry ... in 6 rounds (~ 60 seconds)")
RULE_PREFIX = "ha-group-"

_VERSION = re.compile(r"(\d+)\.(\d+)(?:[.-](\d+))?(?:~(\d+))?")


def version_key(version: str) -> tuple[int, int, int, int, int] | None:
    """A pve-manager version as a sortable key, Debian's tilde sorting first: 9.0.0~16 <
    9.0.0 < 9.0.1; the old `8.4-1` form is 8.4.1 (PVE::HA::Tools::has_min_version accepts
    both, pve-operations.md §3.4). None for what is no version."""
    match = _VERSION.fullmatch(version.strip())
    if match is None:
        return None
    major, minor, patch, tilde = match.groups()
    return (int(major), int(minor), int(patch or 0), 0 if tilde is not None else 1,
            int(tilde or 0))


def has_min_version(version: str, minimum: str = MIN_VERSION) -> bool:
    have, need = version_key(version), version_key(minimum)
    return have is not None and need is not None and have >= need


# -- in memory, every round -----------------------------------------------------------
def groups_to_resources(groups: dict, resources: dict) -> None:
    """`migrate_groups_to_resources`: a grouped resource's failback from its group."""
    for cd in resources.values():
        group = cd.get("group")
        if group:
            cd["failback"] = int(not int((groups.get(group) or {}).get("nofailback", 0)))


def groups_to_rules(rules: dict, groups: dict, resources: dict) -> dict:
    """`migrate_groups_to_rules`: ``rules`` plus one `ha-group-<group>` node-affinity rule
    per existing group that has resources, appended in group-name order (PVE: hash order,
    unverified). ``rules`` itself is left as it was."""
    members: dict[str, list[str]] = {}
    for sid in sorted(resources):
        group = resources[sid].get("group")
        if group:
            members.setdefault(group, []).append(sid)
    out = dict(rules)
    for group in sorted(members):
        if group not in groups:
            continue  # a resource naming a group that does not exist
        g = groups[group]
        out[RULE_PREFIX + group] = {
            "type": "node-affinity",
            "comment": g.get("comment") or f"Generated from HA group '{group}'.",
            "resources": members[group],
            "nodes": dict(sorted(dict(g.get("nodes") or {}).items())),
            "strict": int(g.get("restricted", 0) or 0),
        }
    return out


def in_memory(env: HaEnv, resources: dict) -> dict:
    """What a PVE 9 CRM places by this round: rules.cfg with the groups merged in (the
    resources' failback set from their groups)."""
    groups = env.read_group_config() or {}
    groups_to_resources(groups, resources)
    return groups_to_rules(env.read_rules_config() or {}, groups, resources)


# -- the persistent migration -----------------------------------------------------------
class MigrationAborted(Exception):
    """An unmet precondition, worded as PVE's die messages."""


def _assert_cluster_can_migrate(env: HaEnv, ns: NodeStatus, ss: dict) -> None:
    if not env.quorate():
        raise MigrationAborted("cluster is not quorate")
    nodes = ns.list_nodes()
    if not nodes:
        raise MigrationAborted("node list is empty")
    for node in nodes:
        state = ns.get_node_state(node)
        env.log("notice", f"ha groups migration: node '{node}' is in state '{state}'")
        if state != "online":
            raise MigrationAborted(f"node '{node}' is not online")
        lrm = env.read_lrm_status(node) or {}
        lrm_state, lrm_mode = lrm.get("state"), lrm.get("mode")
        if not lrm_state or not lrm_mode:
            raise MigrationAborted(f"could not retrieve state for lrm '{node}'")
        env.log("notice", f"ha groups migration: lrm '{node}' is in state '{lrm_state}' "
                f"and mode '{lrm_mode}'")
        idle = lrm_state == "wait_for_agent_lock" and \
            not count_active_services(ss, node, env.flavour)
        if lrm_state != "active" and not idle:
            raise MigrationAborted(f"lrm '{node}' is not in state 'active' or 'idle'")
        if lrm_mode != "active":
            raise MigrationAborted(f"lrm '{node}' is not in mode 'active'")
        version = env.get_node_version(node)
        if not version:
            raise MigrationAborted(f"could not retrieve version from node '{node}'")
        env.log("notice", f"ha groups migration: node '{node}' has version '{version}'")
        if not has_min_version(version):
            raise MigrationAborted(f"node '{node}' needs at least pve-manager version "
                                   f"'{MIN_VERSION}'")


def _migrate_persistently(env: HaEnv, ns: NodeStatus, ss: dict) -> bool:
    try:
        _assert_cluster_can_migrate(env, ns, ss)
        resources = env.read_service_config()
        groups = env.read_group_config() or {}
        env.write_rules_config(groups_to_rules(env.read_rules_config() or {}, groups,
                                               resources))
        env.log("notice", "ha groups migration: migration to rules config successful")
        groups_to_resources(groups, resources)
        for sid in sorted(resources):
            if resources[sid].get("group"):  # since 5.1.1: the others are left untouched
                # `failback 0` where the group had nofailback; 1 is the default, no key
                kept = {} if resources[sid]["failback"] else {"failback": 0}
                env.update_service_config(sid, kept, delete="group")
        env.log("notice", "ha groups migration: migration to resources config successful")
        env.delete_group_config()
        env.log("notice", "ha groups migration: group config deletion successful")
    except Exception as exc:  # noqa: BLE001 - Manager.pm's eval: any death aborts the attempt
        env.log("err", f"abort ha groups migration: {exc}")
        return False
    return True


class GroupMigration:
    """The master's countdown to its next attempt (the Manager's `group_migration_round`,
    made with the Manager: a new master starts it afresh)."""

    def __init__(self) -> None:
        self.rounds = FIRST_ATTEMPT_ROUNDS

    def step(self, env: HaEnv, ns: NodeStatus, ss: dict) -> None:
        """One round's `try_persistent_group_migration`."""
        if not env.read_group_config():
            return  # have_groups_been_migrated: no groups.cfg, or no group in it
        self.rounds -= 1
        if self.rounds > 0:
            return
        self.rounds = COOLDOWN_ROUNDS
        env.log("notice", "start ha group migration...")
        if _migrate_persistently(env, ns, ss):
            env.log("notice", "ha groups migration successful")
            return
        env.log("err", "ha groups migration failed")
        env.log("notice", f"retry ha groups migration in {COOLDOWN_ROUNDS} rounds (~ "
                f"{COOLDOWN_ROUNDS * 10} seconds)")
