"""The node `ha-manager` (and pvesh's HA paths) runs on: its name and PVE generation,
its /etc/pve (EtcPve: the HA files' readers shared with the HA daemons), the HA domain
lock, and the resource lookups every HA command makes (PVE::HA::Config)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from pvemu import nodeinfo
from pvemu.cli.errors import CommandError
from pvemu.etc_pve import CfsError, EtcPve
from pvemu.ha import config
from pvemu.timing import Timing


class HaNode:
    """What the CLI needs to know about the node it runs on."""

    def __init__(self, etc: EtcPve | None = None) -> None:
        path = Path(os.environ.get("PVECHAOS_NODE_JSON", str(nodeinfo.NODE_JSON)))
        try:
            info: nodeinfo.NodeInfo | None = nodeinfo.load(path)
        except OSError:  # a node.json that is there but wrong is an error, not a guess
            info = None
        self.info = info
        # Guess: outside a lab node, act as PVE 9 with PVE's real timers and take the
        # name from `local`
        self.flavour, self.timing = (info.flavour, info.timing) if info else (9, Timing(1.0))
        self.etc = etc or EtcPve(timing=self.timing)
        self.name = info.name if info else (self.etc.local_node()
                                            or socket.gethostname().split(".")[0])

    def cluster_nodes(self) -> list[str]:
        """Nodes of the cluster (.members' nodelist, else the nodes/ directories) and
        this one."""
        return sorted(set(self.etc.node_names()) | {self.name})

    def lock(self, errmsg: str | None = None) -> DomainLock:
        return DomainLock(self.etc, errmsg)


class DomainLock:
    """PVE::HA::Config::lock_ha_domain: cfs_lock_domain('ha') around the code; failures
    are prefixed with what was being done, as PVE does."""

    def __init__(self, etc: EtcPve, errmsg: str | None) -> None:
        self.etc = etc
        self.errmsg = errmsg
        self._lock = None

    def _fail(self, text: str) -> CommandError:
        return CommandError(f"{self.errmsg}: {text}" if self.errmsg else text)

    def __enter__(self) -> DomainLock:
        self._lock = self.etc.lock("domain-ha")
        try:
            self._lock.__enter__()
        except CfsError as exc:
            raise self._fail(str(exc)) from None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._lock.__exit__(None, None, None)
        if isinstance(exc, CommandError | CfsError) and self.errmsg \
                and not str(exc).startswith(self.errmsg):
            raise CommandError(f"{self.errmsg}: {exc}") from None


def parse_sid(node: HaNode, sid: str) -> tuple[str, str, str]:
    """PVE::HA::Config::parse_sid: `100` becomes vm:100 or ct:100 from the vmlist."""
    if sid.isdigit():
        owner = config.vmid_owner(node.etc.vmlist(), sid)
        if owner is None:
            raise CommandError(f"unable do detect SID from VMID - VM/CT {sid} does not exist")
        sid = owner[0]
    m = re.fullmatch(r"(\S+):(\S+)", sid)
    if not m:
        raise CommandError(f"unable to parse service id '{sid}'")
    return sid, m.group(1), m.group(2)


def check_type(stype: str) -> None:
    if stype not in config.RESOURCE_TYPES:
        raise CommandError(f"unknown resource type '{stype}'")  # guess at the wording


def service_is_ha_managed(node: HaNode, sid: str) -> dict:
    d = node.etc.resources().get(sid)
    if d is None or d.get("state") == "ignored":
        raise CommandError(f"resource '{sid}' is not HA managed")
    return d


def check_service_state(node: HaNode, sid: str, req_state: str | None = None) -> None:
    """API2::HA::Resources::check_service_state: error services only accept `disabled`."""
    d = node.etc.resources().get(sid)
    if d is None or d.get("state") == "ignored":
        return
    ss = (node.etc.manager_status().get("service_status") or {}).get(sid) or {}
    if ss.get("state") == "error" and req_state != "disabled":
        raise CommandError(f"service '{sid}' in error state, must be disabled and fixed first")
