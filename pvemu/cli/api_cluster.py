"""pvesh's cluster paths: GET /cluster/status, /cluster/resources and /cluster/options,
PUT /cluster/options for the `ha` key (the shutdown policy, pve-operations.md §4.4)
(PVE::API2::Cluster, PVE::API2::ClusterConfig), from the node's /etc/pve: `.members`,
the guest configs, ha/resources.cfg, ha/manager_status and datacenter.cfg.

Guesses: /cluster/status leaves `level` empty (no subscription). /cluster/resources
lists nodes (as /nodes does) and guests; a guest's `status` is its runtime state when it
belongs to this node and "unknown" elsewhere (PVE takes it from the RRD data of the
owning node's pvestatd, and says "unknown" without any); no storage or sdn entries (the
emulation broadcasts no storage status). /cluster/options gives datacenter.cfg's keys as
stored, property strings (ha, crs, migration, ...) as objects of strings and every other
value as the string written (PVE's parser keeps Perl strings too).
"""

from __future__ import annotations

import re

from pvemu.cli import api_guests
from pvemu.cli.api_nodes import machine_stats, node_entry, node_online
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode
from pvemu.cli.ha_params import param_error
from pvemu.ha import config

# datacenter.cfg keys whose value is a property string (PVE::DataCenterConfig formats)
PROPERTY_KEYS = {"ha": "shutdown_policy", "crs": "ha", "migration": "type",
                 "bwlimit": "default", "next-id": "lower", "notify": "package-updates",
                 "tag-style": "shape", "u2f": "appid", "webauthn": "rp",
                 "user-tag-access": "user-allow", "consent-text": "text",
                 "replication": "max-jobs"}


def cluster_status(node: HaNode) -> list[dict]:
    """GET /cluster/status from .members: the cluster entry (if any) and one per node
    (`online` 0|1, `local`, `ip`, `nodeid`); `quorate` on the cluster entry."""
    m = node.etc.members() or {}
    cluster = m.get("cluster") or {}
    nodelist = m.get("nodelist") or {}
    out: list[dict] = []
    if cluster.get("name"):
        out.append({"type": "cluster", "id": "cluster", "name": cluster["name"],
                    "version": cluster.get("version", 0), "nodes": len(nodelist),
                    "quorate": 1 if node.etc.quorate() else 0})
    if not nodelist:  # standalone node: only itself
        nodelist = {node.name: {"id": 0, "online": 1, "ip": ""}}
    for name in sorted(nodelist):
        info = nodelist[name]
        out.append({"type": "node", "id": f"node/{name}", "name": name,
                    "nodeid": info.get("id", 0), "online": 1 if info.get("online") else 0,
                    "local": 1 if name == node.name else 0, "ip": info.get("ip", ""),
                    "level": ""})
    return out


def guest_name(node: HaNode, sid: str, owner: str) -> str | None:
    stype, _, vmid = sid.partition(":")
    sub, key = ("qemu-server", "name") if stype == "vm" else ("lxc", "hostname")
    for line in (node.etc.read(f"nodes/{owner}/{sub}/{vmid}.conf") or "").splitlines():
        if line.startswith("["):
            break  # snapshot sections
        k, _, v = line.partition(":")
        if k.strip() == key:
            return v.strip()
    return None


def cluster_resources(node: HaNode, rtype: str | None) -> list[dict]:
    """GET /cluster/resources [--type node|vm|storage|sdn]; `hastate` is the CRM state
    from manager_status for HA-managed guests, as PVE adds it."""
    out: list[dict] = []
    if rtype in (None, "node"):
        stats = machine_stats()
        out += [node_entry(node, name, online, stats)
                for name, online in sorted(node_online(node).items())]
    if rtype not in (None, "vm"):
        return out
    res = node.etc.resources()
    ss = node.etc.manager_status().get("service_status") or {}
    local: dict[tuple[str, int], str] = {}
    for api_kind, stype in api_guests.KINDS.items():
        if any(s.startswith(stype + ":") and o == node.name
               for s, o in node.etc.vmlist().items()):
            local.update({(stype, g["vmid"]): g["status"]
                          for g in api_guests.guest_list(node, api_kind)})
    for sid, owner in sorted(node.etc.vmlist().items(), key=lambda x: int(x[0].split(":")[1])):
        stype, vmid = sid.split(":")
        kind = "qemu" if stype == "vm" else "lxc"
        rec = {"id": f"{kind}/{vmid}", "type": kind, "vmid": int(vmid), "node": owner,
               "status": local.get((stype, int(vmid)), "unknown"), "template": 0}
        gname = guest_name(node, sid, owner)
        if gname is not None:
            rec["name"] = gname
        if sid in res and res[sid].get("state") != "ignored" and ss.get(sid, {}).get("state"):
            rec["hastate"] = ss[sid]["state"]
        out.append(rec)
    return out


def cluster_options(node: HaNode) -> dict:
    """GET /cluster/options: datacenter.cfg (see the module docstring)."""
    out: dict = {}
    for line in (node.etc.read(config.DATACENTER_CFG) or "").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in PROPERTY_KEYS:
            props: dict[str, str] = {}
            for part in (p.strip() for p in value.split(",")):
                if part:
                    k, eq, v = part.partition("=")
                    props[k if eq else PROPERTY_KEYS[key]] = v if eq else k
            out[key] = props
        else:
            out[key] = value
    return out


# PUT /cluster/options: the keys emulated (the HA stack's); PVE has many more
OPTIONS_SET = {"ha": "str", "delete": "str", "digest": "str"}
SHUTDOWN_POLICIES = ("conditional", "freeze", "failover", "migrate")  # pve-model §8.1
DATACENTER_LOCK = "file-datacenter_cfg"  # cfs_lock_file('datacenter.cfg')


def set_cluster_options(node: HaNode, _p: dict, opts: dict, usage: str) -> None:
    """PUT /cluster/options (pve-manager PVE/API2/Cluster.pm set_options, pve-operations
    §4.4): under the datacenter.cfg cfs lock, a given key replaces its whole line and each
    key of `--delete` is removed. Only `ha` (shutdown_policy=<policy>) is emulated."""
    delete = [k for k in re.split(r"[,;\s]+", str(opts.get("delete", ""))) if k]
    for key in delete:
        if key not in OPTIONS_SET or key in ("delete", "digest"):
            raise CommandError(f"no such option '{key}' (the emulation sets only 'ha')")
    if "ha" in opts:
        if "ha" in delete:
            raise param_error("delete", "cannot set and delete property 'ha' at the same "
                                        "time!", usage)
        ha = str(opts["ha"])
        parsed: dict[str, str] = {}
        for part in (p.strip() for p in ha.split(",") if p.strip()):
            key, eq, value = part.partition("=")
            parsed[key if eq else "shutdown_policy"] = value if eq else key
        unknown = sorted(set(parsed) - {"shutdown_policy"})
        if unknown:
            raise param_error("ha", f"invalid format - format error\nha.{unknown[0]}: "
                                    "property is not defined in schema", usage)
        if parsed.get("shutdown_policy") not in (*SHUTDOWN_POLICIES, None):
            raise param_error("ha", "invalid format - format error\nha.shutdown_policy: "
                                    f"value '{parsed['shutdown_policy']}' does not have a "
                                    f"value in the enumeration '{', '.join(SHUTDOWN_POLICIES)}'",
                              usage)
    changed = {k: str(v) for k, v in opts.items() if k not in ("delete", "digest")}
    with node.etc.lock(DATACENTER_LOCK):
        lines = (node.etc.read(config.DATACENTER_CFG) or "").splitlines()
        kept = [ln for ln in lines if ln.partition(":")[0].strip() not in {*delete, *changed}
                or ln.lstrip().startswith("#")]
        kept += [f"{k}: {v}" for k, v in changed.items()]
        node.etc.write(config.DATACENTER_CFG, "".join(f"{ln}\n" for ln in kept))
