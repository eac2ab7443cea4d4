"""The preflight's parsers on recorded outputs: corosync-cmapctl (knet stats, nodelist),
storage.cfg, `pvesm status`, `ha-manager config` and a guest's volumes."""

from __future__ import annotations

import pytest

from harness.errors import ParseError
from harness.pve.cmap import CorosyncNode, KnetLink, parse_cmap, parse_knet_links, parse_nodelist
from harness.pve.storage import (
    StorageDef,
    guest_volumes,
    parse_ha_resources,
    parse_pvesm_status,
    parse_storage_cfg,
    volume_storage,
)


def test_knet_links_per_peer_with_latency_in_microseconds(load):
    links = parse_knet_links(load("pve8/corosync_cmapctl_stats_knet.txt"))
    assert links == (KnetLink(1, 0, True, 0, 0), KnetLink(2, 0, True, 208, 13),
                     KnetLink(3, 0, True, 348, 7))


def test_a_disconnected_second_link_is_its_own_entry(load):
    text = load("pve8/corosync_cmapctl_stats_knet.txt")
    extra = "\n".join(line.replace("node3.link0", "node3.link1")
                      .replace("connected (u8) = 1", "connected (u8) = 0")
                      for line in text.splitlines() if "node3.link0" in line)
    links = {(x.nodeid, x.link): x for x in parse_knet_links(text + extra + "\n")}
    assert links[(3, 1)].connected is False and links[(3, 0)].connected is True


@pytest.mark.parametrize("text", ["", "stats.knet.handle.rx_crypt_packets (u64) = 199\n",
                                  "Failed to initialize the cmap API. Error CS_ERR_LIBRARY\n"])
def test_no_knet_links_is_a_parse_error(text):
    with pytest.raises(ParseError, match="no stats.knet.nodeN.linkM"):
        parse_knet_links(text)


def test_a_link_without_latency_is_a_parse_error():
    with pytest.raises(ParseError, match=r"node2.link0 lacks \['latency_ave'"):
        parse_knet_links("stats.knet.node2.link0.connected (u8) = 1\n"
                         "stats.knet.node2.link0.latency_samples (u32) = 3\n")


def test_nodelist_by_node_id(load):
    nodes = parse_nodelist(load("pve8/corosync_cmapctl_nodelist.txt"))
    assert nodes == tuple(CorosyncNode(i, f"node{i}", f"198.18.70.1{i}") for i in (1, 2, 3))


def test_cmap_lines_with_spaces_in_values(load):
    cmap = parse_cmap(load("pve8/corosync_cmapctl_nodelist.txt"))
    assert cmap["totem.cluster_name"] == "pvechaos" and cmap["totem.config_version"] == "3"
    assert parse_cmap("a.b (str) = two words\n") == {"a.b": "two words"}


def test_storage_cfg_marks_nfs_shared_and_dir_local(load):
    cfg = parse_storage_cfg(load("pve8/storage_cfg_nfs.txt"))
    assert cfg == {"local": StorageDef("local", "dir", False, False, ()),
                   "shared": StorageDef("shared", "nfs", True, False, ())}


def test_storage_cfg_flags_nodes_and_shared_dirs():
    cfg = parse_storage_cfg("dir: san\n\tpath /mnt/san\n\tshared 1\n\tnodes node1,node2\n\n"
                            "lvm: vg\n\tvgname vg0\n\tshared 0\n\n"
                            "rbd: ceph\n\tpool rbd\n\tdisable\n")
    assert cfg["san"].shared and cfg["san"].on("node1") and not cfg["san"].on("node3")
    assert not cfg["vg"].shared
    assert cfg["ceph"].shared and cfg["ceph"].disabled and not cfg["ceph"].on("node1")


def test_a_property_before_any_section_is_a_parse_error():
    with pytest.raises(ParseError, match="unexpected line"):
        parse_storage_cfg("\tpath /var/lib/vz\n")


def test_pvesm_status_columns(load):
    assert parse_pvesm_status(load("pve8/pvesm_status_nfs.txt")) == {
        "local": "inactive", "shared": "active"}


def test_pvesm_status_without_header_is_a_parse_error():
    with pytest.raises(ParseError, match="Name Type Status"):
        parse_pvesm_status("storage 'x' is not online\n")


def test_ha_resources_with_and_without_properties(load):
    assert parse_ha_resources(load("pve8/ha_manager_config_ct.txt")) == (("ct", 100),)
    # PVE's printer (HA src/PVE/CLI/ha_manager.pm) indents each property with a tab
    assert parse_ha_resources("vm:101\n\tstate started\n\tgroup g1\n\nct:102\n") == (
        ("vm", 101), ("ct", 102))
    assert parse_ha_resources("") == ()


def test_container_volumes(load):
    assert guest_volumes(load("pve8/lxc_conf_shared.txt")) == (
        ("rootfs", "shared:100/vm-100-disk-0.raw"),)


def test_vm_volumes_skip_empty_drives_unused_disks_and_snapshots():
    config = ("boot: order=scsi0\nscsi0: ceph:vm-101-disk-0,size=32G\n"
              "ide2: none,media=cdrom\nide0: local:iso/debian.iso,media=cdrom\n"
              "efidisk0: file=local-lvm:vm-101-disk-1,size=4M\nunused0: local:101/old.raw\n"
              "mp0: /srv/data,mp=/data\n"
              "[before-upgrade]\nscsi1: local-lvm:vm-101-disk-2\n")
    assert guest_volumes(config) == (
        ("scsi0", "ceph:vm-101-disk-0"), ("ide0", "local:iso/debian.iso"),
        ("efidisk0", "local-lvm:vm-101-disk-1"), ("mp0", "/srv/data"))


@pytest.mark.parametrize(("volume", "storage"), [
    ("shared:100/vm-100-disk-0.raw", "shared"), ("/srv/data", None), ("/dev/sdb", None),
    ("local-lvm:vm-1-disk-0", "local-lvm")])
def test_volume_storage(volume, storage):
    assert volume_storage(volume) == storage
