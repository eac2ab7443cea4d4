"""`pvesh` on an embedded node: the API paths HA automation and proxmoxer's SSH backend
call, answered from the node's /etc/pve through EtcPve (root from PVECHAOS_PVE_ROOT,
default the mount point), its guest runtime and /proc.

`pvesh [--noproxy] get|create|set|delete <path> [--output-format text|json|json-pretty]
[OPTIONS]`. As PVE's CLIFormatter: the default format is `text` whether or not stdout is
a terminal (print_api_result: `output-format // 'text'`); `json` is compact canonical
JSON plus a newline; `json-pretty` is Perl's pretty canonical JSON. An unknown path dies
with `no '<cmd>' handler for '<path>'` (pve-manager PVE/CLI/pvesh.pm); every error exits
255. A path of another node (PVE's `proxyto => 'node'`) runs there as PVE's
proxy_handler runs it: `ssh -o BatchMode=yes root@<its .members ip> pvesh --noproxy
<cmd> <path> --output-format json`.

Paths (the answers live by subject in api_nodes, api_guests, api_cluster, api_ha):
/version; /nodes, /nodes/<node>/status, /nodes/<node>/{lxc,qemu}[/<vmid>/status/current];
/cluster/status, /cluster/resources, /cluster/options; /cluster/ha/resources[/<sid>],
/cluster/ha/groups[/<group>] (PVE 8), /cluster/ha/rules[/<rule>] (PVE 9),
/cluster/ha/status[/current|/manager_status].
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pvemu import nodeinfo
from pvemu.cli import api_cluster, api_guests, api_ha, api_nodes, options
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode
from pvemu.cli.ha_params import check_enum
from pvemu.cli.text_table import text_table
from pvemu.etc_pve import CfsError
from pvemu.guest_config import GuestError
from pvemu.ha import status

OUTPUT_OPTS = {"output-format": "str", "noborder": "bool", "noheader": "bool",
               "quiet": "bool", "human-readable": "bool"}
FORMATS = ("text", "json", "json-pretty")
PROXY_TIMEOUT_S = 60


class NoHandler(Exception):
    pass


Handler = Callable[[HaNode, dict, dict, str], object]  # node, path, API parameters, usage


def _node_info(node: HaNode) -> nodeinfo.NodeInfo:
    """The node's node.json, which /version and node status report from."""
    if node.info is None:
        raise CommandError(f"{nodeinfo.NODE_JSON}: missing - not a pvechaos lab node")
    return node.info


@dataclass(frozen=True)
class Route:
    cmd: str
    pattern: str  # "/nodes/{node}/status": {name} binds one path element
    fn: Handler
    opts: dict[str, str] | Callable[[HaNode], dict[str, str]] | None = None
    proxy: bool = False  # PVE's proxyto => 'node'
    when: Callable[[HaNode], bool] | None = None  # the PVE generations that have it

    def match(self, parts: list[str]) -> dict | None:
        want = [p for p in self.pattern.split("/") if p]
        if len(want) != len(parts):
            return None
        bound: dict = {}
        for w, got in zip(want, parts, strict=True):
            if w.startswith("{"):
                bound[w[1:-1]] = got
            elif w != got:
                return None
        return bound


def _resources_type(node: HaNode, _p: dict, opts: dict, usage: str) -> object:
    check_enum(opts, "type", ("vm", "storage", "node", "sdn"), usage)
    return api_cluster.cluster_resources(node, opts.get("type"))


def _guest_kind(fn):
    return lambda node, p, opts, usage: fn(node, p["kind"], *([p["vmid"]] if "vmid" in p
                                                                else []))


H = api_ha
ROUTES = [
    Route("get", "/version", lambda n, p, o, u: api_nodes.version(_node_info(n))),
    Route("get", "/nodes", lambda n, p, o, u: api_nodes.nodes(n)),
    Route("get", "/nodes/{node}/status",
          lambda n, p, o, u: api_nodes.node_status(n, _node_info(n)), proxy=True),
    Route("get", "/nodes/{node}/{kind}", _guest_kind(api_guests.guest_list),
          lambda n: {"full": "bool"}, proxy=True),
    Route("get", "/nodes/{node}/{kind}/{vmid}/status/current",
          _guest_kind(api_guests.guest_status), proxy=True),
    Route("get", "/cluster/status", lambda n, p, o, u: api_cluster.cluster_status(n)),
    Route("get", "/cluster/resources", _resources_type, {"type": "str"}),
    Route("get", "/cluster/options", lambda n, p, o, u: api_cluster.cluster_options(n)),
    Route("get", "/cluster/ha/resources", H.resources_index, {"type": "str"}),
    Route("get", "/cluster/ha/resources/{sid}", H.resource_read),
    Route("create", "/cluster/ha/resources", H.resource_create,
          lambda n: H.resource_options(n, "create")),
    Route("set", "/cluster/ha/resources/{sid}", H.resource_update,
          lambda n: H.resource_options(n, "set")),
    Route("delete", "/cluster/ha/resources/{sid}", H.resource_delete,
          lambda n: H.resource_options(n, "delete")),
    Route("get", "/cluster/ha/groups", H.groups_index, when=H.has_group_index),
    Route("get", "/cluster/ha/groups/{group}", H.group_read, when=H.has_groups),
    Route("create", "/cluster/ha/groups", H.group_create, H.GROUP_CREATE, when=H.has_groups),
    Route("set", "/cluster/ha/groups/{group}", H.group_update, H.GROUP_SET, when=H.has_groups),
    Route("delete", "/cluster/ha/groups/{group}", H.group_delete, when=H.has_groups),
    Route("get", "/cluster/ha/rules", H.rules_index, H.RULE_INDEX, when=H.has_rules),
    Route("get", "/cluster/ha/rules/{rule}", H.rule_read, when=H.has_rules),
    Route("create", "/cluster/ha/rules", H.rule_create, H.RULE_CREATE, when=H.has_rules),
    Route("set", "/cluster/ha/rules/{rule}", H.rule_update, H.RULE_SET, when=H.has_rules),
    Route("delete", "/cluster/ha/rules/{rule}", H.rule_delete, when=H.has_rules),
    Route("get", "/cluster/ha/status", H.status_index),
    Route("get", "/cluster/ha/status/current", H.status_current),
    Route("get", "/cluster/ha/status/manager_status", H.status_manager),
]


def find(node: HaNode, cmd: str, path: str) -> tuple[Route, dict]:
    parts = [p for p in path.split("/") if p]
    for route in ROUTES:
        if route.cmd != cmd or (route.when and not route.when(node)):
            continue
        bound = route.match(parts)
        if bound is None or bound.get("kind", "lxc") not in api_guests.KINDS:
            continue
        return route, bound
    raise NoHandler(f"no '{cmd}' handler for '{path}'")


def handle(node: HaNode, cmd: str, path: str, argv: list[str],
           noproxy: bool = False) -> tuple[object, dict]:
    """(result, output options) of one API call; raises NoHandler for unknown paths."""
    route, bound = find(node, cmd, path)
    usage = f"pvesh {cmd} {path} [OPTIONS]"
    extra = route.opts(node) if callable(route.opts) else (route.opts or {})
    _, opts = options.parse(argv, [], {**OUTPUT_OPTS, **extra}, usage)
    check_enum(opts, "output-format", FORMATS, usage)
    if "node" in bound:
        if bound["node"] not in node.cluster_nodes():
            raise CommandError(f"no such cluster node '{bound['node']}'")  # check_node_exists
        if route.proxy and bound["node"] != node.name and not noproxy:
            return proxy(node, bound["node"], cmd, path, argv), opts
    params = {k: v for k, v in opts.items() if k not in OUTPUT_OPTS}
    return route.fn(node, bound, params, usage), opts


def proxy(node: HaNode, target: str, cmd: str, path: str, argv: list[str]) -> object:
    """PVE::CLI::pvesh::proxy_handler: run the call on the node it is about."""
    info = ((node.etc.members() or {}).get("nodelist") or {}).get(target) or {}
    if not info.get("ip"):
        raise CommandError(f"unable to get IP for node '{target}' - node offline?")
    args: list[str] = []
    i = 0
    while i < len(argv):  # the call's parameters, without the output options
        word = argv[i]
        name = word.lstrip("-").partition("=")[0]
        i += 1
        if not word.startswith("-") or name not in OUTPUT_OPTS:
            args.append(word)
        elif "=" not in word and i < len(argv) and (
                OUTPUT_OPTS[name] == "str" or argv[i] in ("0", "1")):
            i += 1  # its value goes too
    remote = ["ssh", "-o", "BatchMode=yes", f"root@{info['ip']}", "pvesh", "--noproxy", cmd,
              path, *args, "--output-format", "json"]
    try:
        proc = subprocess.run(remote, capture_output=True, text=True,
                              timeout=PROXY_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise CommandError(f"proxy handler failed: command '{' '.join(remote)}' timed out "
                           f"after {PROXY_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise CommandError(f"{proc.stderr.strip()}\nproxy handler failed: command "
                           f"'{' '.join(remote)}' failed: exit code {proc.returncode}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


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
    noproxy = bool(argv) and argv[0] == "--noproxy"
    argv = argv[1:] if noproxy else argv
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
        data, opts = handle(HaNode(), cmd, path, argv[2:], noproxy)
        sys.stdout.write(render(data, opts))
        return 0
    except (NoHandler, CommandError, CfsError, GuestError, options.UsageError) as exc:
        print(exc, file=sys.stderr)
        return 255


if __name__ == "__main__":
    sys.exit(main())
