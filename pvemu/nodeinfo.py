"""What a node knows about itself (written by the lab at provisioning)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pvemu.timing import Timing

LAB_ETC = Path("/etc/pvechaos")  # the lab's files about this node (lab/embedded/provision.py)
NODE_JSON = LAB_ETC / "node.json"
# The node's init (lab/embedded/pid1.py) and the emulated commands meet here:
CONTROL_SOCKET = "/run/pvechaos/init.sock"  # systemctl, poweroff, the watchdog's reset
SHUTDOWN_FLAG = Path("/run/pvechaos/shutdown")  # "poweroff" or "reboot" while shutting down
BOOT_ID = Path("/run/pvechaos/boot_id")  # a new one every boot (/proc/sys/kernel/random/boot_id)


@dataclass(frozen=True)
class NodeInfo:
    name: str
    address: str
    prefixlen: int
    pve_version: str
    kernel: str
    local_db: Path  # the node's own pmxcfs database (pvemu/dcdb.py), kept across boots
    timing: Timing  # every emulated PVE timer, at the lab's timescale
    nfs_export: Path  # the lab's "NFS server" export, shared by every node
    # "cpg": pmxcfs replicates over corosync CPG (pvemu/pmxcfs.py); "shared": every node
    # serves cluster_db, one directory (pvemu/pmxcfs_shared.py; lab/embedded/config.py)
    pmxcfs: str = "cpg"
    cluster_db: Path | None = None
    # self-test switches that make this node's emulated PVE unsafe on purpose (the lab's
    # --emulation-bug, lab/embedded/config.py EMULATION_BUGS); none on every real run
    bugs: frozenset[str] = frozenset()

    @property
    def flavour(self) -> int:
        """8 or 9: the PVE generation this node emulates (from its version)."""
        return int(self.pve_version.split(".")[0])


def load(path: Path | None = None) -> NodeInfo:
    path = NODE_JSON if path is None else path
    raw = json.loads(path.read_text())
    if "timescale" not in raw:  # no default: a node never guesses its timers
        raise ValueError(f"{path} has no timescale (the lab writes it at provisioning)")
    return NodeInfo(raw["name"], raw["address"], raw["prefixlen"], raw["pve_version"],
                    raw["kernel"], Path(raw["local_db"]),
                    Timing(raw["timescale"]),
                    Path(raw.get("nfs_export", "/nonexistent")), raw.get("pmxcfs", "cpg"),
                    Path(raw["cluster_db"]) if raw.get("cluster_db") else None,
                    frozenset(raw.get("bugs", ())))
