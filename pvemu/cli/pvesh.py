"""`pvesh` on an embedded node: the few API paths the harness uses, answered from the
node's /etc/pve through EtcPve (root from PVECHAOS_PVE_ROOT, default the mount point).

`pvesh get|create|set|delete <path> [--output-format text|json|json-pretty] [OPTIONS]`.
As PVE's CLIFormatter: the default format is `text` whether or not stdout is a terminal
(print_api_result: `output-format // 'text'`); `json` is compact canonical JSON plus a
newline; `json-pretty` is Perl's pretty canonical JSON. An unknown path dies with
`no '<cmd>' handler for '<path>'` (pve-manager PVE/CLI/pvesh.pm); every error exits 255.

Paths: /cluster/status, /cluster/resources, /cluster/ha/status[/current|/manager_status],
/cluster/ha/resources[/<sid>], /nodes, /nodes/<node>/qemu, /nodes/<node>/lxc.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from pvemu.cli import ha_resources, options
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode, parse_sid
from pvemu.cli.ha_params import check_enum, param_error
from pvemu.cli.text_table import text_table
from pvemu.etc_pve import CfsError
from pvemu.ha import config, status

OUTPUT_OPTS = {"output-format": "str", "noborder": "bool", "noheader": "bool",
               "quiet": "bool", "human-readable": "bool"}
FORMATS = ("text", "json", "json-pretty")
GUEST_RUN_DIR = "/run/pvechaos/guests"  # written by the lab's guest runtime


class NoHandler(Exception):
    pass


# -- data ---------------------------------------------------------------------------------
def members(node: HaNode) -> dict:
    return node.etc.members() or {}


def cluster_status(node: HaNode) -> list[dict]:
    """GET /cluster/status from .members (PVE::API2::ClusterConfig / Cluster status).
    Guess: `level` is left out (no subscription), `quorate` 0|1 on both kinds of entry
    where PVE sets it (cluster entry, and `online` nodes only on the node entries)."""
    m = members(node)
    cluster = m.get("cluster") or {}
    nodelist = m.get("nodelist") or {}
    quorate = 1 if node.etc.quorate() else 0
    out: list[dict] = []
    if cluster.get("name"):
        out.append({"type": "cluster", "id": "cluster", "name": cluster["name"],
                    "version": cluster.get("version", 0), "nodes": len(nodelist),
                    "quorate": quorate})
    if not nodelist:  # standalone node: only itself
        nodelist = {node.name: {"id": 0, "online": 1, "ip": ""}}
    for name in sorted(nodelist):
        info = nodelist[name]
        out.append({"type": "node", "id": f"node/{name}", "name": name,
                    "nodeid": info.get("id", 0), "online": 1 if info.get("online") else 0,
                    "local": 1 if name == node.name else 0, "ip": info.get("ip", ""),
                    "level": ""})
    return out


def node_online(node: HaNode) -> dict[str, bool]:
    nodelist = members(node).get("nodelist") or {}
    out = {n: bool(i.get("online")) for n, i in nodelist.items()}
    for name in node.cluster_nodes():
        out.setdefault(name, False)
    out[node.name] = True  # the local node answers, so it is online
    return out


def guest_runtime_status(node: HaNode, owner: str, vmid: str) -> str:
    """running/stopped as the node's guest runtime knows it (a copy running here).
    Guests owned by another node: "unknown" (guess: a real pvesh proxies the request to
    that node; this one does not use the network)."""
    if owner != node.name:
        return "unknown"
    from pvemu.guest_lifecycle import NodeGuests

    run_dir = Path(os.environ.get("PVECHAOS_GUEST_RUN_DIR", GUEST_RUN_DIR))
    running = NodeGuests(node.name, run_dir=run_dir).run_state(int(vmid)) is not None
    return "running" if running else "stopped"


def guest_name(node: HaNode, sid: str, owner: str) -> str | None:
    stype, _, vmid = sid.partition(":")
    sub, key = ("qemu-server", "name") if stype == "vm" else ("lxc", "hostname")
    text = node.etc.read(f"nodes/{owner}/{sub}/{vmid}.conf") or ""
    for line in text.splitlines():
        if line.startswith("["):
            break  # snapshot sections
        k, _, v = line.partition(":")
        if k.strip() == key:
            return v.strip()
    return None


def node_guests(node: HaNode, name: str, stype: str) -> list[dict]:
    out = []
    for sid, owner in node.etc.vmlist().items():
        if owner != name or not sid.startswith(stype + ":"):
            continue
        vmid = sid.split(":")[1]
        rec = {"vmid": int(vmid), "status": guest_runtime_status(node, owner, vmid)}
        gname = guest_name(node, sid, owner)
        if gname is not None:
            rec["name"] = gname
        out.append(rec)
    return sorted(out, key=lambda r: r["vmid"])


def cluster_resources(node: HaNode, rtype: str | None) -> list[dict]:
    """GET /cluster/resources for nodes and guests. Guess: guest `status` as in
    /nodes/<node>/qemu (runtime file on this node, "unknown" elsewhere); `hastate` is the
    CRM state from manager_status for HA-managed guests, as PVE adds it."""
    out: list[dict] = []
    if rtype in (None, "node"):
        for name, online in sorted(node_online(node).items()):
            out.append({"id": f"node/{name}", "type": "node", "node": name,
                        "status": "online" if online else "offline"})
    if rtype in (None, "vm"):
        res = node.etc.resources()
        ss = node.etc.manager_status().get("service_status") or {}
        for sid, owner in sorted(node.etc.vmlist().items(), key=lambda x: int(x[0].split(":")[1])):
            stype, vmid = sid.split(":")
            kind = "qemu" if stype == "vm" else "lxc"
            rec = {"id": f"{kind}/{vmid}", "type": kind, "vmid": int(vmid), "node": owner,
                   "status": guest_runtime_status(node, owner, vmid), "template": 0}
            gname = guest_name(node, sid, owner)
            if gname is not None:
                rec["name"] = gname
            if sid in res and res[sid].get("state") != "ignored" and ss.get(sid, {}).get(
                    "state"):
                rec["hastate"] = ss[sid]["state"]
            out.append(rec)
    return out


# -- dispatch -------------------------------------------------------------------------------
def handle(node: HaNode, cmd: str, path: str, argv: list[str]) -> tuple[object, dict]:
    """(result, output options) of one API call; raises NoHandler for unknown paths."""
    parts = [p for p in path.split("/") if p]
    usage = f"pvesh {cmd} {path} [OPTIONS]"

    def parse(extra: dict[str, str]) -> dict:
        _, opts = options.parse(argv, [], {**OUTPUT_OPTS, **extra}, usage)
        check_enum(opts, "output-format", FORMATS, usage)
        return opts

    if cmd == "get":
        if parts == ["cluster", "status"]:
            return cluster_status(node), parse({})
        if parts == ["cluster", "resources"]:
            opts = parse({"type": "str"})
            check_enum(opts, "type", ("vm", "storage", "node", "sdn"), usage)
            return cluster_resources(node, opts.get("type")), opts
        if parts == ["cluster", "ha", "status"]:
            return [{"name": "current"}, {"name": "manager_status"}], parse({})
        if parts == ["cluster", "ha", "status", "current"]:
            return ha_resources.current_status(node), parse({})
        if parts == ["cluster", "ha", "status", "manager_status"]:
            return ha_resources.manager_status_data(node), parse({})
        if parts == ["cluster", "ha", "resources"]:
            opts = parse({"type": "str"})
            check_enum(opts, "type", config.RESOURCE_TYPES, usage)
            return ha_resources.resource_list(node, opts.get("type")), opts
        if parts[:3] == ["cluster", "ha", "resources"] and len(parts) == 4:
            opts = parse({})
            sid, _, _ = parse_sid(node, parts[3])
            for rec in ha_resources.resource_list(node):
                if rec["sid"] == sid:
                    rec.pop("errors", None)
                    return rec, opts
            raise CommandError(f"no such resource '{sid}'")
        if parts == ["nodes"]:
            opts = parse({})
            return [{"node": n, "status": "online" if up else "offline", "type": "node",
                     "id": f"node/{n}"} for n, up in sorted(node_online(node).items())], opts
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] in ("qemu", "lxc"):
            opts = parse({"full": "bool"} if parts[2] == "qemu" else {})
            if parts[1] not in node.cluster_nodes():
                raise CommandError(f"no such cluster node '{parts[1]}'")  # check_node_exists
            stype = "vm" if parts[2] == "qemu" else "ct"
            return node_guests(node, parts[1], stype), opts
    elif parts[:3] == ["cluster", "ha", "resources"]:
        resource_opts = ha_resources.resource_options(node)
        if cmd == "create" and len(parts) == 3:
            opts = parse({**resource_opts, "sid": "str"})
            if "sid" not in opts:
                raise param_error("sid", "property is missing and it is not "
                                                    "optional", usage)
            ha_resources.add_resource(node, str(opts["sid"]), _api(opts), usage)
            return None, opts
        if cmd == "set" and len(parts) == 4:
            opts = parse({**resource_opts, "delete": "str", "digest": "str"})
            ha_resources.set_resource(node, parts[3], _api(opts), usage)
            return None, opts
        if cmd == "delete" and len(parts) == 4:
            opts = parse({"purge": "bool"} if node.flavour >= 9 else {})
            ha_resources.remove_resource(node, parts[3], bool(opts.get("purge", True)))
            return None, opts
    raise NoHandler(f"no '{cmd}' handler for '{path}'")


def _api(opts: dict) -> dict:
    return {k: v for k, v in opts.items() if k not in OUTPUT_OPTS and k != "sid"}


# -- output ---------------------------------------------------------------------------------
def render(data: object, opts: dict) -> str:
    if data is None or opts.get("quiet"):
        return ""
    fmt = opts.get("output-format", "text")
    if fmt == "json":
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    if fmt == "json-pretty":
        return status.perl_pretty_json(data)
    if isinstance(data, list):
        if not data:
            return ""
        if all(isinstance(d, dict) for d in data):
            return _table(data, None, opts)
        return _table([{"value": d} for d in data], ["value"], {**opts, "noheader": True})
    if isinstance(data, dict):
        rows = [{"key": k, "value": v} for k, v in sorted(data.items()) if v is not None]
        return _table(rows, ["key", "value"], opts)
    return f"{data}\n"


def _table(rows: list[dict], columns: list[str] | None, opts: dict) -> str:
    text = text_table(rows, columns)
    lines = text.splitlines()
    if opts.get("noheader"):
        lines = [lines[0]] + lines[3:] if len(lines) > 3 else lines
        # the separator after the header goes too; the top border stays
    if opts.get("noborder"):
        lines = [re.sub(r"^[│|] | [│|]$", "", ln).replace(" │ ", " ").replace(" | ", " ")
                 .rstrip() for ln in lines if not re.fullmatch(r"[┌╞├└+][─═┬╪┼┴\-=+┐╡┤┘]*", ln)]
    return "\n".join(lines) + "\n"


USAGE = ("USAGE: pvesh <COMMAND> [ARGS] [OPTIONS]\n"
         "       pvesh create <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
         "       pvesh delete <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
         "       pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"
         "       pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("get", "create", "set", "delete"):
        problem = f"unknown command 'pvesh {argv[0]}'" if argv else "no command specified"
        print(f"ERROR: {problem}\n{USAGE}", file=sys.stderr)
        return 255
    cmd = argv[0]
    if len(argv) < 2 or argv[1].startswith("-"):
        print(f"400 not enough arguments\npvesh {cmd} <api_path> [OPTIONS] [FORMAT_OPTIONS]",
              file=sys.stderr)
        return 255
    path = argv[1]
    try:
        data, opts = handle(HaNode(), cmd, path, argv[2:])
        sys.stdout.write(render(data, opts))
        return 0
    except (NoHandler, CommandError, CfsError, options.UsageError) as exc:
        print(exc, file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(main())
