"""storage.cfg in PVE's SectionConfig format, and volume naming."""

from __future__ import annotations

import dataclasses

import pytest

from pvemu import storage
from pvemu.storage import StorageError, Storages
from pvemu.timing import Timing

PVE_DEFAULT = """dir: local
\tpath /var/lib/vz
\tcontent iso,vztmpl,backup

lvmthin: local-lvm
\tthinpool data
\tvgname pve
\tcontent rootdir,images
"""


def test_a_pve_storage_cfg_reads_and_writes_back_unchanged():
    sections = storage.parse(PVE_DEFAULT)
    assert list(sections) == ["local", "local-lvm"]
    assert sections["local-lvm"] == {"type": "lvmthin", "thinpool": "data", "vgname": "pve",
                                     "content": "rootdir,images"}
    # fixed keys first (path), then the rest sorted: PVE's writer order
    assert storage.render({"local": sections["local"]}) == (
        "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n")


def test_nfs_fixed_keys_come_first_and_sections_are_separated_by_a_blank_line():
    text = storage.render({
        "local": {"type": "dir", "path": "/var/lib/vz", "content": "iso"},
        "shared": {"type": "nfs", "server": "198.18.0.1", "path": "/mnt/pve/shared",
                   "export": "/export", "content": "rootdir,images"}})
    assert text == ("dir: local\n\tpath /var/lib/vz\n\tcontent iso\n\n"
                    "nfs: shared\n\texport /export\n\tpath /mnt/pve/shared\n"
                    "\tserver 198.18.0.1\n\tcontent rootdir,images\n")
    assert storage.parse(text)["shared"]["server"] == "198.18.0.1"


def test_local_is_always_there_as_pve_adds_it():
    assert storage.with_local({})["local"]["path"] == "/var/lib/vz"
    odd = storage.with_local({"local": {"type": "nfs", "path": "/x"}})
    assert odd["local"]["type"] == "dir"


def test_pvesm_add_and_remove(tmp_path, info):
    (tmp_path / "pve").mkdir()
    store = Storages(tmp_path / "pve", info)
    store.add("nfs", "shared", {"server": "198.18.50.1", "export": "/export",
                                "content": "rootdir,images"})
    cfg = storage.parse((tmp_path / "pve/storage.cfg").read_text())
    assert cfg["shared"]["path"] == "/mnt/pve/shared"
    with pytest.raises(StorageError, match="storage ID 'shared' already defined"):
        store.add("nfs", "shared", {"server": "a", "export": "/b"})
    with pytest.raises(StorageError, match="missing value for required option 'export'"):
        store.add("nfs", "other", {"server": "a"})
    with pytest.raises(StorageError, match="unknown content type 'movies'"):
        store.add("nfs", "other", {"server": "a", "export": "/b", "content": "movies"})
    store.remove("shared")
    assert "shared" not in storage.parse((tmp_path / "pve/storage.cfg").read_text())
    with pytest.raises(StorageError, match="delete storage failed: storage 'shared' does "
                       "not exist"):
        store.remove("shared")


def test_storage_cfg_is_edited_under_the_cluster_lock(tmp_path, info):
    (tmp_path / "pve/nodes").mkdir(parents=True)  # a quorate standalone root
    # PVE's 10 s lock wait at the node's timescale: 0.3 s
    store = Storages(tmp_path / "pve", dataclasses.replace(info, timing=Timing(0.03)))
    lock = tmp_path / "pve/priv/lock/file-storage_cfg"
    seen = []
    real_write = store.write
    store.write = lambda sections: (seen.append(lock.is_dir()), real_write(sections))
    store.add("nfs", "shared", {"server": "198.18.50.1", "export": "/export"})
    assert seen == [True] and not lock.exists()  # held while writing, released after
    lock.mkdir()  # another node holds it (and keeps renewing it: utime is no help here)
    with pytest.raises(StorageError, match="delete storage failed: cfs-lock "
                       "'file-storage_cfg' error: got lock request timeout"):
        store.remove("shared")
    assert "shared" in storage.parse((tmp_path / "pve/storage.cfg").read_text())


def test_volumes_follow_pve_naming_on_file_storages(pve, info, tmp_path):
    store = Storages(pve, info)
    first = store.alloc("shared", 100, "rootdir")
    second = store.alloc("shared", 100, "images")
    assert (first.volid, second.volid) == ("shared:100/vm-100-disk-0.raw",
                                           "shared:100/vm-100-disk-1.raw")
    assert store.volume_path(first.volid) == tmp_path / "shared/images/100/vm-100-disk-0.raw"
    assert storage.parse_volid("shared:100/vm-100-disk-1.raw") == second
    with pytest.raises(StorageError, match="does not exist"):
        store.alloc("nosuch", 100, "images")
    store.free(first.volid)
    store.free(second.volid)
    assert not (tmp_path / "shared/images/100").exists()


@pytest.mark.parametrize(("gib", "text"), [(1, "1G"), (32, "32G"), (0.5, "512M")])
def test_sizes_are_written_as_pve_writes_them(gib, text):
    assert storage.format_size(gib) == text
    assert storage.size_bytes(text) == int(gib * 1024 ** 3)


def test_pvesm_status_layout():
    from pvemu.cli.pvesm import format_status
    out = format_status([{"storage": "shared", "type": "nfs", "active": True,
                          "enabled": True, "total": 1024 * 1000, "used": 1024 * 250,
                          "avail": 1024 * 750}])
    header, row = out.splitlines()
    # Perl: printf "%-${maxlen}s %10s %10s %15s %15s %15s %8s\n", maxlen = longest id + 1
    assert header == "Name   " + " " + " " * 6 + "Type" + " " + " " * 4 + "Status" + \
        " " + " " * 10 + "Total" + " " + " " * 11 + "Used" + " " + " " * 6 + "Available" + \
        " " + " " * 7 + "%"
    assert row == "shared " + " " + " " * 7 + "nfs" + " " + " " * 4 + "active" + " " + \
        " " * 11 + "1000" + " " + " " * 12 + "250" + " " + " " * 12 + "750" + " " + \
        "  25.00%"
