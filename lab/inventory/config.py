"""The inventory file (``--inventory cluster.yaml``): an existing cluster's nodes, how to
reach them, how to switch their power, and the test guest to make on it.

Secrets are never in the file: every password is named by an environment variable
(``password_env``). README.md ("An existing cluster") shows a complete file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from lab import yamlconfig as y
from lab.guest_template import STORAGE_ID, STORAGE_ID_RULE, TEMPLATE_VOLUME
from lab.libvirt.config import uri_problem

DRIVERS = ("ipmi", "redfish", "libvirt")


@dataclass(frozen=True)
class PowerSpec:
    driver: str
    host: str = ""  # ipmi
    port: int = 623  # ipmi: the BMC's UDP port (virtualbmc serves one BMC per port)
    url: str = ""  # redfish
    uri: str = ""  # libvirt
    domain: str = ""  # libvirt
    user: str = ""
    password: str = ""
    system: str | None = None  # redfish: which ComputerSystem, when the BMC has several
    verify_tls: bool = True


@dataclass(frozen=True)
class InventoryNode:
    name: str
    address: str
    link0: str | None
    ssh_user: str
    ssh_port: int
    ssh_key: Path | None
    ssh_password: str | None
    power: PowerSpec


@dataclass(frozen=True)
class InventoryGuest:
    template: str
    first_address: ipaddress.IPv4Interface  # VMID 100's address; 101 the next, ...
    bridge: str
    port: int
    vmid: int


@dataclass(frozen=True)
class Inventory:
    source: str
    cluster: str
    nodes: tuple[InventoryNode, ...]
    storage_id: str
    nfs_server: str
    nfs_export: str
    guest: InventoryGuest
    # what upgrades one node, run on it over SSH by the upgrade verb (lab/node_upgrade.py)
    upgrade_command: str | None = None

    def node(self, name: str) -> InventoryNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise y.ConfigError(f"{name!r} is not a node of inventory {self.source}",
                            hint=f"nodes are {', '.join(n.name for n in self.nodes)}")


def load(path: Path | str, *, environ: dict[str, str] | None = None) -> Inventory:
    data = y.load_yaml(path, "inventory")
    with y.reading(f"inventory {path}") as problems:
        top = y.Section(data, "", problems)
        cluster = y.matching(top, "cluster", r"[A-Za-z0-9-]{1,15}",
                             "staging (the name `pvecm status` shows)")
        defaults = top.section("ssh")
        default_user = defaults.get("user", str, "root")
        default_key = y.existing_file(defaults, "key", required=False)
        default_password = y.secret_from_env(defaults, "password_env", required=False,
                                             environ=environ)
        defaults.done()
        nodes, listed = [], 0
        for s in top.sections("nodes"):
            listed += 1
            node = _node(s, default_user, default_key, default_password, environ)
            if node is not None:
                nodes.append(node)
        names = [n.name for n in nodes]
        for name in sorted({n for n in names if names.count(n) > 1}):
            top.check("nodes", None, False, f"node {name} is listed twice",
                      "list each node once")
        for address, sharing in _shared_addresses(nodes):
            top.check("nodes", None, False, f"nodes {' and '.join(sharing)} have the same "
                      f"address {address}", "give each node its own address (address and "
                      "link0 as `pvecm status` lists them): one address reaches one node")
        # count the entries listed: a node with a mistake of its own is no missing node
        if listed and listed < 3:
            top.check("nodes", None, False, f"only {listed} node(s)",
                      "HA scenarios need three nodes: list all of the cluster's nodes")
        storage = top.section("storage", required=True)
        storage_id = y.matching(storage, "id", STORAGE_ID,
                                f"shared (a PVE storage id: {STORAGE_ID_RULE})", "shared")
        server = y.address(storage, "server")
        export = y.matching(storage, "export", r"/[A-Za-z0-9_./-]*", "/srv/pve-shared")
        storage.done()
        guest = _guest(top.section("guest", required=True))
        upgrade_command = top.get("upgrade_command", str, None)
        top.done()
    return Inventory(str(path), cluster, tuple(nodes), storage_id, server, export, guest,
                     upgrade_command=upgrade_command or None)


def _shared_addresses(nodes: list[InventoryNode]) -> list[tuple[str, list[str]]]:
    """Each address (``address`` or ``link0``) given to more than one node, with those
    nodes' names: faults aimed at one would hit the other. A node listed twice is
    reported as such, not here."""
    owners: dict[str, list[str]] = {}
    for node in nodes:
        for text in (node.address, node.link0):
            if text is None:
                continue
            try:
                address = str(ipaddress.IPv4Address(text))
            except ValueError:  # a host name: PVE1.lab and pve1.lab are one
                address = text.lower()
            names = owners.setdefault(address, [])
            if node.name not in names:
                names.append(node.name)
    return [(address, names) for address, names in owners.items() if len(names) > 1]


def _node(s: y.Section, user: str, key: Path | None, password: str | None,
          environ: dict[str, str] | None) -> InventoryNode | None:
    name = y.matching(s, "name", r"[a-zA-Z0-9][a-zA-Z0-9-]{0,62}", "pve1 (the PVE node name)")
    address = y.address(s, "address")
    # optional; get() still records it as a known key (named in a typo's suggestion)
    link0 = y.address(s, "link0") if s.has("link0") else s.get("link0", str, None)
    ssh = s.section("ssh")
    ssh_user = ssh.get("user", str, user)
    ssh_port = y.positive(ssh, "port", 22)
    if ssh_port > 65535:
        ssh.check("port", None, False, f"{ssh_port} is not a TCP port", "use 1-65535")
    ssh_key = y.existing_file(ssh, "key", required=False) or key
    ssh_password = y.secret_from_env(ssh, "password_env", required=False,
                                     environ=environ) or password
    ssh.done()
    if ssh_key is None and ssh_password is None and ssh.ok:
        s.check("ssh", None, False, "gives neither a key nor a password",
                "add `ssh: {key: ~/.ssh/id_ed25519}` at the top or for this node, or "
                "`password_env: VARIABLE`")
    power = _power(s.section("power", required=True), environ)
    s.done()
    if None in (name, address, power, ssh_user):
        return None
    return InventoryNode(name, address, link0, ssh_user, ssh_port, ssh_key, ssh_password,
                         power)


def _power(s: y.Section, environ: dict[str, str] | None) -> PowerSpec | None:
    driver = y.one_of(s, "driver", DRIVERS)
    spec = None
    if driver == "ipmi":
        host = y.address(s, "host")
        user = s.get("user", str)
        password = y.secret_from_env(s, "password_env", environ=environ)
        port = y.positive(s, "port", 623)
        if port > 65535:
            s.check("port", None, False, f"{port} is not a UDP port",
                    "use 1-65535 (623 is IPMI's)")
        spec = PowerSpec("ipmi", host=host, port=port, user=user, password=password)
    elif driver == "redfish":
        url = s.get("url", str, fix="write `url:` as https://BMC-ADDRESS")
        user = s.get("user", str)
        password = y.secret_from_env(s, "password_env", environ=environ)
        system = s.get("system", str, None)
        verify = s.get("verify_tls", bool, True)
        spec = PowerSpec("redfish", url=url, user=user, password=password, system=system,
                         verify_tls=verify)
    elif driver == "libvirt":
        uri = s.get("uri", str)
        problem = uri_problem(uri) if uri is not None else None
        if problem:
            s.check("uri", None, False, problem, "write a libvirt URI such as "
                    "qemu+ssh://root@kvm1/system")
        domain = s.get("domain", str)
        spec = PowerSpec("libvirt", uri=uri or "", domain=domain or "")
    if driver is not None:
        s.done()
    if spec is None or None in (spec.host, spec.url, spec.user, spec.password, spec.domain):
        return None
    return spec


def _guest(s: y.Section) -> InventoryGuest:
    template = y.matching(s, "template", TEMPLATE_VOLUME,
                          "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz") or ""
    text = s.get("first_address", str, fix="write `first_address:` like 10.20.0.200/24")
    first = None
    if text is not None:
        try:
            first = ipaddress.IPv4Interface(text)
            if first.network.prefixlen == 32:
                raise ValueError("no prefix length")
        except ValueError as exc:
            s.check("first_address", None, False, f"{text!r} is not an address with a "
                    f"prefix ({exc})", "write it like 10.20.0.200/24")
            first = None
    guest = InventoryGuest(template, first, s.get("bridge", str, "vmbr0"),
                           y.positive(s, "port", 7000), y.positive(s, "vmid", 100, at_least=100))
    if guest.port > 65535:
        s.check("port", None, False, f"{guest.port} is not a TCP port", "use 1-65535")
    s.done()
    return guest
