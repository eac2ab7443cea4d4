"""The qemu test bed's image builder, in the parts that need no packages: the insmod
order from the modules' own `depends=`, and the initramfs archive's format."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from harness.errors import LabError
from lab.qemu_bed import image


def fake_module(root: Path, rel: str, depends: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0vermagic=x\0")


def test_dependencies_load_first_and_each_once(tmp_path):
    fake_module(tmp_path, "kernel/drivers/virtio/virtio.ko", "")
    fake_module(tmp_path, "kernel/drivers/virtio/virtio_ring.ko", "virtio")
    fake_module(tmp_path, "kernel/drivers/virtio/virtio_pci.ko", "virtio_ring,virtio")
    fake_module(tmp_path, "kernel/drivers/net/virtio_net.ko", "virtio,virtio_ring,net-failover")
    fake_module(tmp_path, "kernel/drivers/net/net_failover.ko", "")
    order = image.module_order(tmp_path, ("virtio_pci", "virtio_net"))
    names = [Path(p).stem for p in order]
    assert names == ["virtio", "virtio_ring", "virtio_pci", "net_failover", "virtio_net"]


def test_a_missing_module_is_named(tmp_path):
    fake_module(tmp_path, "kernel/a.ko", "b")
    with pytest.raises(LabError, match="kernel module b is not in"):
        image.module_order(tmp_path, ("a",))


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data) from a newc archive, as the kernel unpacks it."""
    entries, at = {}, 0
    while True:
        assert data[at:at + 6] == b"070701"
        fields = [int(data[at + 6 + 8 * i:at + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_at = at + 110
        name = data[name_at:name_at + namesize - 1].decode()
        body_at = name_at + namesize + (-(110 + namesize) % 4)
        body = data[body_at:body_at + size]
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, body)
        at = body_at + size + (-size % 4)


def test_the_initramfs_keeps_files_links_and_modes(tmp_path):
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin/busybox").write_bytes(b"\x7fELF" + b"x" * 5)
    (tree / "bin/busybox").chmod(0o755)
    (tree / "init").symlink_to("bin/busybox")
    (tree / "etc").mkdir()
    (tree / "etc/shadow").write_text("root::1:0:99999:7:::\n")
    (tree / "etc/shadow").chmod(0o600)
    entries = parse_newc(gzip.decompress(image.newc_archive(tree)))
    assert entries["bin/busybox"] == (0o100755, b"\x7fELF" + b"x" * 5)
    assert entries["init"] == (0o120777, b"bin/busybox")
    assert entries["etc/shadow"][0] == 0o100600
    assert entries["etc"][0] & 0o170000 == 0o040000
