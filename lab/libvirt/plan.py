"""Names, MACs and addresses of one libvirt lab, all derived from its config.

Management network: .1 the runner's bridge address (the probe's side), .2 the gateway VM
(NFS), .11.. the nodes, .20.. test guests (VMID 100 -> .20). Corosync network: .11.. the
nodes (link0), nothing else. MACs carry the lab's subnet octet, so two labs on one host
never share one.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.libvirt.config import LibvirtConfig

GATEWAY = "gw"
GUEST_OFFSET = 20


@dataclass(frozen=True)
class Nic:
    network: str  # libvirt network name
    mac: str
    address: str
    prefixlen: int


@dataclass(frozen=True)
class Machine:
    name: str  # the PVE node name ("node1") or GATEWAY
    domain: str  # libvirt domain name
    fqdn: str
    management: Nic
    corosync: Nic | None  # the gateway is not on the corosync network

    @property
    def address(self) -> str:
        return self.management.address


def _bridge(net, suffix: str) -> str:
    """`pvcv` + the subnet's first address as 8 hex digits: unique per subnet, 13 long."""
    return f"pvcv{int(net.network_address):08x}{suffix}"


class Plan:
    def __init__(self, config: LibvirtConfig) -> None:
        self.config = config
        self.prefix = f"pvechaos-{config.name}"
        self.management_network = f"{self.prefix}-mgmt"
        self.corosync_network = f"{self.prefix}-coro"
        self.node_names = tuple(f"node{i}" for i in range(1, config.node_count + 1))
        self._tag = int(config.management.network_address.packed[2])

    # -- bridges (<= 15 characters, one per subnet: two labs on one host never share) ---
    @property
    def management_bridge(self) -> str:
        return _bridge(self.config.management, "m")

    @property
    def corosync_bridge(self) -> str:
        return _bridge(self.config.corosync, "c")

    @property
    def host_address(self) -> str:
        return str(self.config.management.network_address + 1)

    @property
    def corosync_host_address(self) -> str:
        return str(self.config.corosync.network_address + 1)

    def _mac(self, net: int, host: int) -> str:
        return f"52:54:00:{self._tag:02x}:{net:02x}:{host:02x}"

    def machine(self, name: str) -> Machine:
        c = self.config
        if name == GATEWAY:
            host = 2
        elif name in self.node_names:
            host = 11 + self.node_names.index(name)
        else:
            raise KeyError(name)
        mgmt = Nic(self.management_network, self._mac(1, host),
                   str(c.management.network_address + host), c.management.prefixlen)
        coro = None if name == GATEWAY else Nic(
            self.corosync_network, self._mac(2, host),
            str(c.corosync.network_address + host), c.corosync.prefixlen)
        return Machine(name, f"{self.prefix}-{name}", f"{name}.{c.domain}", mgmt, coro)

    def nodes(self) -> tuple[Machine, ...]:
        return tuple(self.machine(n) for n in self.node_names)

    def machines(self) -> tuple[Machine, ...]:
        return (self.machine(GATEWAY), *self.nodes())

    def guest_address(self, vmid: int) -> str:
        return str(self.config.management.network_address + GUEST_OFFSET + vmid - 100)

    # -- volumes in the pool ---------------------------------------------------------------
    def golden(self, name: str, version: str) -> str:
        """The installed, read-only base of one node of this lab for one ISO version (per
        lab: the installer gave the node this lab's static address)."""
        return f"pvechaos-golden-{version}-{self.config.name}-{name}.qcow2"

    def overlay(self, name: str) -> str:
        return f"{self.prefix}-{name}.qcow2"

    def serial_log(self, name: str) -> str:
        return f"{self.config.pool_path}/{self.prefix}-{name}-serial.log"
