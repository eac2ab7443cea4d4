"""`ha-manager` on an embedded node (pve-model.md §12.1-§12.3).

Works directly on the /etc/pve files (root from PVECHAOS_PVE_ROOT, default /etc/pve).
Writes of resources.cfg, groups.cfg, rules.cfg and crm_commands take PVE's `domain-ha`
cfs lock (mkdir of priv/lock/domain-ha, retried for up to 10 s, rmdir after) and replace
files by write-to-temp-and-rename. Errors are worded as PVE's API and CLIHandler word
them; every error exits with 255.

Flavour 8 (PVE 8, pve-ha-manager 4.0.7): groups, no rules. Flavour 9 (HEAD): rules, the
group commands are gone, `failback` and `remove --purge` exist.
"""

from __future__ import annotations

import json
import locale
import os
import re
import socket
import sys
import time
from pathlib import Path

from pvemu import cfslock, nodeinfo
from pvemu.cli import options
from pvemu.ha import config, status
from pvemu.ha.env import Timing

LOCK_TIMEOUT_S = 10.0  # cfs_lock_domain's acquire timeout
STATES = ("started", "stopped", "enabled", "disabled", "ignored")
_GROUP_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_.]+$")  # pve-configid (guess: same regex)


class Fail(Exception):
    """An error PVE would `die` with: printed to stderr, exit code 255."""


# -- the node and its /etc/pve -----------------------------------------------------------
def pve_root() -> Path:
    return Path(os.environ.get("PVECHAOS_PVE_ROOT", "/etc/pve"))


class Node:
    """What the CLI needs to know about the node it runs on."""

    def __init__(self) -> None:
        self.root = pve_root()
        path = Path(os.environ.get("PVECHAOS_NODE_JSON", str(nodeinfo.NODE_JSON)))
        try:
            info = nodeinfo.load(path)
            self.name, self.flavour, self.timing = info.name, info.flavour, info.timing
        except OSError:  # a node.json that is there but wrong is an error, not a guess
            # Guess: outside a lab node, take the name from /etc/pve/local and act as PVE 9
            # with PVE's real timers
            local = self.root / "local"
            self.name = os.readlink(local).rstrip("/").split("/")[-1] \
                if local.is_symlink() else socket.gethostname().split(".")[0]
            self.flavour, self.timing = 9, Timing(1.0)

    # files
    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str | None:
        try:
            return self.path(rel).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise Fail(f"unable to read file '/etc/pve/{rel}' - {exc.strerror}") from None

    def write(self, rel: str, text: str) -> None:
        """Replace the file: write a temporary file next to it, then rename it."""
        target = self.path(rel)
        tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
        try:
            tmp.write_text(text)
            tmp.rename(target)
        except PermissionError:
            raise Fail("cluster not ready - no quorum?") from None
        except OSError as exc:
            raise Fail(f"unable to write '/etc/pve/{rel}' - {exc.strerror}") from None

    # state
    def quorate(self) -> bool:
        """PVE::Cluster::check_cfs_quorum: the write bit pmxcfs shows on /etc/pve/local
        (the root itself when there is no `local` link, e.g. in tests)."""
        target = self.path("local")
        if not target.exists():
            target = self.root
        try:
            return bool(os.stat(target).st_mode & 0o200)
        except OSError:
            return False

    def check_quorum(self) -> None:
        if not self.quorate():
            raise Fail("cluster not ready - no quorum?")

    def vmlist(self) -> dict[str, str]:
        return config.vmlist(self.root)

    def resources(self) -> dict[str, dict]:
        return config.parse_resources(self.read(config.RESOURCES_CFG) or "")

    def groups(self) -> dict[str, dict]:
        return config.parse_groups(self.read(config.GROUPS_CFG) or "")

    def rules(self) -> dict[str, dict]:
        return config.parse_rules(self.read(config.RULES_CFG) or "")

    def manager_status(self) -> dict:
        try:
            return config.parse_json(self.read(config.MANAGER_STATUS))
        except ValueError:
            return {}

    def lrm_status(self, node: str) -> dict | None:
        try:
            text = self.read(config.lrm_status_path(node))
            return json.loads(text) if text else None
        except (ValueError, Fail):
            return None

    def datacenter(self) -> dict:
        return config.parse_datacenter(self.read(config.DATACENTER_CFG) or "")

    def cluster_nodes(self) -> list[str]:
        """Nodes of the cluster: .members' nodelist, else the nodes/ directories."""
        try:
            members = json.loads(self.read(config.MEMBERS) or "{}")
        except ValueError:
            members = {}
        names = set(members.get("nodelist") or {})
        if not names:
            try:
                names = {p.name for p in self.path("nodes").iterdir() if p.is_dir()}
            except OSError:
                names = set()
        return sorted(names | {self.name})

    def lock(self, errmsg: str | None = None):
        return DomainLock(self, errmsg)


class DomainLock:
    """PVE::HA::Config::lock_ha_domain: cfs_lock_domain('ha') around the code; failures
    are prefixed with what was being done, as PVE does."""

    def __init__(self, node: Node, errmsg: str | None) -> None:
        self.root = node.path("")
        self.errmsg = errmsg
        self._lock = None

    def _fail(self, text: str) -> Fail:
        return Fail(f"{self.errmsg}: {text}" if self.errmsg else text)

    def __enter__(self) -> DomainLock:
        self._lock = cfslock.cfs_lock(self.root, "domain-ha", LOCK_TIMEOUT_S)
        try:
            self._lock.__enter__()
        except cfslock.CfsLockError as exc:
            raise self._fail(str(exc)) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._lock.__exit__(None, None, None)
        if isinstance(exc, Fail) and self.errmsg and not str(exc).startswith(self.errmsg):
            raise Fail(f"{self.errmsg}: {exc}") from None


# -- helpers ------------------------------------------------------------------------------
def parse_sid(node: Node, sid: str) -> tuple[str, str, str]:
    """PVE::HA::Config::parse_sid: `100` becomes vm:100 or ct:100 from the vmlist."""
    if sid.isdigit():
        owner = config.vmid_owner(node.vmlist(), sid)
        if owner is None:
            raise Fail(f"unable do detect SID from VMID - VM/CT {sid} does not exist")
        sid = owner[0]
    m = re.fullmatch(r"(\S+):(\S+)", sid)
    if not m:
        raise Fail(f"unable to parse service id '{sid}'")
    return sid, m.group(1), m.group(2)


def check_sid_format(sid: str, usage: str) -> None:
    # pve-ha-resource-or-vm-id: `<type>:<name>` or a VMID
    if not re.fullmatch(r"(?:(?:vm|ct):)?\d+|[a-z]+:\S+", sid):
        raise options.UsageError(f"400 Parameter verification failed.\nsid: value does not "
                                 f"look like a valid ha resource id\n{usage}")


def check_type(stype: str) -> None:
    if stype not in config.RESOURCE_TYPES:
        raise Fail(f"unknown resource type '{stype}'")  # guess at the wording


def service_is_ha_managed(node: Node, sid: str) -> dict:
    d = node.resources().get(sid)
    if d is None or d.get("state") == "ignored":
        raise Fail(f"resource '{sid}' is not HA managed")
    return d


def check_service_state(node: Node, sid: str, req_state: str | None = None) -> None:
    """API2::HA::Resources::check_service_state: error services only accept `disabled`."""
    d = node.resources().get(sid)
    if d is None or d.get("state") == "ignored":
        return
    ss = (node.manager_status().get("service_status") or {}).get(sid) or {}
    if ss.get("state") == "error" and req_state != "disabled":
        raise Fail(f"service '{sid}' in error state, must be disabled and fixed first")


def queue_crm_command(node: Node, cmd: str) -> None:
    """PVE::HA::Config::queue_crm_commands: append one line under the domain-ha lock."""
    with node.lock():
        data = node.read(config.CRM_COMMANDS) or ""
        node.write(config.CRM_COMMANDS, data + cmd.strip() + "\n")


def param_error(name: str, message: str, usage: str) -> options.UsageError:
    return options.UsageError(f"400 Parameter verification failed.\n{name}: {message}\n{usage}")


def check_int_min(opts: dict, name: str, minimum: int, usage: str) -> None:
    if name in opts and int(opts[name]) < minimum:  # type: ignore[call-overload]
        raise param_error(name, f"value must have a minimum value of {minimum}", usage)


def check_enum(opts: dict, name: str, values: tuple[str, ...], usage: str) -> None:
    if name in opts and opts[name] not in values:
        raise param_error(name, f"value '{opts[name]}' does not have a value in the "
                                f"enumeration '{', '.join(values)}'", usage)


def bool01(value: object) -> int:
    return 1 if value else 0


def text_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """PVE::CLIFormatter::print_text_table with borders and header, rows sorted by the
    first column. Guess: without the API's schema every column is a string (left
    aligned), except int values, which PVE's schemas declare as integers (right aligned).
    UTF-8 box characters when the locale's codeset is UTF-8, else ASCII."""
    if not rows:
        return ""
    if columns is None:
        columns = sorted({k for r in rows for k in r})
    rows = sorted(rows, key=lambda r: (r.get(columns[0]) is None, str(r.get(columns[0]))
                                       if not isinstance(r.get(columns[0]), int)
                                       else f"{r[columns[0]]:020d}"))

    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, dict | list):
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        return str(value)

    numeric = {c: all(isinstance(r.get(c), int) and not isinstance(r.get(c), bool)
                      for r in rows if r.get(c) is not None) and
               any(r.get(c) is not None for r in rows) for c in columns}
    width = {c: max([len(c)] + [len(cell(r.get(c))) for r in rows]) for c in columns}
    utf8 = "UTF-8" in (locale.getpreferredencoding(False) or "").upper().replace("UTF8",
                                                                                  "UTF-8")

    def line(values: list[str], align: bool) -> str:
        parts = []
        for c, v in zip(columns, values, strict=True):
            parts.append(v.rjust(width[c]) if align and numeric[c] else v.ljust(width[c]))
        bar = "│" if utf8 else "|"
        return f"{bar} " + f" {bar} ".join(parts) + f" {bar}"

    def border(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (width[c] + 2) for c in columns) + right

    if utf8:
        top, head, mid, bottom = (border("┌", "─", "┬", "┐"), border("╞", "═", "╪", "╡"),
                                  border("├", "─", "┼", "┤"), border("└", "─", "┴", "┘"))
    else:
        top = mid = bottom = border("+", "-", "+", "+")
        head = border("+", "=", "+", "+")
    out = [top, line(columns, False), head]
    for i, r in enumerate(rows):
        if i:
            out.append(mid)
        out.append(line([cell(r.get(c)) for c in columns], True))
    out.append(bottom)
    return "\n".join(out) + "\n"


# -- status and config --------------------------------------------------------------------
def current_status(node: Node) -> list[dict]:
    return status.current(*_status_inputs(node))


def _status_inputs(node: Node) -> tuple:
    ms = node.manager_status()
    lrm = {n: node.lrm_status(n) for n in (ms.get("node_status") or {})}
    res = config.resources_with_defaults(node.resources(), node.vmlist(), node.flavour)
    return (ms, lrm, res, node.quorate(), node.name, time.time(),
            node.timing, node.flavour,
            node.datacenter()["crs"].get("ha", "basic"))


def manager_status_data(node: Node) -> dict:
    ms = node.manager_status()
    lrm = {n: node.lrm_status(n) for n in (ms.get("node_status") or {})}
    return status.manager_status_data(ms, lrm, node.quorate(), node.name)


def cmd_status(node: Node, argv: list[str]) -> int:
    _, opts = options.parse(argv, [], {"verbose": "bool"}, "ha-manager status [OPTIONS]")
    inputs = _status_inputs(node)
    sys.stdout.write(status.status_text(*inputs, verbose=bool(opts.get("verbose"))))
    return 0


def resource_list(node: Node, stype: str | None = None) -> list[dict]:
    """GET /cluster/ha/resources: the stored keys plus sid, type and digest."""
    text = node.read(config.RESOURCES_CFG) or ""
    digest = _digest(text)
    groups = node.groups() if node.flavour < 9 else {}
    out = []
    for sid, props in config.parse_resources(text).items():
        rtype = sid.split(":")[0]
        if stype and rtype != stype:
            continue
        rec = {**props, "sid": sid, "type": rtype, "digest": digest}
        if node.flavour < 9 and props.get("group") and props["group"] not in groups:
            rec["errors"] = {"group": f"group '{props['group']}' does not exist"}
        out.append(rec)
    return out


def _digest(text: str) -> str:
    import hashlib
    return hashlib.sha1(text.encode()).hexdigest()  # SectionConfig's digest is SHA-1


def cmd_config(node: Node, argv: list[str]) -> int:
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
def resource_options(node: Node) -> dict[str, str]:
    opts = {"state": "str", "max_restart": "int", "max_relocate": "int", "comment": "str",
            "type": "str", "group": "str"}
    if node.flavour >= 9:
        opts["failback"] = "bool"
    return opts


def _check_resource_opts(node: Node, opts: dict, usage: str) -> dict:
    check_enum(opts, "state", STATES, usage)
    check_enum(opts, "type", config.RESOURCE_TYPES, usage)
    check_int_min(opts, "max_restart", 0, usage)
    check_int_min(opts, "max_relocate", 0, usage)
    if "comment" in opts and len(str(opts["comment"])) > 4096:
        raise param_error("comment", "value may only be 4096 characters long", usage)
    if "group" in opts:
        if node.flavour >= 9 and not node.groups():
            # §12.1: HEAD's `add` rejects `group` once groups have been migrated.
            # Guess at the wording.
            raise param_error("group", "ha groups have been migrated to rules", usage)
        if not _GROUP_ID.match(str(opts["group"])):
            raise param_error("group", "invalid configuration ID "
                                       f"'{opts['group']}'", usage)
        if str(opts["group"]) not in node.groups():
            raise Fail(f"HA group '{opts['group']}' does not exist")
    stored = {k: v for k, v in opts.items() if k not in ("type", "delete", "digest", "purge")}
    if "failback" in stored:
        stored["failback"] = bool01(stored["failback"])
    return stored


def add_resource(node: Node, sid_arg: str, opts: dict, usage: str) -> None:
    """POST /cluster/ha/resources (PVE::API2::HA::Resources create)."""
    check_sid_format(sid_arg, usage)
    node.check_quorum()
    try:
        node.path("ha").mkdir(exist_ok=True)
    except OSError:
        pass
    sid, stype, name = parse_sid(node, sid_arg)
    if opts.get("type") and opts["type"] != stype:
        raise Fail("types does not match")
    check_type(stype)
    if not re.fullmatch(r"[1-9][0-9]+", name):
        raise Fail("invalid VMID")
    if config.vmid_owner(node.vmlist(), name) is None:
        raise Fail(f"resource '{sid}' does not exist in cluster")
    stored = _check_resource_opts(node, opts, usage)
    with node.lock("create resource failed"):
        res = node.resources()
        if sid in res:
            raise Fail(f"resource ID '{sid}' already defined")
        res[sid] = stored
        node.write(config.RESOURCES_CFG, config.render_resources(res))


def set_resource(node: Node, sid_arg: str, opts: dict, usage: str) -> None:
    """PUT /cluster/ha/resources/<sid>."""
    check_sid_format(sid_arg, usage)
    sid, stype, _ = parse_sid(node, sid_arg)
    if opts.get("type") and opts["type"] != stype:
        raise Fail("types does not match")
    delete = [k for k in re.split(r"[,;\s]+", str(opts.get("delete", ""))) if k]
    stored = _check_resource_opts(node, opts, usage)
    check_service_state(node, sid, stored.get("state"))  # type: ignore[arg-type]
    allowed = set(resource_options(node)) - {"type"}
    if node.flavour >= 9:
        allowed.discard("group")
    with node.lock("update resource failed"):
        res = node.resources()
        if sid not in res:
            raise Fail(f"no such resource '{sid}'")
        res[sid].update(stored)
        for key in delete:
            if key not in allowed:
                raise Fail(f"no such option '{key}'")
            res[sid].pop(key, None)
        node.write(config.RESOURCES_CFG, config.render_resources(res))


def remove_resource(node: Node, sid_arg: str, purge: bool = True) -> None:
    """DELETE /cluster/ha/resources/<sid>. PVE 9 `--purge` (default 1) also drops the sid
    from the rules; a rule left without resources is deleted (guess)."""
    sid, _, _ = parse_sid(node, sid_arg)
    service_is_ha_managed(node, sid)
    with node.lock("delete resource failed"):
        res = node.resources()
        res.pop(sid, None)
        node.write(config.RESOURCES_CFG, config.render_resources(res))
        if node.flavour >= 9 and purge:
            rules = node.rules()
            changed = False
            for name in list(rules):
                if sid in rules[name].get("resources", []):
                    rules[name]["resources"] = [s for s in rules[name]["resources"] if s != sid]
                    if not rules[name]["resources"]:
                        del rules[name]
                    changed = True
            if changed:
                node.write(config.RULES_CFG, config.render_rules(rules))


def cmd_add(node: Node, argv: list[str]) -> int:
    usage = "ha-manager add <sid> [OPTIONS]"
    args, opts = options.parse(argv, ["sid"], resource_options(node), usage)
    add_resource(node, args["sid"], opts, usage)
    return 0


def cmd_set(node: Node, argv: list[str]) -> int:
    usage = "ha-manager set <sid> [OPTIONS]"
    args, opts = options.parse(argv, ["sid"], {**resource_options(node), "delete": "str",
                                               "digest": "str"}, usage)
    set_resource(node, args["sid"], opts, usage)
    return 0


def cmd_remove(node: Node, argv: list[str]) -> int:
    usage = "ha-manager remove <sid>" + (" [OPTIONS]" if node.flavour >= 9 else "")
    args, opts = options.parse(argv, ["sid"], {"purge": "bool"} if node.flavour >= 9 else {},
                               usage)
    check_sid_format(args["sid"], usage)
    remove_resource(node, args["sid"], bool(opts.get("purge", True)))
    return 0


# -- crm commands --------------------------------------------------------------------------
def motion(node: Node, cmd: str, sid_arg: str, target: str) -> None:
    sid, _, _ = parse_sid(node, sid_arg)
    service_is_ha_managed(node, sid)
    check_service_state(node, sid)
    queue_crm_command(node, f"{cmd} {sid} {target}")


def check_node_name(name: str, usage: str) -> None:
    if not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", name):
        raise param_error("node", "invalid format - value does not look like a valid node "
                                  "name", usage)


def cmd_motion(cmd: str):
    def run(node: Node, argv: list[str]) -> int:
        usage = f"ha-manager crm-command {cmd} <sid> <node>"
        args, _ = options.parse(argv, ["sid", "node"], {}, usage)
        check_sid_format(args["sid"], usage)
        check_node_name(args["node"], usage)
        motion(node, cmd, args["sid"], args["node"])
        return 0
    return run


def cmd_stop(node: Node, argv: list[str]) -> int:
    usage = "ha-manager crm-command stop <sid> <timeout>"
    args, _ = options.parse(argv, ["sid", "timeout"], {}, usage)
    check_sid_format(args["sid"], usage)
    if not re.fullmatch(r"-?\d+", args["timeout"]):
        raise param_error("timeout", f"type check ('integer') failed - got "
                                     f"'{args['timeout']}'", usage)
    if int(args["timeout"]) < 0:
        raise param_error("timeout", "value must have a minimum value of 0", usage)
    sid, _, _ = parse_sid(node, args["sid"])
    service_is_ha_managed(node, sid)
    check_service_state(node, sid)
    queue_crm_command(node, f"stop {sid} {int(args['timeout'])}")
    return 0


def cmd_maintenance(node: Node, argv: list[str]) -> int:
    usage = "ha-manager crm-command node-maintenance <enable|disable> <node>"
    if not argv or argv[0] not in ("enable", "disable"):
        raise options.UsageError(_unknown("crm-command node-maintenance", argv,
                                          ["enable <node>", "disable <node>"]))
    args, _ = options.parse(argv[1:], ["node"], {}, usage)
    check_node_name(args["node"], usage)
    if args["node"] not in node.cluster_nodes():
        raise Fail(f"no such cluster node '{args['node']}'")
    queue_crm_command(node, f"{argv[0]}-node-maintenance {args['node']}")
    return 0


def cmd_crm(node: Node, argv: list[str]) -> int:
    subs = {"migrate": cmd_motion("migrate"), "relocate": cmd_motion("relocate"),
            "stop": cmd_stop, "node-maintenance": cmd_maintenance}
    if not argv or argv[0] not in subs:
        raise options.UsageError(_unknown("crm-command", argv, [
            "migrate <sid> <node>", "relocate <sid> <node>", "stop <sid> <timeout>",
            "node-maintenance enable <node>", "node-maintenance disable <node>"]))
    return subs[argv[0]](node, argv[1:])


# -- groups (PVE 8) -------------------------------------------------------------------------
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


def _explicit(text: str) -> frozenset:
    return frozenset(i.split(":")[0] for i in re.split(r"[,;\s]+", text) if ":" in i)


def cmd_groupadd(node: Node, argv: list[str]) -> int:
    usage = "ha-manager groupadd <group> --nodes <string> [OPTIONS]"
    args, opts = options.parse(argv, ["group"], GROUP_OPTS, usage)
    if "nodes" not in opts:
        raise param_error("nodes", "property is missing and it is not optional", usage)
    if not _GROUP_ID.match(args["group"]):
        raise param_error("group", f"invalid configuration ID '{args['group']}'", usage)
    if opts.get("type", "group") != "group":
        raise Fail("types does not match")
    values = _group_values(opts, usage)
    node.check_quorum()
    try:
        node.path("ha").mkdir(exist_ok=True)
    except OSError:
        pass
    with node.lock("create ha group failed"):
        groups = node.groups()
        if args["group"] in groups:
            raise Fail(f"ha group ID '{args['group']}' already defined")
        entry = config.Section(values)
        entry.stored = frozenset(values)
        entry.explicit = _explicit(str(opts["nodes"]))
        groups[args["group"]] = entry
        node.write(config.GROUPS_CFG, config.render_groups(groups))
    return 0


def cmd_groupset(node: Node, argv: list[str]) -> int:
    usage = "ha-manager groupset <group> [OPTIONS]"
    args, opts = options.parse(argv, ["group"], {**GROUP_OPTS, "delete": "str",
                                                 "digest": "str"}, usage)
    values = _group_values(opts, usage)
    delete = [k for k in re.split(r"[,;\s]+", str(opts.get("delete", ""))) if k]
    with node.lock("update ha group failed"):
        groups = node.groups()
        group = groups.get(args["group"])
        if group is None:
            raise Fail(f"no such ha group '{args['group']}'")
        _update_section(group, values, opts, delete, required=("nodes",),
                        deletable=("restricted", "nofailback", "comment"),
                        zeroed=("restricted", "nofailback"))
        node.write(config.GROUPS_CFG, config.render_groups(groups))
    return 0


def _update_section(section, values: dict, opts: dict, delete: list[str], *,
                    required: tuple[str, ...], deletable: tuple[str, ...],
                    zeroed: tuple[str, ...]) -> None:
    """`groupset` / `rules set`: set ``values``, then ``--delete`` keys (a required key
    cannot be, a flag in ``zeroed`` goes back to 0); track which keys are stored."""
    section.update(values)
    stored = set(getattr(section, "stored", frozenset())) | set(values)
    if "nodes" in values:
        section.explicit = _explicit(str(opts["nodes"]))
    for key in delete:
        if key in required:
            raise Fail(f"unable to delete required option '{key}'")
        if key not in deletable:
            raise Fail(f"no such option '{key}'")
        section.pop(key, None)
        stored.discard(key)
        if key in zeroed:
            section[key] = 0
    section.stored = frozenset(stored)


def cmd_groupremove(node: Node, argv: list[str]) -> int:
    args, _ = options.parse(argv, ["group"], {}, "ha-manager groupremove <group>")
    with node.lock("delete ha group failed"):
        for sid, props in node.resources().items():
            if props.get("group") == args["group"]:
                raise Fail(f"ha group is used by service '{sid}'")
        groups = node.groups()
        groups.pop(args["group"], None)
        node.write(config.GROUPS_CFG, config.render_groups(groups))
    return 0


def cmd_groupconfig(node: Node, argv: list[str]) -> int:
    options.parse(argv, [], {}, "ha-manager groupconfig")
    for name, group in sorted(node.groups().items()):
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


# -- rules (PVE 9) -----------------------------------------------------------------------
RULE_OPTS = {"resources": "str", "nodes": "str", "strict": "bool", "affinity": "str",
             "comment": "str", "disable": "bool"}


def rule_list(node: Node) -> list[dict]:
    out = []
    for name, rule in node.rules().items():
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


def _rule_values(node: Node, rtype: str, opts: dict, usage: str, create: bool) -> dict:
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
        configured = node.resources()
        missing = sorted(s for s in sids if s not in configured)
        if missing:
            raise Fail(f"cannot use unmanaged resource(s) {', '.join(missing)}.")
        values["resources"] = sids
    if "nodes" in opts:
        nodes = config.parse_nodes(str(opts["nodes"]))
        unknown = sorted(n for n in nodes if n not in node.cluster_nodes())
        if unknown:
            raise Fail(f"cannot use non-existant node(s) {', '.join(unknown)}.")
        values["nodes"] = nodes
    for key in ("strict", "disable"):
        if key in opts:
            values[key] = bool01(opts[key])
    for key in ("affinity", "comment"):
        if key in opts:
            values[key] = opts[key]
    return values


def cmd_rules(node: Node, argv: list[str]) -> int:
    subs = ("list", "config", "add", "remove", "set")
    if not argv or argv[0] not in subs:
        raise options.UsageError(_unknown("rules", argv, [
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
        with node.lock("delete ha rule failed"):
            rules = node.rules()
            rules.pop(args["rule"], None)
            node.write(config.RULES_CFG, config.render_rules(rules))
        return 0
    usage = f"ha-manager rules {sub} <type> <rule> [OPTIONS]"
    args, opts = options.parse(rest, ["type", "rule"], {**RULE_OPTS, "delete": "str",
                                                        "digest": "str"}
                               if sub == "set" else RULE_OPTS, usage)
    rtype, name = args["type"], args["rule"]
    if sub == "add":
        node.check_quorum()
        if node.groups():
            raise Fail("cannot create ha rule: ha groups have not been migrated yet")
        values = _rule_values(node, rtype, opts, usage, create=True)
        with node.lock("create ha rule failed"):
            rules = node.rules()
            if name in rules:
                raise Fail(f"HA rule '{name}' already defined")
            entry = config.Section({"type": rtype, "nodes": {}, "strict": 0, **values})
            entry.stored = frozenset(values)
            entry.explicit = _explicit(str(opts.get("nodes", "")))
            rules[name] = entry
            node.write(config.RULES_CFG, config.render_rules(rules))
        return 0
    if node.groups():
        raise Fail("cannot update ha rule: ha groups have not been migrated yet")
    values = _rule_values(node, rtype, opts, usage, create=False)
    delete = [k for k in re.split(r"[,;\s]+", str(opts.get("delete", ""))) if k]
    with node.lock("update HA rules failed"):
        rules = node.rules()
        rule = rules.get(name)
        if rule is None:
            raise Fail(f"HA rule '{name}' does not exist")
        _update_section(rule, values, opts, delete,
                        required=("resources", "nodes", "affinity"),
                        deletable=("strict", "comment", "disable"), zeroed=("strict",))
        node.write(config.RULES_CFG, config.render_rules(rules))
    return 0


# -- dispatch ----------------------------------------------------------------------------
def _unknown(prefix: str, argv: list[str], lines: list[str]) -> str:
    what = f"unknown command 'ha-manager {prefix} {argv[0]}'" if argv else \
        "no command specified"
    return (f"ERROR: {what}\nUSAGE: ha-manager {prefix} <COMMAND> [ARGS] [OPTIONS]\n" +
            "\n".join(f"       ha-manager {prefix} {line}" for line in lines))


def commands(node: Node) -> dict:
    cmds = {"status": cmd_status, "config": cmd_config, "add": cmd_add, "remove": cmd_remove,
            "set": cmd_set, "migrate": cmd_motion("migrate"),
            "relocate": cmd_motion("relocate"), "crm-command": cmd_crm}
    if node.flavour >= 9:
        cmds["rules"] = cmd_rules
    else:
        # PVE 9 has no group commands (groups are migrated to rules, §9.2); guess: they
        # are unknown commands there, as on a current PVE 9 node.
        cmds.update({"groupadd": cmd_groupadd, "groupset": cmd_groupset,
                     "groupremove": cmd_groupremove, "groupconfig": cmd_groupconfig})
    return cmds


def main(argv: list[str] | None = None) -> int:
    node = Node()
    cmds = {name: (lambda args, fn=fn: fn(node, args)) for name, fn in commands(node).items()}
    return options.dispatch("ha-manager", cmds, sys.argv[1:] if argv is None else argv,
                            (Fail,))

if __name__ == "__main__":
    sys.exit(main())
