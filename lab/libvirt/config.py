"""The libvirt lab's YAML file (``--lab-config``), validated before anything is touched.

One file describes every lab of a run: with pytest-xdist, worker N's lab gets the N-th
next subnets and the N-th libvirt host (round robin), so labs spread across runners.
README.md ("Nested PVE on a KVM runner") shows a complete file.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from harness.errors import ConfigError
from lab import yamlconfig as y
from lab.guest_template import STORAGE_ID, STORAGE_ID_RULE, TEMPLATE_VOLUME

DEFAULT_RANGE = "198.18.0.0/15"
_NAME = r"[a-z][a-z0-9]{0,11}"
_URI_SCHEMES = ("qemu", "qemu+ssh", "qemu+tcp", "qemu+tls", "qemu+unix", "test")


@dataclass(frozen=True)
class NodeShape:
    memory_mib: int = 4096
    vcpus: int = 2
    disk_gib: int = 32
    cpu: str = "host-passthrough"  # probed on the runner; host-model or a named model
    watchdog: bool = True  # an i6300esb device: PVE's watchdog-mux can use it


@dataclass(frozen=True)
class Gateway:
    """The small VM that serves the NFS export (and NTP) on the management network."""

    image: str  # volume name of its prepared disk in the pool (Debian + nfs-kernel-server)
    export: str = "/srv/pvechaos"
    memory_mib: int = 512


@dataclass(frozen=True)
class GuestSpec:
    template: str  # CT template volume id on every node, with the pvechaos guest service
    port: int = 7000
    bridge: str = "vmbr0"
    storage_id: str = "shared"


@dataclass(frozen=True)
class LibvirtConfig:
    source: str
    name: str
    hosts: tuple[str, ...]
    pool: str
    pool_path: Path
    iso: Path | None
    iso_version: str
    root_password: str
    ssh_key: Path
    domain: str
    allowed_range: ipaddress.IPv4Network
    management: ipaddress.IPv4Network
    corosync: ipaddress.IPv4Network
    forward: str  # management network: none (isolated), nat, or route (remote hosts)
    node_count: int
    node: NodeShape
    gateway: Gateway
    guest: GuestSpec
    install_timeout_s: float
    boot_timeout_s: float
    # what upgrades one node, run on it over SSH by the upgrade verb (lab/node_upgrade.py)
    upgrade_command: str | None = None
    virt_type: str = "kvm"  # qemu: software emulation (TCG), for a runner without KVM

    def for_worker(self, index: int) -> LibvirtConfig:
        """The lab of xdist worker ``index`` (0 for a plain run): own names, subnets and
        MACs, the index-th host round robin."""
        from dataclasses import replace

        nets = [self._shifted(net, index) for net in (self.management, self.corosync)]
        # worker i's management must not land on worker j's corosync (adjacent subnets
        # would): each worker checks the pairs it completes
        for other in range(index + 1):
            mine_theirs = ((nets[0], self._shifted(self.corosync, other)),
                           (self._shifted(self.management, other), nets[1]))
            for management, corosync in mine_theirs:
                if management.overlaps(corosync):
                    raise ConfigError(
                        f"{self.source}: with {index + 1} xdist workers, one lab's "
                        f"management {management} overlaps another's corosync {corosync}",
                        hint="put the corosync subnet further from the management one "
                             "(the defaults are 128 subnets apart)")
        return replace(self, name=f"{self.name}{index}" if index else self.name,
                       management=nets[0], corosync=nets[1],
                       hosts=(self.hosts[index % len(self.hosts)],))


    def _shifted(self, net: ipaddress.IPv4Network, index: int) -> ipaddress.IPv4Network:
        first = int(net.network_address) + index * net.num_addresses
        # past 255.255.255.255 an int would turn into an IPv6 network: refuse it too
        shifted = ipaddress.IPv4Network((first, net.prefixlen)) if first < 2**32 else None
        if shifted is None or not shifted.subnet_of(self.allowed_range):
            raise ConfigError(
                f"{self.source}: worker {index}'s lab would use "
                f"{shifted or 'a subnet past 255.255.255.255'}, outside "
                f"allowed_range {self.allowed_range}",
                hint="run fewer xdist workers or choose lower management/corosync "
                     "subnets")
        return shifted


def load(path: Path | str, *, environ: dict[str, str] | None = None) -> LibvirtConfig:
    data = y.load_yaml(path, "libvirt lab config")
    with y.reading(f"libvirt lab config {path}") as problems:
        top = y.Section(data, "", problems)
        name = y.matching(top, "name", _NAME, "nightly (1-12 lowercase letters/digits)",
                          "pvechaos")
        hosts = tuple(_hosts(top))
        pool = y.matching(top, "pool", r"[A-Za-z0-9_.-]+", "pvechaos", "pvechaos")
        pool_path = Path(top.get("pool_path", str, "/var/lib/pvechaos/libvirt"))
        iso_text = top.get("iso", str, None)
        iso_version = y.matching(top, "iso_version", r"[0-9]+\.[0-9]+([.-][0-9]+)?",
                                 '"8.4-1" (the version in the ISO file name)')
        password = y.secret_from_env(top, "root_password_env", environ=environ)
        if password is not None and len(password) < 8:
            top.check("root_password_env", None, False,
                      "the root password is shorter than 8 characters",
                      "PVE 8.4 and later refuse it: use 8 or more")
        ssh_key = y.existing_file(top, "ssh_key")
        if ssh_key is not None and not ssh_key.with_name(ssh_key.name + ".pub").is_file():
            top.check("ssh_key", None, False, f"{ssh_key}.pub is missing",
                      f"ssh-keygen -y -f {ssh_key} > {ssh_key}.pub")
        domain = y.matching(top, "domain", r"[a-z0-9-]+(\.[a-z0-9-]+)+", "lab.test",
                            "lab.test")
        allowed = y.network(top, "allowed_range", DEFAULT_RANGE)
        management = y.network(top, "management", "198.19.0.0/24", inside=allowed)
        corosync = y.network(top, "corosync", "198.19.128.0/24", inside=allowed)
        for key, net in (("management", management), ("corosync", corosync)):
            if net is not None and net.num_addresses < 32:
                top.check(key, None, False, f"{net} is too small", "use a /27 or larger")
        if management and corosync and management.overlaps(corosync):
            top.check("corosync", None, False, f"{corosync} overlaps management {management}",
                      "give corosync its own subnet")
        forward = y.one_of(top, "forward", ("none", "nat", "route"), "none")
        virt_type = y.one_of(top, "virt_type", ("kvm", "qemu"), "kvm") or "kvm"
        node_count = y.positive(top, "nodes", 3)
        if node_count > 9:
            top.check("nodes", None, False, f"{node_count} nodes are not supported",
                      "use 1 to 9 nodes (3 is the HA minimum)")
        shape = _node_shape(top.section("node"))
        if virt_type == "qemu" and shape.cpu != "qemu64":
            # libvirt refuses host-passthrough and host-model without KVM
            top.check("virt_type", None, False, f"virt_type qemu (no KVM) cannot give the "
                      f"nodes cpu {shape.cpu}", "set node: {cpu: qemu64}")
        gateway = _gateway(top.section("gateway", required=True))
        guest = _guest(top.section("guest", required=True))
        install_min = y.positive(top, "install_timeout_min", 30)
        boot_min = y.positive(top, "boot_timeout_min", 10)
        upgrade_command = top.get("upgrade_command", str, None)
        top.done()
    return LibvirtConfig(
        source=str(path), name=name, hosts=hosts, pool=pool, pool_path=pool_path,
        iso=Path(iso_text) if iso_text else None, iso_version=iso_version,
        root_password=password, ssh_key=ssh_key, domain=domain, allowed_range=allowed,
        management=management, corosync=corosync, forward=forward, node_count=node_count,
        node=shape, gateway=gateway, guest=guest, install_timeout_s=install_min * 60.0,
        boot_timeout_s=boot_min * 60.0, upgrade_command=upgrade_command or None,
        virt_type=virt_type)


def _hosts(top: y.Section):
    uris = top.get("hosts", list, ["qemu:///system"])
    if uris is not None and not uris:
        top.check("hosts", None, False, "is empty", "list at least one libvirt URI, "
                  "e.g. qemu:///system")
    for index, uri in enumerate(uris or ()):
        problem = uri_problem(uri)
        if problem:
            top.check(f"hosts[{index}]", None, False, problem,
                      "write a libvirt URI such as qemu:///system or "
                      "qemu+ssh://root@runner2/system?keyfile=/root/.ssh/id_ed25519")
        else:
            yield uri


def uri_problem(uri: object) -> str | None:
    if not isinstance(uri, str):
        return f"{uri!r} is not text"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as exc:
        return f"{uri!r} is not a libvirt URI ({exc})"
    if parts.scheme not in _URI_SCHEMES:
        return f"{uri!r} is not a libvirt URI (scheme {parts.scheme or 'missing'!r})"
    if parts.scheme.startswith("qemu") and parts.path not in ("/system", "/session"):
        return f"{uri!r} must end in /system or /session"
    if parts.scheme in ("qemu+ssh", "qemu+tcp", "qemu+tls") and not parts.hostname:
        return f"{uri!r} names no host"
    return None


def _node_shape(s: y.Section) -> NodeShape:
    shape = NodeShape(
        memory_mib=y.positive(s, "memory_mib", NodeShape.memory_mib, at_least=2048),
        vcpus=y.positive(s, "vcpus", NodeShape.vcpus),
        disk_gib=y.positive(s, "disk_gib", NodeShape.disk_gib, at_least=8),
        cpu=y.one_of(s, "cpu", ("host-passthrough", "host-model", "qemu64"),
                     NodeShape.cpu) or NodeShape.cpu,
        watchdog=s.get("watchdog", bool, True))
    s.done()
    return shape


def _gateway(s: y.Section) -> Gateway:
    gateway = Gateway(
        image=y.matching(s, "image", r"[A-Za-z0-9_.-]+", "gw-debian12.qcow2 (a volume in "
                         "the pool)") or "",
        export=y.matching(s, "export", r"/[A-Za-z0-9_./-]*", "/srv/pvechaos",
                          Gateway.export),
        memory_mib=y.positive(s, "memory_mib", Gateway.memory_mib, at_least=256))
    s.done()
    return gateway


def _guest(s: y.Section) -> GuestSpec:
    guest = GuestSpec(
        template=y.matching(s, "template", TEMPLATE_VOLUME,
                            "local:vztmpl/pvechaos-guest_1.0_amd64.tar.xz") or "",
        port=y.positive(s, "port", GuestSpec.port),
        bridge=y.matching(s, "bridge", r"vmbr[0-9]+", "vmbr0", GuestSpec.bridge),
        storage_id=y.matching(s, "storage", STORAGE_ID,
                              f"shared (a PVE storage id: {STORAGE_ID_RULE})",
                              GuestSpec.storage_id))
    if guest.port > 65535:
        s.check("port", None, False, f"{guest.port} is not a TCP port", "use 1-65535")
    s.done()
    return guest


def valid_name(name: str) -> bool:
    return re.fullmatch(_NAME, name) is not None
