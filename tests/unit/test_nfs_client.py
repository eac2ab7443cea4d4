"""The node's NFS client (pvemu/nfs_client.py) stalls every operation while the server
does not answer and carries on once it does (a `hard` mount); pvesm's helpers never
stat a mount to learn whether it is there (pvemu/storage.py)."""

from __future__ import annotations

import os
import threading

import pytest

from pvemu import storage
from pvemu.nfs_client import Passthrough, ServerLink, killed


def test_an_operation_waits_for_the_server_then_completes(tmp_path):
    link = ServerLink("198.18.0.1")
    ops = Passthrough(str(tmp_path), link, caller=lambda: None)
    link.reachable.set()
    fh = ops.create("/log", 0o640)
    link.reachable.clear()  # the server stops answering
    done = threading.Event()
    thread = threading.Thread(target=lambda: (ops.write("/log", b"1\n", 0, fh), done.set()),
                              daemon=True)
    thread.start()
    assert not done.wait(0.3)  # stalled, not failed
    assert (tmp_path / "log").read_bytes() == b""
    link.reachable.set()  # the server is back
    assert done.wait(5)
    assert (tmp_path / "log").read_bytes() == b"1\n"
    ops.release("/log", fh)


def test_lookups_wait_too_and_errors_pass_through(tmp_path):
    link = ServerLink("198.18.0.1")
    ops = Passthrough(str(tmp_path), link, caller=lambda: None)
    link.reachable.set()
    with pytest.raises(OSError) as err:
        ops.getattr("/missing")
    assert err.value.errno == 2
    (tmp_path / "d").mkdir()
    assert "d" in ops.readdir("/", 0)


def test_the_unmounted_daemon_gives_up_with_eio(tmp_path):
    link = ServerLink("198.18.0.1")
    link.stop.set()
    with pytest.raises(OSError) as err:
        Passthrough(str(tmp_path), link, caller=lambda: None).getattr("/")
    assert err.value.errno == 5


def test_mounted_reads_the_mount_table():
    assert storage.mounted("/proc")
    assert not storage.mounted("/nonexistent/pvechaos")


def test_statvfs_bounded_returns_when_the_filesystem_answers(tmp_path):
    assert storage.statvfs_bounded(tmp_path, 2.0).f_bsize == os.statvfs(tmp_path).f_bsize


def test_a_caller_killed_while_waiting_ends_its_operation_with_eintr(tmp_path):
    link = ServerLink("198.18.0.1")  # never reachable here
    gone = 2 ** 22 + 1  # above pid_max's default: no such process, as a caller just killed
    with pytest.raises(OSError) as err:
        Passthrough(str(tmp_path), link, caller=lambda: gone).getattr("/")
    assert err.value.errno == 4
    assert not killed(os.getpid())
