"""The test guest on real PVE nodes (libvirt and inventory labs).

Its template and hookscript come from lab/guest_template.py (`pvechaos-lab
guest-template`) and lie on the shared storage. The write log is in
/mnt/pve/<storage>/pvechaos/<vmid>/, bind-mounted into the container at /pvechaos with
shared=1 (every node sees it, HA may move the guest); a guest made to fail carries the
same description knob as on the embedded lab, which the hookscript acts on.
"""

from __future__ import annotations

import ipaddress

from harness.lab_api import GuestRecipe
from lab.guest_template import GUEST_DIR, HOOKSCRIPT, TEMPLATE


def template_volume(storage_id: str) -> str:
    return f"{storage_id}:vztmpl/{TEMPLATE}"


def recipe(vmid: int, *, template: str, interface: ipaddress.IPv4Interface, bridge: str,
           port: int, storage_id: str) -> GuestRecipe:
    directory = f"/mnt/pve/{storage_id}/pvechaos/{vmid}"
    return GuestRecipe(
        vmid=vmid, template=template, address=str(interface.ip),
        prefixlen=interface.network.prefixlen, bridge=bridge, port=port,
        storage_id=storage_id, log_path=f"{directory}/writes.log",
        failing_start=("--description", "pvechaos: fail-start always"),
        create_options=("--ostype", "unmanaged",
                        "--hookscript", f"{storage_id}:snippets/{HOOKSCRIPT}",
                        "--mp0", f"{directory},mp={GUEST_DIR},shared=1"),
        # a fresh write log for every guest made (an earlier run's would read as its past)
        prepare=(("rm", "-rf", directory), ("mkdir", "-p", directory)))
