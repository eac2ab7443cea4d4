"""pmxcfs's virtual status files (pve-model.md §14.4): `.members` and `.vmlist`.

`.members` says which nodes are online, meaning whose pmxcfs is in this node's current
CPG membership (CL `src/pmxcfs/status.c` `dfsm_confchg` sets `online` from the CPG members;
pve-faults.md §4.3: a stopped pmxcfs makes its node offline to HA); the HA CRM reads it
through get_members. While this node is not in the group, no node is online. `.vmlist`
says which node owns each guest, meaning whose directory holds its config. Layouts follow
pmxcfs's `status.c` as far as pvechaos knows them; the `version` counters are ours (a
change counter, not pmxcfs's).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pvemu import corosync_conf


def members(node: str, db: Path, quorate: bool, member_ids: tuple[int, ...],
            version: int) -> dict:
    try:
        conf = corosync_conf.parse((db / "corosync.conf").read_text())
    except (OSError, ValueError):
        return {"nodename": node, "version": version}  # standalone
    nodes = corosync_conf.nodes(conf)
    totem = conf.get("totem", {})
    return {
        "nodename": node,
        "version": version,
        "cluster": {"name": totem.get("cluster_name", ""),
                    "version": int(totem.get("config_version", "0")),
                    "nodes": len(nodes), "quorate": int(quorate)},
        "nodelist": {
            n["name"]: {"id": int(n["nodeid"]),
                        "online": int(int(n["nodeid"]) in member_ids),
                        "ip": n.get("ring0_addr", "")}
            for n in sorted(nodes, key=lambda n: n["name"])
        },
    }


def vmlist(db: Path, version: int) -> dict:
    ids: dict[str, dict] = {}
    nodes_dir = db / "nodes"
    try:
        node_names = sorted(os.listdir(nodes_dir))
    except OSError:
        node_names = []
    for node in node_names:
        for sub, kind in (("qemu-server", "qemu"), ("lxc", "lxc")):
            try:
                names = os.listdir(nodes_dir / node / sub)
            except OSError:
                continue
            for name in names:
                vmid = name.removesuffix(".conf")
                if name.endswith(".conf") and vmid.isdigit():
                    ids[vmid] = {"node": node, "type": kind, "version": version}
    return {"version": version, "ids": dict(sorted(ids.items(), key=lambda kv: int(kv[0])))}


def render(data: dict) -> bytes:
    return (json.dumps(data, indent=1) + "\n").encode()
