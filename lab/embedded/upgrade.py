"""The embedded lab's `upgrade` verb: a version switch, not apt.

A node's PVE release is what its /etc/pvechaos/node.json says (``pve_version`` and the
``kernel`` that version boots: provision.release, the one place both are written). The
upgrade rewrites it, inside the running node, to the lab's next version (--upgrade-to,
default the latest the lab knows), then reboots the node as `systemctl reboot` does in it
(lab/embedded/pid1.py: every service stops in order, the node boots again). pvemu reads
the new version as its services start, so `pveversion -v` shows it after the reboot, and
the node's pvestatd stand-in publishes it to the cluster (pvemu/pvestatd.py,
pve-operations.md §3.3).

What the verb returns reads like the summary of an `apt full-upgrade` on PVE's upgrade
path (pve-operations.md §3.1), saying first that it is the embedded lab's switch.
"""

from __future__ import annotations

import json

from harness.errors import LabError
from lab import options
from lab.embedded import provision
from lab.embedded.config import EmbeddedConfig
from lab.embedded.node import NodePower

# the packages whose versions `pveversion -v` shows that the switch changes
PACKAGES = ("proxmox-ve", "pve-manager", "proxmox-kernel")
NODE_JSON = "/etc/pvechaos/node.json"  # inside the node (provision.node_json on the host)


def running(config: EmbeddedConfig, node: str) -> dict:
    """The node's node.json: what it runs now (its provisioned version until upgraded)."""
    path = provision.node_json(config, node)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"{node}: its {path} is unreadable ({exc})",
                       hint="was the lab started? (start() provisions every node)") from None


def running_version(config: EmbeddedConfig, node: str) -> str:
    """The version the node runs (its node.json), else the one it was provisioned with."""
    try:
        return str(running(config, node)["pve_version"])
    except (LabError, KeyError):
        return config.version_of(node)


def upgrade(config: EmbeddedConfig, power: NodePower, node: str) -> str:
    """Switch ``node`` to the lab's next version and start its reboot; the summary."""
    if not power.powered:
        raise LabError(f"cannot upgrade {node}: it is powered off",
                       hint="power it on first (power_on); an upgrade runs on a live node")
    info = running(config, node)
    current, target = str(info["pve_version"]), config.next_version
    if not options.is_upgrade(current, target):
        raise LabError(f"cannot upgrade {node}: it runs {current} already, and the lab's "
                       f"next version {target} is no newer major or minor release",
                       hint="give the lab a later --upgrade-to, or upgrade a node that "
                            "runs an older version")
    new = {**info, **provision.release(target)}
    wrote = power.run_inside(["sh", "-c", 'cat > "$0.new" && mv "$0.new" "$0"', NODE_JSON],
                             stdin=json.dumps(new, indent=1) + "\n")
    if wrote.returncode != 0:
        raise LabError(f"{node}: writing its new {NODE_JSON} failed: "
                       f"{(wrote.stderr or wrote.stdout).strip()[-300:]}",
                       hint="the node was not rebooted; read its logs and try again")
    rebooted = power.run_inside(["/usr/local/sbin/reboot"])
    if rebooted.returncode != 0:
        raise LabError(f"{node}: `reboot` exited with {rebooted.returncode} after the "
                       f"version switch: {(rebooted.stderr or rebooted.stdout).strip()}",
                       hint="the node keeps its new node.json; power_cut and power_on "
                            "boot it into the new version")
    return summary(node, info, new)


def summary(node: str, old: dict, new: dict) -> str:
    """An `apt full-upgrade`-like account of the switch, honest about what it is."""
    before, after = old["pve_version"], new["pve_version"]
    return "\n".join([
        f"pvechaos embedded lab: version switch on {node} (not apt: the emulated node's "
        f"{NODE_JSON} now names PVE {after})",
        "Reading package lists... Done",
        "Calculating upgrade... Done",
        "The following packages will be upgraded:",
        "  " + " ".join(PACKAGES),
        f"{len(PACKAGES)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.",
        f"Setting up pve-manager ({before} -> {after}) ...",
        f"Setting up proxmox-kernel ({old['kernel']} -> {new['kernel']}) ...",
        f"{node}: rebooting into PVE {after} (kernel {new['kernel']})",
        "",
    ])
