"""The lab's libvirt XML: what real-lab.md asks of it, and that libvirt accepts it."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lab.libvirt import xml
from lab.libvirt.plan import GATEWAY, Plan


def test_every_machine_has_its_own_macs_and_addresses(config):
    plan = Plan(config)
    machines = plan.machines()
    macs = [m.management.mac for m in machines] + [m.corosync.mac for m in plan.nodes()]
    assert len(set(macs)) == len(macs)
    assert plan.machine("node1").management.mac == "52:54:00:04:01:0b"
    assert plan.machine(GATEWAY).corosync is None
    assert [m.address for m in machines] == ["198.19.4.2", "198.19.4.11", "198.19.4.12",
                                             "198.19.4.13"]
    assert plan.guest_address(100) == "198.19.4.20"


def test_virt_type_qemu_gives_software_emulated_domains(config):
    """A runner without KVM (the qemu test bed runs these domains for real)."""
    from dataclasses import replace

    tcg = replace(config, virt_type="qemu", node=replace(config.node, cpu="qemu64"))
    plan = Plan(tcg)
    dom = ET.fromstring(xml.domain(plan, plan.machine("node1"), disk="/p/node1.qcow2"))
    assert dom.get("type") == "qemu"
    assert dom.find("cpu/model").text == "qemu64"


def test_node_domain_has_watchdog_serial_log_passthrough_cpu_and_no_uefi(config):
    plan = Plan(config)
    dom = ET.fromstring(xml.domain(plan, plan.machine("node2"), disk="/p/node2.qcow2"))
    assert dom.get("type") == "kvm"
    assert dom.find("os/loader") is None  # SeaBIOS: internal snapshots need it
    assert dom.find("cpu").get("mode") == "host-passthrough"
    assert dom.find("devices/watchdog").attrib == {"model": "i6300esb", "action": "reset"}
    assert dom.find("devices/serial/log").get("file").endswith("pvechaos-t-node2-serial.log")
    nics = [(i.find("mac").get("address"), i.find("source").get("network"))
            for i in dom.findall("devices/interface")]
    assert nics == [("52:54:00:04:01:0c", "pvechaos-t-mgmt"),
                    ("52:54:00:04:02:0c", "pvechaos-t-coro")]
    assert [d.find("target").get("dev") for d in dom.findall("devices/disk")] == ["vda"]


def test_install_domain_carries_the_iso_and_the_answer_disk(config):
    plan = Plan(config)
    dom = ET.fromstring(xml.domain(plan, plan.machine("node1"), disk="/p/g.qcow2",
                                   install_media=("/p/auto.iso", "/p/answer.img")))
    disks = {d.find("target").get("dev"): (d.get("device"), d.find("source").get("file"))
             for d in dom.findall("devices/disk")}
    assert disks == {"vda": ("disk", "/p/g.qcow2"), "sda": ("cdrom", "/p/auto.iso"),
                     "vdz": ("disk", "/p/answer.img")}
    assert [b.get("dev") for b in dom.findall("os/boot")] == ["hd", "cdrom"]


def test_the_corosync_network_is_isolated_and_management_only_nat_on_request(config):
    plan = Plan(config)
    coro = ET.fromstring(xml.corosync_network(plan))
    assert coro.find("forward") is None and coro.find("ip").get("address") == "198.19.132.1"
    mgmt = ET.fromstring(xml.management_network(plan))
    assert mgmt.find("forward") is None
    hosts = {h.get("mac"): h.get("ip") for h in mgmt.findall("ip/dhcp/host")}
    assert hosts["52:54:00:04:01:0d"] == "198.19.4.13"
    from dataclasses import replace

    for mode in ("nat", "route"):
        net = ET.fromstring(xml.management_network(Plan(replace(config, forward=mode))))
        assert net.find("forward").get("mode") == mode


def test_link_state_xml_keeps_mac_source_and_model(config):
    nic = Plan(config).machine("node3").corosync
    down = ET.fromstring(xml.interface(nic, up=False))
    assert down.tag == "interface"
    assert down.find("mac").get("address") == nic.mac
    assert down.find("source").get("network") == "pvechaos-t-coro"
    assert down.find("model").get("type") == "virtio"
    assert down.find("link").get("state") == "down"


def test_libvirt_accepts_every_definition(config, host):
    plan = Plan(config)
    conn = host.conn
    conn.networkDefineXML(xml.management_network(plan)).create()
    conn.networkDefineXML(xml.corosync_network(plan)).create()
    for machine in plan.machines():
        conn.defineXML(xml.domain(plan, machine, disk=f"/p/{machine.name}.qcow2"))
    defined = ET.fromstring(conn.lookupByName("pvechaos-t-node1").XMLDesc(0))
    assert defined.find("devices/watchdog").get("model") == "i6300esb"
    assert {n.name() for n in conn.listAllNetworks()} == {"pvechaos-t-mgmt", "pvechaos-t-coro"}
