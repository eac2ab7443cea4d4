"""Parsers for PVE's own commands: raw output in, frozen records out."""

from harness.pve.corosync_cfgtool import LinkPeer, parse_cfgtool_status
from harness.pve.pvecm import Member, QuorumStatus, parse_pvecm_nodes, parse_pvecm_status
from harness.pve.version import PveVersion, parse_pveversion

__all__ = [
    "LinkPeer",
    "Member",
    "PveVersion",
    "QuorumStatus",
    "parse_cfgtool_status",
    "parse_pvecm_nodes",
    "parse_pvecm_status",
    "parse_pveversion",
]
