"""pvesh's /nodes/<node>/lxc|qemu lists and status/current against a temporary /etc/pve
and guest runtime dir (this test process plays a running guest)."""

from __future__ import annotations

import json
import os
import time

import pytest

from pvemu.guest_runtime import process_start

from .test_pvesh_nodes import get_json, make_proc, run


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    make_proc(tmp_path, monkeypatch)
    path = tmp_path / "run"
    path.mkdir()
    monkeypatch.setenv("PVECHAOS_GUEST_RUN_DIR", str(path))
    return path


def play_guest(run_dir, vmid: int, started_ago: float = 50.0, start: int | None = None):
    state = {"sid": f"vm:{vmid}", "pid": os.getpid(),
             "start": process_start(os.getpid()) if start is None else start,
             "address": "198.18.0.100", "port": 8080, "started_at": time.time() - started_ago}
    (run_dir / f"{vmid}.json").write_text(json.dumps(state))


def test_qemu_list(lab, capsys, run_dir):
    lab.write("nodes/node1/qemu-server/100.conf", "memory: 512\nname: guest\nsockets: 2\n"
              "cores: 3\nscsi0: local:100/vm-100-disk-0.raw,size=4G\nlock: backup\n")
    assert get_json(capsys, "/nodes/node1/qemu") == [
        {"vmid": 100, "name": "guest", "status": "stopped", "maxmem": 512 * 1024 ** 2,
         "maxdisk": 4 * 1024 ** 3, "cpus": 6, "uptime": 0, "mem": 0, "cpu": 0,
         "lock": "backup"}]
    play_guest(run_dir, 100)
    rec = get_json(capsys, "/nodes/node1/qemu")[0]
    assert rec["status"] == "running" and rec["pid"] == os.getpid()
    assert 49 <= rec["uptime"] <= 52
    assert rec["mem"] > 1024 ** 2  # this process's resident memory
    assert 0 <= rec["cpu"] <= 1
    play_guest(run_dir, 100, start=1)  # a dead copy
    assert get_json(capsys, "/nodes/node1/qemu")[0]["status"] == "stopped"


def test_lxc_list(lab, capsys, run_dir):
    assert get_json(capsys, "/nodes/node1/lxc") == []
    lab.write("nodes/node1/lxc/105.conf", "hostname: web\nmemory: 256\nswap: 128\n"
              "rootfs: local:105/vm-105-disk-0.raw,size=8G\n")
    lab.write("nodes/node1/lxc/106.conf", "memory: 128\ncores: 1\ntemplate: 1\n")
    data = get_json(capsys, "/nodes/node1/lxc")
    assert data[0] == {"vmid": 105, "name": "web", "status": "stopped", "type": "lxc",
                       "maxmem": 256 * 1024 ** 2, "maxswap": 128 * 1024 ** 2,
                       "maxdisk": 8 * 1024 ** 3, "cpus": 2,  # no cores: the node's CPUs
                       "uptime": 0, "mem": 0, "cpu": 0}
    assert (data[1]["name"], data[1]["cpus"], data[1]["maxswap"], data[1]["template"]) == (
        "CT106", 1, 512 * 1024 ** 2, 1)


def test_status_current(lab, capsys, run_dir):
    data = get_json(capsys, "/nodes/node1/qemu/100/status/current")
    assert data["vmid"] == 100 and data["status"] == "stopped"
    assert data["qmpstatus"] == "stopped" and data["ha"] == {"managed": 0}
    lab.write("ha/resources.cfg", "vm: 100\n\tmax_restart 2\n\n")
    play_guest(run_dir, 100)
    data = get_json(capsys, "/nodes/node1/qemu/100/status/current")
    assert (data["status"], data["qmpstatus"]) == ("running", "running")
    assert data["ha"] == {"managed": 1, "state": "started", "max_restart": 2}
    lab.write("nodes/node1/lxc/105.conf", "hostname: web\nmemory: 256\n")
    lab.write("ha/resources.cfg", "ct: 105\n\tstate stopped\n\tgroup g1\n\n")
    data = get_json(capsys, "/nodes/node1/lxc/105/status/current")
    assert data["type"] == "lxc" and "qmpstatus" not in data
    assert data["ha"] == {"managed": 1, "state": "stopped", "group": "g1"}


def test_status_current_errors(lab, capsys, run_dir):
    assert run(capsys, "get", "/nodes/node1/lxc/100/status/current") == (
        255, "", "Configuration file 'nodes/node1/lxc/100.conf' does not exist\n")
    assert run(capsys, "get", "/nodes/node1/qemu/abc/status/current")[0] == 255
