"""A consistent `ready` cut of every VM of a lab, and the way back to it.

Taking: pause every running domain, snapshot each (RAM + disk, internal), resume them
all, so corosync and pmxcfs state agree between nodes. Reverting: every domain back to
the snapshot paused, then all resumed together (real-lab.md §3.4). The caller then steps
the guests' clocks, which resume with the time of the snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.errors import LabError
from lab.libvirt import xml
from lab.libvirt.host import Host, libvirt_module

READY = "ready"


def has_snapshot(dom: Any, name: str = READY) -> bool:
    return name in dom.snapshotListNames(0)


def take(host: Host, domains: Sequence[Any], name: str = READY) -> None:
    """Replace ``name`` on every domain with one cut taken while all are paused."""
    paused: list[Any] = []
    try:
        for dom in domains:
            if dom.isActive() and dom.state()[0] != 3:
                host.call(f"pause {dom.name()}", dom.suspend)
                paused.append(dom)
        for dom in domains:
            if has_snapshot(dom, name):
                host.call(f"delete snapshot {name} of {dom.name()}",
                          dom.snapshotLookupByName(name, 0).delete, 0)
            host.call(f"snapshot {name} of {dom.name()}", dom.snapshotCreateXML,
                      xml.snapshot(name, "pvechaos: cluster formed, storage added"), 0)
    finally:
        errors = []
        for dom in paused:
            try:
                host.call(f"resume {dom.name()}", dom.resume)
            except LabError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


def revert(host: Host, domains: Sequence[Any], name: str = READY) -> None:
    """Every domain back to ``name``, paused, then all resumed together. Raises LabError
    if any domain lacks the snapshot or a call fails (the caller falls back)."""
    libvirt = libvirt_module()
    missing = [d.name() for d in domains if not has_snapshot(d, name)]
    if missing:
        raise LabError(f"no {name!r} snapshot on {', '.join(missing)}")
    for dom in domains:
        snap = dom.snapshotLookupByName(name, 0)
        host.call(f"revert {dom.name()} to {name}", dom.revertToSnapshot, snap,
                  libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED
                  | libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE)
    for dom in domains:
        if dom.state()[0] == 3:
            host.call(f"resume {dom.name()}", dom.resume)


def delete_all(host: Host, dom: Any) -> None:
    for snap_name in dom.snapshotListNames(0):
        host.call(f"delete snapshot {snap_name} of {dom.name()}",
                  dom.snapshotLookupByName(snap_name, 0).delete, 0)
