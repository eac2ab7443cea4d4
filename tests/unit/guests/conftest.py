"""A fake /etc/pve (plain directories) and a node that owns it, no root needed.

As pmxcfs serves it, the root has a `local` link to the node's own directory; EtcPve's
quorum rule reads the write bit through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pvemu.etc_pve import EtcPve
from pvemu.guest_lifecycle import NodeGuests
from pvemu.nodeinfo import NodeInfo
from pvemu.storage import Storages
from pvemu.timing import Timing


@pytest.fixture
def info(tmp_path: Path) -> NodeInfo:
    return NodeInfo("node1", "198.18.50.11", 24, "8.4.1", "6.8.12-9-pve",
                    tmp_path / "lab/nodes/node1/pmxcfs-db",
                    Timing(1.0), tmp_path / "lab/nfs")


@pytest.fixture
def pve(tmp_path: Path) -> Path:
    root = tmp_path / "pve"
    for node in ("node1", "node2", "node3"):
        for sub in ("lxc", "qemu-server"):
            (root / "nodes" / node / sub).mkdir(parents=True)
    (root / "local").symlink_to("nodes/node1")
    # a "dir" storage under tmp stands in for the shared storage (no mount needed)
    (tmp_path / "shared").mkdir()
    cache = tmp_path / "shared/template/cache"  # the containers' template (pct create)
    cache.mkdir(parents=True)
    (cache / "debian-12-standard_12.7-1_amd64.tar.zst").write_bytes(b"")
    (root / "storage.cfg").write_text(
        f"dir: shared\n\tpath {tmp_path / 'shared'}\n\tcontent rootdir,images\n")
    return root


@pytest.fixture
def guests(pve: Path, info: NodeInfo, tmp_path: Path) -> NodeGuests:
    return NodeGuests("node1", etc=EtcPve(pve), run_dir=tmp_path / "run", info=info,
                      storages=Storages(pve, info))
