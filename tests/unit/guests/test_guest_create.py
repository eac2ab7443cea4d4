"""`pct create` / `qm create` through NodeGuests (pvemu.guest_create), no root."""

from __future__ import annotations

import pytest

from pvemu import guest_config as g
from pvemu.guest_config import GuestConfig, GuestError

NET0 = "name=eth0,bridge=vmbr0,ip=198.18.50.100/24"
TEMPLATE = "shared:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"  # in conftest


def test_a_ct_config_is_written_as_pve_writes_it(guests, pve):
    guests.create_ct(100, TEMPLATE, {"rootfs": "shared:1", "hostname": "web",
                                     "net0": NET0, "cores": 2})
    text = (pve / "nodes/node1/lxc/100.conf").read_text()
    lines = text.splitlines()
    assert lines == sorted(lines)
    assert "arch: amd64\n" in text and "ostype: debian\n" in text
    assert "rootfs: shared:100/vm-100-disk-0.raw,size=1G\n" in text
    assert "memory: 512\n" in text and "swap: 512\n" in text and "cores: 2\n" in text
    net0 = GuestConfig.parse(text).values["net0"]
    assert net0.startswith("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:")
    assert net0.endswith(",ip=198.18.50.100/24,type=veth")


def test_a_vm_config_has_the_mac_after_the_model_and_a_boot_order(guests, pve):
    guests.create_vm(110, {"name": "db", "memory": 1024, "net0": "virtio,bridge=vmbr0",
                           "scsi0": "shared:2", "ipconfig0": "ip=198.18.50.110/24"})
    conf = GuestConfig.parse((pve / "nodes/node1/qemu-server/110.conf").read_text())
    assert conf.values["scsi0"] == "shared:110/vm-110-disk-0.raw,size=2G"
    assert conf.values["boot"] == "order=scsi0;net0"
    assert conf.values["net0"].startswith("virtio=BC:24:11:")
    assert conf.values["net0"].endswith(",bridge=vmbr0")
    assert g.guest_network("vm", conf)[0] == "198.18.50.110/24"
    assert g.boot_volume("vm", conf) == "shared:110/vm-110-disk-0.raw"


def test_an_address_outside_the_lab_leaves_no_config_and_no_disk(guests, pve, tmp_path):
    with pytest.raises(GuestError, match="outside the lab subnet"):
        guests.create_ct(104, TEMPLATE, {"rootfs": "shared:1",
                                         "net0": "name=eth0,ip=10.1.2.3/24"})
    assert not (pve / "nodes/node1/lxc/104.conf").exists()
    assert not (tmp_path / "shared/images/104").exists()
