"""pvesh's HA paths (PVE::API2::HA::Resources, Groups, Rules, Status): thin API faces of
the code `ha-manager` runs (ha_resources, ha_groups, ha_rules), so each rule lives in one
place. Groups exist on the PVE 8 flavour and rules on PVE 9, as `ha-manager`'s command
table of the node's generation has them (ha_manager.commands).

Each handler takes (node, path parameters, API parameters (pvesh's output options taken
out), usage) and returns the API result (None for a write, as PVE's null-returning
methods).
"""

from __future__ import annotations

from pvemu.cli import ha_groups, ha_manager, ha_resources, ha_rules
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode, parse_sid
from pvemu.cli.ha_params import check_enum, param_error
from pvemu.ha import config


def has_groups(node: HaNode) -> bool:
    return "groupadd" in ha_manager.commands(node)


def has_group_index(node: HaNode) -> bool:
    """GET /cluster/ha/groups: both generations (PVE 9's until the groups migrate)."""
    return "groupconfig" in ha_manager.commands(node)


def has_rules(node: HaNode) -> bool:
    return "rules" in ha_manager.commands(node)


def _values(opts: dict, *drop: str) -> dict:
    """The API parameters of a write without those named in the path or taken apart."""
    return {k: v for k, v in opts.items() if k not in drop}


def _required(opts: dict, name: str, usage: str) -> str:
    if name not in opts:
        raise param_error(name, "property is missing and it is not optional", usage)
    return str(opts[name])


# -- resources ------------------------------------------------------------------------
def resource_options(node: HaNode, write: str) -> dict[str, str]:
    base = ha_resources.resource_options(node)
    return {"create": {**base, "sid": "str"}, "set": {**base, "delete": "str", "digest": "str"},
            "delete": {"purge": "bool"} if node.flavour >= 9 else {}}[write]


def resources_index(node: HaNode, _p: dict, opts: dict, usage: str) -> list[dict]:
    check_enum(opts, "type", config.RESOURCE_TYPES, usage)
    return [{k: v for k, v in r.items() if k != "errors"}
            for r in ha_resources.resource_list(node, opts.get("type"))]


def resource_read(node: HaNode, p: dict, _opts: dict, _usage: str) -> dict:
    sid, _, _ = parse_sid(node, p["sid"])
    for rec in ha_resources.resource_list(node):
        if rec["sid"] == sid:
            rec.pop("errors", None)
            return rec
    raise CommandError(f"no such resource '{sid}'")


def resource_create(node: HaNode, _p: dict, opts: dict, usage: str) -> None:
    ha_resources.add_resource(node, _required(opts, "sid", usage), _values(opts, "sid"), usage)


def resource_update(node: HaNode, p: dict, opts: dict, usage: str) -> None:
    ha_resources.set_resource(node, p["sid"], _values(opts), usage)


def resource_delete(node: HaNode, p: dict, opts: dict, _usage: str) -> None:
    ha_resources.remove_resource(node, p["sid"], bool(opts.get("purge", True)))


# -- groups (PVE 8) -------------------------------------------------------------------
GROUP_CREATE = {**ha_groups.GROUP_OPTS, "group": "str"}
GROUP_SET = {**ha_groups.GROUP_OPTS, "delete": "str", "digest": "str"}


def groups_index(node: HaNode, _p: dict, _opts: dict, _usage: str) -> list[dict]:
    ha_groups.check_not_migrated(node)
    return ha_groups.group_list(node)


def group_read(node: HaNode, p: dict, _opts: dict, _usage: str) -> dict:
    for rec in ha_groups.group_list(node):
        if rec["group"] == p["group"]:
            return rec
    raise CommandError(f"no such ha group '{p['group']}'")


def group_create(node: HaNode, _p: dict, opts: dict, usage: str) -> None:
    ha_groups.add_group(node, _required(opts, "group", usage), _values(opts, "group"), usage)


def group_update(node: HaNode, p: dict, opts: dict, usage: str) -> None:
    ha_groups.set_group(node, p["group"], _values(opts), usage)


def group_delete(node: HaNode, p: dict, _opts: dict, _usage: str) -> None:
    ha_groups.remove_group(node, p["group"])


# -- rules (PVE 9) --------------------------------------------------------------------
RULE_CREATE = {**ha_rules.RULE_OPTS, "rule": "str", "type": "str"}
RULE_SET = {**ha_rules.RULE_OPTS, "type": "str", "delete": "str", "digest": "str"}
RULE_INDEX = {"type": "str", "resource": "str"}


def rules_index(node: HaNode, _p: dict, opts: dict, usage: str) -> list[dict]:
    """GET /cluster/ha/rules [--type] [--resource]: each rule with the file's digest."""
    check_enum(opts, "type", config.RULE_TYPES, usage)
    file_digest = ha_resources.digest(node.etc.read(config.RULES_CFG) or "")
    out = []
    for rec in ha_rules.rule_list(node):
        if opts.get("type") and rec["type"] != opts["type"]:
            continue
        if opts.get("resource") and opts["resource"] not in rec["resources"].split(","):
            continue
        out.append({**rec, "digest": file_digest})
    return out


def rule_read(node: HaNode, p: dict, _opts: dict, usage: str) -> dict:
    for rec in rules_index(node, p, {}, usage):
        if rec["rule"] == p["rule"]:
            return rec
    raise CommandError(f"HA rule '{p['rule']}' does not exist")


def rule_create(node: HaNode, _p: dict, opts: dict, usage: str) -> None:
    rtype, name = _required(opts, "type", usage), _required(opts, "rule", usage)
    ha_rules.add_rule(node, rtype, name, _values(opts, "type", "rule"), usage)


def rule_update(node: HaNode, p: dict, opts: dict, usage: str) -> None:
    ha_rules.set_rule(node, _required(opts, "type", usage), p["rule"], _values(opts, "type"),
                      usage)


def rule_delete(node: HaNode, p: dict, _opts: dict, _usage: str) -> None:
    ha_rules.remove_rule(node, p["rule"])


# -- status ---------------------------------------------------------------------------
def status_index(_node: HaNode, _p: dict, _opts: dict, _usage: str) -> list[dict]:
    return [{"name": "current"}, {"name": "manager_status"}]


def status_current(node: HaNode, _p: dict, _opts: dict, _usage: str) -> list[dict]:
    return ha_resources.current_status(node)


def status_manager(node: HaNode, _p: dict, _opts: dict, _usage: str) -> dict:
    return ha_resources.manager_status_data(node)
