"""A temporary /etc/pve tree and node.json for the ha-manager and pvesh tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

NOW = 1479899243  # Wed Nov 23 11:07:23 2016 UTC


def make_tree(root: Path, node: str = "node1") -> None:
    for rel in ("nodes/node1/qemu-server/100.conf", "nodes/node2/lxc/101.conf",
                "nodes/node3/qemu-server/102.conf"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("memory: 512\nname: guest\n")
    (root / "nodes/node3/lxc").mkdir()
    (root / "ha").mkdir()
    (root / "priv/lock").mkdir(parents=True)
    (root / "local").symlink_to(f"nodes/{node}")
    members = {"nodename": node, "version": 5,
               "cluster": {"name": "pvechaos", "version": 3, "nodes": 3, "quorate": 1},
               "nodelist": {"node1": {"id": 1, "online": 1, "ip": "198.18.60.11"},
                            "node2": {"id": 2, "online": 1, "ip": "198.18.60.12"},
                            "node3": {"id": 3, "online": 0, "ip": "198.18.60.13"}}}
    (root / ".members").write_text(json.dumps(members))


class Lab:
    def __init__(self, root: Path, node_json: Path, monkeypatch) -> None:
        self.root, self.node_json, self.mp = root, node_json, monkeypatch
        self.flavour(9)

    def flavour(self, major: int, timescale: float = 1.0) -> None:
        self.node_json.write_text(json.dumps({
            "name": "node1", "address": "198.18.60.11", "prefixlen": 24,
            "pve_version": f"{major}.4.1" if major == 8 else "9.1.2", "kernel": "6.8",
            "local_db": "/tmp/x", "timescale": timescale}))

    def write(self, rel: str, text: str) -> None:
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_text(text)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def inquorate(self) -> None:
        self.mp.setattr("os.stat", _readonly_stat(self.root))


def _readonly_stat(root: Path):
    import os
    real = os.stat

    class St:
        def __init__(self, st):
            self._st = st
            self.st_mode = st.st_mode & ~0o222

        def __getattr__(self, name):
            return getattr(self._st, name)

    def fake(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        return St(st) if str(path).startswith(str(root)) else st
    return fake


@pytest.fixture
def lab(tmp_path, monkeypatch):
    root = tmp_path / "pve"
    root.mkdir()
    make_tree(root)
    monkeypatch.setenv("PVECHAOS_PVE_ROOT", str(root))
    monkeypatch.setenv("PVECHAOS_NODE_JSON", str(tmp_path / "node.json"))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield Lab(root, tmp_path / "node.json", monkeypatch)
    monkeypatch.undo()
    time.tzset()
