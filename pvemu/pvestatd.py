"""pvestatd on an embedded node, as far as the HA stack needs it: the node's
`version-info` (pve-operations.md §3.3, §3.4).

PVE's pvestatd broadcasts the node's pve-manager version every cycle (10 s) as the
key-value `version-info` (PVE::Cluster::broadcast_node_kv), which a PVE 9 CRM reads for
each node (PVE2.pm get_node_version) before it migrates the HA groups to rules. pvemu's
pmxcfs has no key-value store; here the value is a file of the node's directory in
/etc/pve (pvemu/ha/config.py ``version_info_path``, ours), so it reaches every node as
the cluster's files do. Each cycle publishes what node.json names, written only when the
stored value differs (a node that booted into a new version, or joined a cluster whose
files do not have it yet). Without quorum, or before pmxcfs is mounted, the cycle
publishes nothing and the next one tries again.
"""

from __future__ import annotations

import sys
import time

from pvemu import nodeinfo
from pvemu.etc_pve import CfsError, EtcPve
from pvemu.ha import config

CYCLE_S = 10.0  # pvestatd's update loop (PVE::Service::pvestatd, $updatetime)


def publish(etc: EtcPve, node: str, version: str) -> bool:
    """One cycle: True when the value was written now."""
    if not etc.quorate():  # also: pmxcfs not mounted (never write under the mount point)
        return False
    path, value = config.version_info_path(node), config.version_info(version)
    try:
        if etc.read(path) == value:
            return False
        etc.write(path, value)
    except (CfsError, OSError):
        return False
    return True


def main() -> int:
    info = nodeinfo.load()
    etc = EtcPve()
    cycle = info.timing.s(CYCLE_S)
    while True:
        if publish(etc, info.name, info.pve_version):
            print(f"{info.name} pvestatd: published version-info {info.pve_version}",
                  flush=True)
        time.sleep(cycle)


if __name__ == "__main__":
    sys.exit(main())
