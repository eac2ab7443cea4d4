"""watchdog-mux on an embedded node (pvemu/ha/muxd.py): the marker, magic close, client
ages on the node's wall clock, and how it leaves (pve-faults.md §3.2-3.4)."""

from __future__ import annotations

import socket

import pytest

from pvemu import wallclock
from pvemu.ha import muxd
from pvemu.timing import Timing


class Device:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def keepalive(self) -> None:
        self.calls.append("keepalive")

    def close(self, magic: bool) -> None:
        self.calls.append(f"close magic={magic}")


@pytest.fixture
def lab(tmp_path, monkeypatch, capsys):
    clock = [1000.0]
    monkeypatch.setattr(wallclock, "now", lambda: clock[0])
    monkeypatch.setattr(muxd, "ACTIVE_MARKER", str(tmp_path / "watchdog-mux.active"))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "mux.sock"))
    server.listen(4)
    device = Device()
    mux = muxd.Mux(Timing(1.0), 9, device)

    def connect() -> tuple[socket.socket, socket.socket]:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(tmp_path / "mux.sock"))
        return client, mux.accept(server)

    yield mux, device, clock, connect, tmp_path / "watchdog-mux.active", capsys
    server.close()


def test_a_client_is_fed_while_it_updates_and_the_magic_close_removes_the_marker(lab):
    mux, device, clock, connect, marker, capsys = lab
    client, conn = connect()
    assert marker.is_dir()
    client.sendall(b"\0")
    assert mux.read(conn)
    clock[0] += 30
    mux.tick()
    assert device.calls == ["keepalive"]
    client.sendall(b"V")
    mux.read(conn)
    client.close()
    assert not mux.read(conn)
    assert not marker.exists() and mux.update_watchdog
    mux.leave()
    assert device.calls[-1] == "close magic=True"
    assert "clean exit" in capsys.readouterr().err


def test_a_client_gone_without_v_stops_the_feed_and_mux_leaves_the_device_running(lab):
    mux, device, clock, connect, marker, capsys = lab
    client, conn = connect()
    client.sendall(b"\0")
    mux.read(conn)
    client.close()
    assert not mux.read(conn)
    assert not mux.update_watchdog and marker.is_dir()
    mux.leave()
    assert "close magic=True" not in device.calls
    err = capsys.readouterr().err
    assert "did not stop watchdog - disable watchdog updates" in err
    assert "exit watchdog-mux with active connections" in err


def test_client_age_is_on_the_wall_clock_warning_at_50_s_expiry_after_60_s(lab):
    mux, device, clock, connect, marker, capsys = lab
    client, conn = connect()
    clock[0] += 51
    mux.tick()
    assert "watchdog is about to expire" in capsys.readouterr().err
    assert device.calls == ["keepalive"]
    clock[0] += 10  # a wall-clock step counts as much as elapsed time (§7.2)
    mux.tick()
    assert not mux.update_watchdog
    assert "watchdog expired - disable watchdog updates" in capsys.readouterr().err
    assert device.calls == ["keepalive"]
    client.close()


def test_a_start_is_refused_while_the_marker_exists(lab, capsys):
    _, _, _, _, marker, _ = lab
    marker.mkdir()
    assert muxd.serve(Timing(1.0), 9) == 1
    assert "watchdog active - unable to restart watchdog-mux" in capsys.readouterr().err
