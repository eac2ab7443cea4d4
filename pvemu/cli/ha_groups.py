"""`ha-manager groupadd|groupset|groupremove|groupconfig` (PVE 8's HA groups,
PVE::API2::HA::Groups; pve-model.md §11.2). PVE 9 has only `groupconfig` (and GET
/cluster/ha/groups): the groups until they are migrated to rules, then an error
(pve-operations.md §3.4)."""

from __future__ import annotations

import contextlib
import re

from pvemu.cli import options
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode
from pvemu.cli.ha_params import GROUP_ID, bool01, explicit_prio, param_error, update_section
from pvemu.cli.ha_resources import digest
from pvemu.etc_pve import CfsError
from pvemu.ha import config

GROUP_OPTS = {"nodes": "str", "restricted": "bool", "nofailback": "bool", "comment": "str",
              "type": "str"}


def _group_values(opts: dict, usage: str) -> dict:
    out: dict = {}
    if "nodes" in opts:
        text = str(opts["nodes"])
        for item in re.split(r"[,;\s]+", text.strip()):
            if item and not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?(:\d+)?",
                                         item):
                raise param_error("nodes", "invalid format - value does not look like a "
                                           "valid node name", usage)
        out["nodes"] = config.parse_nodes(text)
    for key in ("restricted", "nofailback"):
        if key in opts:
            out[key] = bool01(opts[key])
    if "comment" in opts:
        out["comment"] = opts["comment"]
    return out


MIGRATED = "cannot index groups: ha groups have been migrated to rules"  # PVE 9, HTTP 500


def check_not_migrated(node: HaNode) -> None:
    """PVE 9 lists groups only while groups.cfg has some (a fresh PVE 9 cluster, which
    never had any, answers the same error)."""
    if node.flavour >= 9 and not node.etc.groups():
        raise CommandError(MIGRATED)


def group_list(node: HaNode) -> list[dict]:
    """GET /cluster/ha/groups: each group's stored keys, `nodes` as written, plus
    group, type and the file's digest (Groups.pm api_copy_config)."""
    text = node.etc.read(config.GROUPS_CFG) or ""
    out = []
    for name, group in sorted(config.parse_groups(text).items()):
        rec = {"group": name, "type": "group", "digest": digest(text),
               "nodes": config.render_nodes(group["nodes"], getattr(group, "explicit", None))}
        for key in ("restricted", "nofailback"):
            if key in getattr(group, "stored", frozenset()):
                rec[key] = group[key]
        if "comment" in group:
            rec["comment"] = group["comment"]
        out.append(rec)
    return out


def cmd_groupadd(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager groupadd <group> --nodes <string> [OPTIONS]"
    args, opts = options.parse(argv, ["group"], GROUP_OPTS, usage)
    add_group(node, args["group"], opts, usage)
    return 0


def add_group(node: HaNode, name: str, opts: dict, usage: str) -> None:
    """POST /cluster/ha/groups (PVE::API2::HA::Groups create)."""
    if "nodes" not in opts:
        raise param_error("nodes", "property is missing and it is not optional", usage)
    if not GROUP_ID.match(name):
        raise param_error("group", f"invalid configuration ID '{name}'", usage)
    if opts.get("type", "group") != "group":
        raise CommandError("types does not match")
    values = _group_values(opts, usage)
    node.etc.check_quorum()
    with contextlib.suppress(CfsError):
        node.etc.mkdir("ha")
    with node.lock("create ha group failed"):
        groups = node.etc.groups()
        if name in groups:
            raise CommandError(f"ha group ID '{name}' already defined")
        entry = config.Section(values)
        entry.stored = frozenset(values)
        entry.explicit = explicit_prio(str(opts["nodes"]))
        groups[name] = entry
        node.etc.write(config.GROUPS_CFG, config.render_groups(groups))


def cmd_groupset(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager groupset <group> [OPTIONS]"
    args, opts = options.parse(argv, ["group"], {**GROUP_OPTS, "delete": "str",
                                                 "digest": "str"}, usage)
    set_group(node, args["group"], opts, usage)
    return 0


def set_group(node: HaNode, name: str, opts: dict, usage: str) -> None:
    """PUT /cluster/ha/groups/<group>."""
    values = _group_values(opts, usage)
    delete = [k for k in re.split(r"[,;\s]+", str(opts.get("delete", ""))) if k]
    with node.lock("update ha group failed"):
        groups = node.etc.groups()
        group = groups.get(name)
        if group is None:
            raise CommandError(f"no such ha group '{name}'")
        update_section(group, values, opts, delete, required=("nodes",),
                        deletable=("restricted", "nofailback", "comment"),
                        zeroed=("restricted", "nofailback"))
        node.etc.write(config.GROUPS_CFG, config.render_groups(groups))


def cmd_groupremove(node: HaNode, argv: list[str]) -> int:
    args, _ = options.parse(argv, ["group"], {}, "ha-manager groupremove <group>")
    remove_group(node, args["group"])
    return 0


def remove_group(node: HaNode, name: str) -> None:
    """DELETE /cluster/ha/groups/<group>."""
    with node.lock("delete ha group failed"):
        for sid, props in node.etc.resources().items():
            if props.get("group") == name:
                raise CommandError(f"ha group is used by service '{sid}'")
        groups = node.etc.groups()
        groups.pop(name, None)
        node.etc.write(config.GROUPS_CFG, config.render_groups(groups))


def cmd_groupconfig(node: HaNode, argv: list[str]) -> int:
    options.parse(argv, [], {}, "ha-manager groupconfig")
    check_not_migrated(node)
    for name, group in sorted(node.etc.groups().items()):
        print(f"group: {name}")
        rec = {"nodes": config.render_nodes(group["nodes"], getattr(group, "explicit", None))}
        stored = getattr(group, "stored", frozenset())
        for key in ("restricted", "nofailback"):
            if key in stored:
                rec[key] = group[key]
        if "comment" in group:
            rec["comment"] = group["comment"]
        for key in sorted(rec):
            print(f"\t{key} {rec[key]}")
        print()
    return 0
