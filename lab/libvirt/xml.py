"""libvirt XML for the lab: networks, node and gateway domains, overlay volumes, snapshots.

Shapes follow real-lab.md §2: SeaBIOS (internal snapshots of pflash firmware are refused
before libvirt 10.9), q35, virtio disk and NICs with fixed MACs, an i6300esb watchdog,
the serial console logged to a file. The corosync network is isolated (no <forward>);
the management network is isolated too unless the config asks for NAT.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lab.libvirt.plan import GATEWAY, Machine, Nic, Plan


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _text(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def management_network(plan: Plan) -> str:
    c = plan.config
    net = ET.Element("network")
    _sub(net, "name", plan.management_network)
    if c.forward != "none":  # route: a remote runner routes the harness's SSH and probe
        _sub(net, "forward", mode=c.forward)
    _sub(net, "bridge", name=plan.management_bridge, stp="off")
    _sub(net, "domain", name=c.domain, localOnly="yes")
    dns = _sub(net, "dns")
    for machine in plan.machines():
        host = _sub(dns, "host", ip=machine.address)
        _sub(host, "hostname", machine.fqdn)
        _sub(host, "hostname", machine.name)
    ip = _sub(net, "ip", address=plan.host_address, netmask=str(c.management.netmask))
    dhcp = _sub(ip, "dhcp")
    for machine in plan.machines():
        _sub(dhcp, "host", mac=machine.management.mac, name=machine.name,
             ip=machine.address)
    return _text(net)


def corosync_network(plan: Plan) -> str:
    c = plan.config
    net = ET.Element("network")
    _sub(net, "name", plan.corosync_network)
    _sub(net, "bridge", name=plan.corosync_bridge, stp="off")
    _sub(net, "ip", address=plan.corosync_host_address, netmask=str(c.corosync.netmask))
    return _text(net)


def interface(nic: Nic, *, up: bool = True) -> str:
    """One NIC as a device; with its MAC it is also the argument of a live link change."""
    return _text(_interface(ET.Element("devices"), nic, up))


def _interface(devices: ET.Element, nic: Nic, up: bool) -> ET.Element:
    iface = _sub(devices, "interface", type="network")
    _sub(iface, "mac", address=nic.mac)
    _sub(iface, "source", network=nic.network)
    _sub(iface, "model", type="virtio")
    _sub(iface, "link", state="up" if up else "down")
    return iface


def domain(plan: Plan, machine: Machine, *, disk: str, install_media: tuple[str, str] | None
           = None) -> str:
    """A node's or the gateway's domain. ``disk`` is the path of its qcow2 overlay;
    ``install_media`` = (prepared ISO, answer image) while the installer runs."""
    c = plan.config
    gateway = machine.name == GATEWAY
    memory = c.gateway.memory_mib if gateway else c.node.memory_mib
    dom = ET.Element("domain", type=c.virt_type)
    _sub(dom, "name", machine.domain)
    _sub(dom, "memory", str(memory), unit="MiB")
    _sub(dom, "vcpu", "1" if gateway else str(c.node.vcpus))
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine="q35")
    _sub(os_, "boot", dev="hd")
    if install_media:
        _sub(os_, "boot", dev="cdrom")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if not gateway:
        if c.node.cpu == "qemu64":
            _sub(dom, "cpu", mode="custom", match="exact").append(_model("qemu64"))
        else:
            _sub(dom, "cpu", mode=c.node.cpu, check="none", migratable="off")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    _disk(devices, disk, "vda", "qcow2")
    if install_media:
        iso, answer = install_media
        cdrom = _sub(devices, "disk", type="file", device="cdrom")
        _sub(cdrom, "source", file=iso)
        _sub(cdrom, "target", dev="sda", bus="sata")
        _sub(cdrom, "readonly")
        _disk(devices, answer, "vdz", "raw")
    _interface(devices, machine.management, True)
    if machine.corosync is not None:
        _interface(devices, machine.corosync, True)
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "log", file=plan.serial_log(machine.name), append="on")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    if not gateway and c.node.watchdog:
        _sub(devices, "watchdog", model="i6300esb", action="reset")
    _sub(devices, "graphics", type="vnc", listen="127.0.0.1")
    return _text(dom)


def _model(name: str) -> ET.Element:
    model = ET.Element("model", fallback="allow")
    model.text = name
    return model


def _disk(devices: ET.Element, path: str, dev: str, fmt: str) -> None:
    disk = _sub(devices, "disk", type="file", device="disk")
    # cache=unsafe: a throwaway lab disk; flushes cost the nested install minutes
    _sub(disk, "driver", name="qemu", type=fmt, cache="unsafe", discard="unmap")
    _sub(disk, "source", file=path)
    _sub(disk, "target", dev=dev, bus="virtio")


def overlay_volume(name: str, capacity_gib: int, backing_path: str) -> str:
    vol = ET.Element("volume")
    _sub(vol, "name", name)
    _sub(vol, "capacity", str(capacity_gib), unit="GiB")
    target = _sub(vol, "target")
    _sub(target, "format", type="qcow2")
    backing = _sub(vol, "backingStore")
    _sub(backing, "path", backing_path)
    _sub(backing, "format", type="qcow2")
    return _text(vol)


def dir_pool(name: str, path: str) -> str:
    pool = ET.Element("pool", type="dir")
    _sub(pool, "name", name)
    target = _sub(pool, "target")
    _sub(target, "path", path)
    return _text(pool)


def snapshot(name: str, description: str) -> str:
    snap = ET.Element("domainsnapshot")
    _sub(snap, "name", name)
    _sub(snap, "description", description)
    return _text(snap)
