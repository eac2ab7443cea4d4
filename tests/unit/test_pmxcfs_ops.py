"""The FUSE operations of the emulated pmxcfs on one node's copy (pvemu/pmxcfs.py):
writes go through the replication and are refused without quorum before they are sent;
reads come from the node's own copy (pve-faults.md §4.4)."""

from __future__ import annotations

import errno
import json
import os

import mfusepy as fuse
import pytest

from pvemu.dcdb import Database
from pvemu.dcdb_sync import Replica
from pvemu.pmxcfs import Pmxcfs
from pvemu.pmxcfs_locks import LockTable


class Quorum:
    value = True

    def quorate(self) -> bool:
        return self.value


class Recorder(Replica):
    """A cluster node whose every change is applied at once, as if delivered."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, "node1", lambda payload: None, lambda: True, LockTable(120.0),
                         clock=lambda: 1000.0)
        self.sent: list[dict] = []

    def submit(self, op: dict) -> int:
        self.sent.append(op)
        return self.db.apply({**op, "writer": self.node, "time": 1000.0})


@pytest.fixture
def fs(tmp_path):
    db = Database(tmp_path / "db")
    return Pmxcfs(db, "node1", Quorum(), Recorder(db))


def test_create_write_read_through_the_replication(fs):
    fh = fs.create("/a.cfg", 0o640)
    assert fs.write("/a.cfg", b"hello", 0, fh) == 5
    assert fs.read("/a.cfg", 100, 0, fh) == b"hello"
    assert [op["op"] for op in fs.replica.sent] == ["create", "write"]
    assert fs.getattr("/a.cfg")["st_mode"] & 0o777 == 0o640


def test_without_quorum_nothing_is_sent_and_reads_still_work(fs):
    fs.create("/a.cfg", 0o640)
    fs.quorum.value = False
    for call in (lambda: fs.create("/b.cfg", 0o640), lambda: fs.mkdir("/d", 0o755),
                 lambda: fs.unlink("/a.cfg"), lambda: fs.utimens("/a.cfg", (1, 1)),
                 lambda: fs.open("/a.cfg", os.O_WRONLY)):
        with pytest.raises(fuse.FuseOSError) as exc:
            call()
        assert exc.value.errno == errno.EACCES
    assert [op["op"] for op in fs.replica.sent] == ["create"]
    assert fs.getattr("/a.cfg")["st_mode"] & 0o777 == 0o444
    assert fs.read("/a.cfg", 10, 0, fs.open("/a.cfg", os.O_RDONLY)) == b""


def test_members_lists_the_cpg_members_as_online(fs):
    (fs.db.root / "corosync.conf").write_text(
        "totem {\n cluster_name: c\n config_version: 2\n}\nnodelist {\n"
        " node {\n  name: node1\n  nodeid: 1\n  ring0_addr: 198.18.0.11\n }\n"
        " node {\n  name: node2\n  nodeid: 2\n  ring0_addr: 198.18.0.12\n }\n}\n")
    fs.replica.members, fs.replica.mode = (2,), "synced"
    members = json.loads(fs.virtual_content("/.members"))
    assert {n: v["online"] for n, v in members["nodelist"].items()} == {"node1": 0, "node2": 1}
