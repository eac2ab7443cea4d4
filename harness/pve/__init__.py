"""Parsers for PVE's own commands: raw output in, frozen records out."""

from harness.pve.corosync_cfgtool import LinkPeer, parse_cfgtool_status
from harness.pve.ha_status import (
    HaStatus,
    LrmLine,
    MasterLine,
    ServiceLine,
    parse_ha_manager_status,
    parse_ha_status_current,
)
from harness.pve.pvecm import Member, QuorumStatus, parse_pvecm_nodes, parse_pvecm_status
from harness.pve.version import PveVersion, parse_pveversion

__all__ = [
    "HaStatus",
    "LinkPeer",
    "LrmLine",
    "MasterLine",
    "Member",
    "PveVersion",
    "QuorumStatus",
    "ServiceLine",
    "parse_cfgtool_status",
    "parse_ha_manager_status",
    "parse_ha_status_current",
    "parse_pvecm_nodes",
    "parse_pvecm_status",
    "parse_pveversion",
]
