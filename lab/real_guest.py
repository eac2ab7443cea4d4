"""The test guest on real PVE nodes (libvirt and inventory labs).

The CT template must carry the pvechaos guest service (it answers each TCP connection on
its port with ``<sid> <node> <boot-id> <seq>`` and appends a write record every 100 ms,
harness/writelog.py). Guesses, to be checked on the first real run: the service writes
its log under /pvechaos, a shared bind mount of a directory on the NFS storage, so every
node with the storage active can read it; a start is made to fail with a hookscript that
exits non-zero in its pre-start phase.
"""

from __future__ import annotations

import ipaddress

from harness.lab_api import GuestRecipe


def recipe(vmid: int, *, template: str, interface: ipaddress.IPv4Interface, bridge: str,
           port: int, storage_id: str) -> GuestRecipe:
    return GuestRecipe(
        vmid=vmid, template=template, address=str(interface.ip),
        prefixlen=interface.network.prefixlen, bridge=bridge, port=port,
        storage_id=storage_id,
        log_path=f"/mnt/pve/{storage_id}/pvechaos/{vmid}/writes.log",
        failing_start=("--hookscript", f"{storage_id}:snippets/pvechaos-fail.sh"))
