"""`ha-manager rules list|config|add|remove|set` (PVE 9's HA rules,
PVE::API2::HA::Rules; pve-model.md §11.3)."""

from __future__ import annotations

import json
import re
import sys

from pvemu.cli import options
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode, parse_sid
from pvemu.cli.ha_params import (
    bool01,
    check_enum,
    explicit_prio,
    param_error,
    unknown_subcommand,
    update_section,
)
from pvemu.cli.text_table import text_table
from pvemu.ha import config, group_migration, status

RULE_OPTS = {"resources": "str", "nodes": "str", "strict": "bool", "affinity": "str",
             "comment": "str", "disable": "bool"}


def rules_as_read(node: HaNode) -> dict[str, dict]:
    """rules.cfg, with the groups merged in as `ha-group-*` rules while groups.cfg has
    groups: what PVE 9 lists before the groups are migrated (pve-operations.md §3.4)."""
    groups = node.etc.groups()
    if not groups:
        return node.etc.rules()
    return group_migration.groups_to_rules(node.etc.rules(), groups, node.etc.resources())


def rule_list(node: HaNode) -> list[dict]:
    out = []
    for name, rule in rules_as_read(node).items():
        rec: dict = {"rule": name, "type": rule["type"],
                     "resources": ",".join(rule.get("resources", []))}
        if rule["type"] == "node-affinity":
            rec["nodes"] = config.render_nodes(rule["nodes"], getattr(rule, "explicit", None))
            rec["strict"] = rule.get("strict", 0)
        for key in ("affinity", "comment", "disable"):
            if key in rule:
                rec[key] = rule[key]
        out.append(rec)
    return out


def _rule_values(node: HaNode, rtype: str, opts: dict, usage: str, create: bool) -> dict:
    if rtype not in config.RULE_TYPES:
        raise param_error("type", f"value '{rtype}' does not have a value in the enumeration "
                                  f"'{', '.join(config.RULE_TYPES)}'", usage)
    if create and "resources" not in opts:
        raise param_error("resources", "property is missing and it is not optional", usage)
    if rtype == "node-affinity":
        if create and "nodes" not in opts:
            raise param_error("nodes", "property is missing and it is not optional", usage)
        if "affinity" in opts:
            raise param_error("affinity", "property is not defined in schema and the schema "
                                          "does not allow additional properties", usage)
    else:
        if create and "affinity" not in opts:
            raise param_error("affinity", "property is missing and it is not optional", usage)
        check_enum(opts, "affinity", ("positive", "negative"), usage)
        for key in ("nodes", "strict"):
            if key in opts:
                raise param_error(key, "property is not defined in schema and the schema "
                                       "does not allow additional properties", usage)
    values: dict = {}
    if "resources" in opts:
        sids = [s for s in re.split(r"[,;\s]+", str(opts["resources"])) if s]
        sids = [parse_sid(node, s)[0] for s in sids]
        configured = node.etc.resources()
        missing = sorted(s for s in sids if s not in configured)
        if missing:
            raise CommandError(f"cannot use unmanaged resource(s) {', '.join(missing)}.")
        values["resources"] = sids
    if "nodes" in opts:
        nodes = config.parse_nodes(str(opts["nodes"]))
        unknown = sorted(n for n in nodes if n not in node.cluster_nodes())
        if unknown:
            raise CommandError(f"cannot use non-existant node(s) {', '.join(unknown)}.")
        values["nodes"] = nodes
    for key in ("strict", "disable"):
        if key in opts:
            values[key] = bool01(opts[key])
    for key in ("affinity", "comment"):
        if key in opts:
            values[key] = opts[key]
    return values


def cmd_rules(node: HaNode, argv: list[str]) -> int:
    subs = ("list", "config", "add", "remove", "set")
    if not argv or argv[0] not in subs:
        raise options.UsageError(unknown_subcommand("rules", argv, [
            "list [OPTIONS]", "config [OPTIONS]", "add <type> <rule> [OPTIONS]",
            "remove <rule>", "set <type> <rule> [OPTIONS]"]))
    sub, rest = argv[0], argv[1:]
    if sub in ("list", "config"):
        usage = f"ha-manager rules {sub} [OPTIONS]"
        _, opts = options.parse(rest, [], {"type": "str", "resource": "str",
                                           "output-format": "str", "noborder": "bool",
                                           "noheader": "bool"}, usage)
        check_enum(opts, "type", config.RULE_TYPES, usage)
        recs = [r for r in rule_list(node) if not opts.get("type") or r["type"] == opts["type"]]
        if opts.get("resource"):
            recs = [r for r in recs if opts["resource"] in r["resources"].split(",")]
        if sub == "config":
            recs = [{"enabled": int(not r.get("disable")), "state": "in use", **r}
                    for r in recs]
            cols = ["enabled", "state", "rule", "type", "resources", "comment"]
            recs = [{k: r.get(k) for k in cols} for r in recs]
        fmt = opts.get("output-format", "text")
        if fmt == "json":
            print(json.dumps(recs, sort_keys=True, separators=(",", ":")))
        elif fmt == "json-pretty":
            sys.stdout.write(status.perl_pretty_json(recs))
        else:
            cols = ["enabled", "state", "rule", "type", "resources", "comment"] \
                if sub == "config" else ["rule", "type", "resources", "affinity", "comment",
                                         "disable", "nodes", "strict"]
            sys.stdout.write(text_table(recs, cols))
        return 0
    if sub == "remove":
        args, _ = options.parse(rest, ["rule"], {}, "ha-manager rules remove <rule>")
        remove_rule(node, args["rule"])
        return 0
    usage = f"ha-manager rules {sub} <type> <rule> [OPTIONS]"
    args, opts = options.parse(rest, ["type", "rule"], {**RULE_OPTS, "delete": "str",
                                                        "digest": "str"}
                               if sub == "set" else RULE_OPTS, usage)
    (add_rule if sub == "add" else set_rule)(node, args["type"], args["rule"], opts, usage)
    return 0


def add_rule(node: HaNode, rtype: str, name: str, opts: dict, usage: str) -> None:
    """POST /cluster/ha/rules (PVE::API2::HA::Rules create)."""
    node.etc.check_quorum()
    if node.etc.groups():
        raise CommandError("cannot create ha rule: ha groups have not been migrated yet")
    values = _rule_values(node, rtype, opts, usage, create=True)
    with node.lock("create ha rule failed"):
        rules = node.etc.rules()
        if name in rules:
            raise CommandError(f"HA rule '{name}' already defined")
        entry = config.Section({"type": rtype, "nodes": {}, "strict": 0, **values})
        entry.stored = frozenset(values)
        entry.explicit = explicit_prio(str(opts.get("nodes", "")))
        rules[name] = entry
        node.etc.write(config.RULES_CFG, config.render_rules(rules))


def set_rule(node: HaNode, rtype: str, name: str, opts: dict, usage: str) -> None:
    """PUT /cluster/ha/rules/<rule>."""
    if node.etc.groups():
        raise CommandError("cannot update ha rule: ha groups have not been migrated yet")
    values = _rule_values(node, rtype, opts, usage, create=False)
    delete = [k for k in re.split(r"[,;\s]+", str(opts.get("delete", ""))) if k]
    with node.lock("update HA rules failed"):
        rules = node.etc.rules()
        rule = rules.get(name)
        if rule is None:
            raise CommandError(f"HA rule '{name}' does not exist")
        update_section(rule, values, opts, delete,
                        required=("resources", "nodes", "affinity"),
                        deletable=("strict", "comment", "disable"), zeroed=("strict",))
        node.etc.write(config.RULES_CFG, config.render_rules(rules))


def remove_rule(node: HaNode, name: str) -> None:
    """DELETE /cluster/ha/rules/<rule>."""
    with node.lock("delete ha rule failed"):
        rules = node.etc.rules()
        rules.pop(name, None)
        node.etc.write(config.RULES_CFG, config.render_rules(rules))
