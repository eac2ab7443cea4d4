"""pvesh's guest paths on this node: GET /nodes/<node>/lxc, /nodes/<node>/qemu and
/nodes/<node>/{lxc,qemu}/<vmid>/status/current (PVE::LXC::vmstatus,
PVE::QemuServer::vmstatus, PVE::HA::Config::get_service_status), from the guest configs
in /etc/pve and the running copies the node's guest runtime knows (NodeGuests). Paths of
another node are proxied to it by pvesh (pvesh.py), as PVE's pvesh does.

What a running copy reports is its process's: `pid`, `uptime` (since it started), `mem`
(its resident memory) and `cpu` (its CPU time over its uptime, a share of the node's
CPUs; guess: PVE averages over pvestatd's cycle). Configured figures: `maxmem`
(`memory`), `maxdisk` (the boot disk's size), `cpus` (`cores`, a VM's `sockets` x
`cores`), a container's `maxswap` (`swap`, default 512 MiB). Left out, as the emulation
cannot know them: netin, netout, diskread, diskwrite, a container's swap and disk use, a
VM's running-qemu/running-machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pvemu.cli import api_nodes
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode
from pvemu.guest_config import GuestError
from pvemu.guest_runtime import RUN_DIR
from pvemu.ha import config

KINDS = {"lxc": "ct", "qemu": "vm"}  # API path word -> sid type


def node_guests(node: HaNode):
    from pvemu.guest_lifecycle import NodeGuests  # heavy: only for the guest paths

    run_dir = Path(os.environ.get("PVECHAOS_GUEST_RUN_DIR", str(RUN_DIR)))
    return NodeGuests(node.name, etc=node.etc, run_dir=run_dir)


def _process(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds) of a process, (0, 0.0) if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0, 0.0
    rss = next((int(ln.split()[1]) * 1024 for ln in status.splitlines()
                if ln.startswith("VmRSS:")), 0)
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _entry(guests, api_kind: str, row: dict) -> dict:
    kind = KINDS[api_kind]
    conf = guests.load(kind, row["vmid"]).values
    cores = int(conf.get("cores", 0) or 0)
    if kind == "ct":
        cpus = cores or api_nodes.cpu_count(api_nodes.PROC)  # no `cores`: the host's CPUs
    else:
        cpus = int(conf.get("sockets", 1)) * (cores or 1)
    rec: dict = {"vmid": row["vmid"], "name": row["name"], "status": row["status"],
                 "maxmem": row["maxmem"], "maxdisk": row["maxdisk"], "cpus": cpus,
                 "uptime": 0, "mem": 0, "cpu": 0}
    if kind == "ct":
        rec["type"] = "lxc"
        rec["maxswap"] = int(conf.get("swap", 512)) * 1024 * 1024
    if row["lock"]:
        rec["lock"] = row["lock"]
    if conf.get("template") in ("1", "yes"):
        rec["template"] = 1
    state = guests.run_state(row["vmid"])
    if state is not None:
        up = max(0.0, time.time() - state.started_at)
        rss, cpu_s = _process(state.pid)
        rec.update({"pid": state.pid, "uptime": int(up), "mem": rss,
                    "cpu": round(cpu_s / up / cpus, 4) if up > 0 else 0})
    return rec


def guest_list(node: HaNode, api_kind: str) -> list[dict]:
    """GET /nodes/<this node>/lxc|qemu."""
    guests = node_guests(node)
    return [_entry(guests, api_kind, row) for row in guests.list(KINDS[api_kind])]


def ha_status(node: HaNode, sid: str) -> dict:
    """get_service_status: {managed: 0} or managed 1 with the resource's state (its
    default filled in) and group, max_restart, max_relocate where set."""
    stored = node.etc.resources()
    if sid not in stored:
        return {"managed": 0}
    full = config.resources_with_defaults(stored, {sid: node.name}, node.flavour)[sid]
    out = {"managed": 1, "state": full["state"]}
    for key in ("group", "max_restart", "max_relocate", "comment"):
        if key in stored[sid]:
            out[key] = stored[sid][key]
    return out


def guest_status(node: HaNode, api_kind: str, vmid: str) -> dict:
    """GET /nodes/<this node>/lxc|qemu/<vmid>/status/current."""
    kind = KINDS[api_kind]
    guests = node_guests(node)
    try:
        guests.load(kind, int(vmid))
    except (GuestError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    row = next(r for r in guests.list(kind) if r["vmid"] == int(vmid))
    rec = {**_entry(guests, api_kind, row), "ha": ha_status(node, f"{kind}:{vmid}")}
    if kind == "vm":
        rec["qmpstatus"] = rec["status"]  # guess: a copy that runs is not paused
    return rec
