"""The addresses a guest of the embedded lab may have: its IP inside the lab's own subnet,
free of the nodes, the lab host and every other guest, and a MAC address of its own.

PVE checks none of this (a guest's IP is the guest's business); the embedded lab has no
DHCP and one shared bridge, so a guest with a stray or duplicate address would disturb
the other guests or the nodes. New MACs are as PVE::Tools::random_ether_addr makes them
(PVE 8.1+: Proxmox's OUI BC:24:11).
"""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import TYPE_CHECKING

from pvemu import nodeinfo
from pvemu.guest_config import KIND_DIR, GuestError, guest_network

if TYPE_CHECKING:
    from pvemu.guest_store import GuestStore

MAC_PREFIX = "BC:24:11"  # Proxmox's OUI, used by PVE 8.1+ for new guests


def random_mac(rng: random.Random | None = None) -> str:
    rng = rng or random.SystemRandom()
    return MAC_PREFIX + "".join(f":{rng.randrange(256):02X}" for _ in range(3))


def check_lab_address(cidr: str, info: nodeinfo.NodeInfo, reserved: set[str]) -> None:
    """A guest may only use an address of the lab's own subnet that nobody else has."""
    lab = ipaddress.ip_network(f"{info.address}/{info.prefixlen}", strict=False)
    if cidr == "dhcp" or "/" not in cidr:
        raise GuestError(f"ip={cidr} is not supported on the embedded lab (no DHCP): give "
                         f"ip=<address>/<prefix> inside the lab subnet {lab}")
    try:
        iface = ipaddress.ip_interface(cidr)
    except ValueError:
        raise GuestError(f"invalid IP address '{cidr}'") from None
    if iface.ip not in lab:
        raise GuestError(f"address {iface.ip} is outside the lab subnet {lab}: guests may "
                         f"only use addresses of the lab's own subnet")
    if iface.ip in (lab.network_address, lab.broadcast_address, lab.network_address + 1):
        raise GuestError(f"address {iface.ip} is reserved in the lab subnet {lab} (network, "
                         "broadcast or the lab host)")
    if str(iface.ip) in reserved:
        raise GuestError(f"address {iface.ip} is already used in the lab subnet {lab}")


def node_addresses() -> set[str]:
    """The lab's node addresses, from /etc/hosts (provision writes every node there)."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return set()
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


def reserved_addresses(store: GuestStore, skip_vmid: int | None = None) -> set[str]:
    """The nodes' addresses and those of every guest config in the cluster but
    ``skip_vmid``'s (the guest being checked keeps its own)."""
    used = node_addresses()
    for node in store.node_names():
        for kind in KIND_DIR:
            for stem in store.config_stems(kind, node):
                if stem == str(skip_vmid):
                    continue
                conf = store.read_config(kind, stem, node)
                ip, _ = guest_network(kind, conf) if conf else (None, None)
                if ip and "/" in ip:
                    used.add(ip.split("/")[0])
    return used
