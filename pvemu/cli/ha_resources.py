"""`ha-manager status|config|add|set|remove` and pvesh's /cluster/ha/resources and
/cluster/ha/status paths (PVE::API2::HA::Resources, PVE::API2::HA::Status; pve-model.md
§12.1-§12.2). Writes of resources.cfg take the `domain-ha` cfs lock."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys

from pvemu import wallclock
from pvemu.cli import options
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import (
    HaNode,
    check_service_state,
    check_type,
    parse_sid,
    service_is_ha_managed,
)
from pvemu.cli.ha_params import (
    GROUP_ID,
    bool01,
    check_enum,
    check_int_min,
    check_sid_format,
    param_error,
)
from pvemu.etc_pve import CfsError
from pvemu.ha import config, status

STATES = ("started", "stopped", "enabled", "disabled", "ignored")


def current_status(node: HaNode) -> list[dict]:
    return status.current(*_status_inputs(node))


def _status_inputs(node: HaNode) -> tuple:
    ms = node.etc.manager_status()
    lrm = {n: node.etc.lrm_status(n) for n in (ms.get("node_status") or {})}
    res = config.resources_with_defaults(node.etc.resources(), node.etc.vmlist(), node.flavour)
    # Status.pm: `$ctime = time()`, the viewer's wall clock, against each writer's
    # timestamp (pve-faults.md §7.1: >30 s old "old timestamp - dead?", >2 s ahead
    # "detected time drift!")
    return (ms, lrm, res, node.etc.quorate(), node.name, wallclock.now(),
            node.timing, node.flavour,
            node.etc.datacenter()["crs"].get("ha", "basic"))


def manager_status_data(node: HaNode) -> dict:
    ms = node.etc.manager_status()
    lrm = {n: node.etc.lrm_status(n) for n in (ms.get("node_status") or {})}
    return status.manager_status_data(ms, lrm, node.etc.quorate(), node.name)


def cmd_status(node: HaNode, argv: list[str]) -> int:
    _, opts = options.parse(argv, [], {"verbose": "bool"}, "ha-manager status [OPTIONS]")
    inputs = _status_inputs(node)
    sys.stdout.write(status.status_text(*inputs, verbose=bool(opts.get("verbose"))))
    return 0


def resource_list(node: HaNode, stype: str | None = None) -> list[dict]:
    """GET /cluster/ha/resources: the stored keys plus sid, type and digest."""
    text = node.etc.read(config.RESOURCES_CFG) or ""
    file_digest = digest(text)
    groups = node.etc.groups() if node.flavour < 9 else {}
    out = []
    for sid, props in config.parse_resources(text).items():
        rtype = sid.split(":")[0]
        if stype and rtype != stype:
            continue
        rec = {**props, "sid": sid, "type": rtype, "digest": file_digest}
        if node.flavour < 9 and props.get("group") and props["group"] not in groups:
            rec["errors"] = {"group": f"group '{props['group']}' does not exist"}
        out.append(rec)
    return out


def digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # SectionConfig's digest is SHA-1


def cmd_config(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager config [OPTIONS]"
    _, opts = options.parse(argv, [], {"type": "str"}, usage)
    check_enum(opts, "type", config.RESOURCE_TYPES, usage)
    for rec in sorted(resource_list(node, opts.get("type")), key=lambda r: r["sid"]):
        print(rec["sid"])
        for key in sorted(rec):
            if key in ("digest", "sid", "type", "errors"):
                continue
            print(f"\t{key} {rec[key]}")
        for prop, err in (rec.get("errors") or {}).items():
            print(f"error: property '{prop}' - {err}", file=sys.stderr)
        print()
    return 0


# -- add / set / remove ------------------------------------------------------------------
def resource_options(node: HaNode) -> dict[str, str]:
    opts = {"state": "str", "max_restart": "int", "max_relocate": "int", "comment": "str",
            "type": "str", "group": "str"}
    if node.flavour >= 9:
        opts["failback"] = "bool"
    return opts


def _check_resource_opts(node: HaNode, opts: dict, usage: str) -> dict:
    check_enum(opts, "state", STATES, usage)
    check_enum(opts, "type", config.RESOURCE_TYPES, usage)
    check_int_min(opts, "max_restart", 0, usage)
    check_int_min(opts, "max_relocate", 0, usage)
    if "comment" in opts and len(str(opts["comment"])) > 4096:
        raise param_error("comment", "value may only be 4096 characters long", usage)
    if "group" in opts:
        if node.flavour >= 9 and not node.etc.groups():
            # §12.1: HEAD's `add` rejects `group` once groups have been migrated.
            # Guess at the wording.
            raise param_error("group", "ha groups have been migrated to rules", usage)
        if not GROUP_ID.match(str(opts["group"])):
            raise param_error("group", "invalid configuration ID "
                                       f"'{opts['group']}'", usage)
        if str(opts["group"]) not in node.etc.groups():
            raise CommandError(f"HA group '{opts['group']}' does not exist")
    stored = {k: v for k, v in opts.items() if k not in ("type", "delete", "digest", "purge")}
    if "failback" in stored:
        stored["failback"] = bool01(stored["failback"])
    return stored


def add_resource(node: HaNode, sid_arg: str, opts: dict, usage: str) -> None:
    """POST /cluster/ha/resources (PVE::API2::HA::Resources create)."""
    check_sid_format(sid_arg, usage)
    node.etc.check_quorum()
    with contextlib.suppress(CfsError):
        node.etc.mkdir("ha")
    sid, stype, name = parse_sid(node, sid_arg)
    if opts.get("type") and opts["type"] != stype:
        raise CommandError("types does not match")
    check_type(stype)
    if not re.fullmatch(r"[1-9][0-9]+", name):
        raise CommandError("invalid VMID")
    if config.vmid_owner(node.etc.vmlist(), name) is None:
        raise CommandError(f"resource '{sid}' does not exist in cluster")
    stored = _check_resource_opts(node, opts, usage)
    with node.lock("create resource failed"):
        res = node.etc.resources()
        if sid in res:
            raise CommandError(f"resource ID '{sid}' already defined")
        res[sid] = stored
        node.etc.write(config.RESOURCES_CFG, config.render_resources(res))


def set_resource(node: HaNode, sid_arg: str, opts: dict, usage: str) -> None:
    """PUT /cluster/ha/resources/<sid>."""
    check_sid_format(sid_arg, usage)
    sid, stype, _ = parse_sid(node, sid_arg)
    if opts.get("type") and opts["type"] != stype:
        raise CommandError("types does not match")
    delete = [k for k in re.split(r"[,;\s]+", str(opts.get("delete", ""))) if k]
    stored = _check_resource_opts(node, opts, usage)
    check_service_state(node, sid, stored.get("state"))  # type: ignore[arg-type]
    allowed = set(resource_options(node)) - {"type"}
    if node.flavour >= 9:
        allowed.discard("group")
    with node.lock("update resource failed"):
        res = node.etc.resources()
        if sid not in res:
            raise CommandError(f"no such resource '{sid}'")
        res[sid].update(stored)
        for key in delete:
            if key not in allowed:
                raise CommandError(f"no such option '{key}'")
            res[sid].pop(key, None)
        node.etc.write(config.RESOURCES_CFG, config.render_resources(res))


def remove_resource(node: HaNode, sid_arg: str, purge: bool = True) -> None:
    """DELETE /cluster/ha/resources/<sid>. PVE 9 `--purge` (default 1) also drops the sid
    from the rules; a rule left without resources is deleted (guess)."""
    sid, _, _ = parse_sid(node, sid_arg)
    service_is_ha_managed(node, sid)
    with node.lock("delete resource failed"):
        res = node.etc.resources()
        res.pop(sid, None)
        node.etc.write(config.RESOURCES_CFG, config.render_resources(res))
        if node.flavour >= 9 and purge:
            rules = node.etc.rules()
            changed = False
            for name in list(rules):
                if sid in rules[name].get("resources", []):
                    rules[name]["resources"] = [s for s in rules[name]["resources"] if s != sid]
                    if not rules[name]["resources"]:
                        del rules[name]
                    changed = True
            if changed:
                node.etc.write(config.RULES_CFG, config.render_rules(rules))


def cmd_add(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager add <sid> [OPTIONS]"
    args, opts = options.parse(argv, ["sid"], resource_options(node), usage)
    add_resource(node, args["sid"], opts, usage)
    return 0


def cmd_set(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager set <sid> [OPTIONS]"
    args, opts = options.parse(argv, ["sid"], {**resource_options(node), "delete": "str",
                                               "digest": "str"}, usage)
    set_resource(node, args["sid"], opts, usage)
    return 0


def cmd_remove(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager remove <sid>" + (" [OPTIONS]" if node.flavour >= 9 else "")
    args, opts = options.parse(argv, ["sid"], {"purge": "bool"} if node.flavour >= 9 else {},
                               usage)
    check_sid_format(args["sid"], usage)
    remove_resource(node, args["sid"], bool(opts.get("purge", True)))
    return 0
