"""pvesh's /version, /nodes and /nodes/<node>/status against a temporary /etc/pve and a
fake /proc, and the proxying of another node's paths over SSH."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import time

import pytest

from pvemu.cli import api_nodes, pvesh
from pvemu.cli.pveversion import manager_line
from pvemu.nodeinfo import load

from .pvesh_calls import get_json, run

KB = 1024


def make_proc(tmp_path, monkeypatch):
    """A /proc with known figures: 2 CPUs, 4 GiB of which 1 GiB available, booted 100 s
    ago (the node's boot marker)."""
    root = tmp_path / "proc"
    root.mkdir()
    (root / "meminfo").write_text("MemTotal:        4194304 kB\nMemFree:          524288 kB\n"
                                  "MemAvailable:    1048576 kB\nSwapTotal:        2048 kB\n"
                                  "SwapFree:          1024 kB\n")
    (root / "stat").write_text("cpu  300 0 100 500 100 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (root / "cpuinfo").write_text("".join(
        f"processor\t: {n}\nmodel name\t: Test CPU\nphysical id\t: 0\ncpu cores\t: 2\n"
        f"cpu MHz\t\t: 2400.000\nflags\t\t: fpu vmx sse\n\n" for n in range(2)))
    (root / "loadavg").write_text("0.50 0.25 0.10 1/100 4242\n")
    (root / "uptime").write_text("5000.00 9000.00\n")
    marker = tmp_path / "boot_id"
    marker.write_text("x\n")
    booted = time.time() - 100
    os.utime(marker, (booted, booted))
    monkeypatch.setattr(api_nodes, "PROC", root)
    monkeypatch.setattr(api_nodes, "BOOT_MARKER", marker)
    monkeypatch.setattr(api_nodes, "CPU_SAMPLE_S", 0.0)
    return root


@pytest.fixture
def proc(tmp_path, monkeypatch):
    return make_proc(tmp_path, monkeypatch)




@pytest.mark.parametrize("major,version,release", [(8, "8.4.1", "8.4"), (9, "9.1.2", "9.1")])
def test_version(lab, capsys, major, version, release):
    lab.flavour(major)
    data = get_json(capsys, "/version")
    assert data == {"version": version, "release": release,
                    "repoid": manager_line(load(lab.node_json)).split("/")[2].split()[0]}
    assert re.fullmatch(r"[0-9a-f]{16}", data["repoid"])


def test_nodes(lab, capsys, proc):
    data = get_json(capsys, "/nodes")
    assert [(d["node"], d["status"]) for d in data] == [
        ("node1", "online"), ("node2", "online"), ("node3", "offline")]
    local = data[0]
    assert {k: local[k] for k in ("id", "type", "maxcpu", "maxmem", "mem", "level",
                                  "ssl_fingerprint")} == {
        "id": "node/node1", "type": "node", "maxcpu": 2, "maxmem": 4194304 * KB,
        "mem": (4194304 - 1048576) * KB, "level": "", "ssl_fingerprint": None}
    assert local["cpu"] == pytest.approx(1 - 600 / 1000)  # since boot: no tick passed
    assert 99 <= local["uptime"] <= 102  # the boot marker's age, not /proc/uptime
    assert isinstance(local["disk"], int) and 0 < local["disk"] <= local["maxdisk"]
    assert "uptime" not in data[1]  # only node2 knows its own
    assert {k: v for k, v in data[1].items() if k not in ("node", "id")} == \
        {k: v for k, v in local.items() if k not in ("node", "id", "uptime")}
    assert data[2] == {"id": "node/node3", "node": "node3", "type": "node",
                       "status": "offline", "ssl_fingerprint": None}


def test_nodes_ssl_fingerprint(lab, capsys, proc):
    der = b"not really DER, but bytes"
    pem = ("-----BEGIN CERTIFICATE-----\n" + base64.b64encode(der).decode() +
           "\n-----END CERTIFICATE-----\n")
    lab.write("nodes/node2/pve-ssl.pem", "-----BEGIN PRIVATE KEY-----\nxx\n"
              "-----END PRIVATE KEY-----\n" + pem)
    hexd = hashlib.sha256(der).hexdigest().upper()
    want = ":".join(hexd[i:i + 2] for i in range(0, 64, 2))
    assert [d["ssl_fingerprint"] for d in get_json(capsys, "/nodes")] == [None, want, None]


def test_node_status(lab, capsys, proc):
    data = get_json(capsys, "/nodes/node1/status")
    assert set(data) == {"uptime", "idle", "loadavg", "cpu", "wait", "cpuinfo", "kversion",
                         "current-kernel", "boot-info", "memory", "swap", "ksm", "rootfs",
                         "pveversion"}
    assert data["loadavg"] == ["0.50", "0.25", "0.10"]  # strings, as PVE gives them
    assert data["memory"] == {"total": 4194304 * KB, "used": 3145728 * KB,
                              "free": 524288 * KB}
    assert data["swap"] == {"total": 2048 * KB, "used": 1024 * KB, "free": 1024 * KB}
    assert data["cpu"] == pytest.approx(0.4) and data["wait"] == pytest.approx(0.1)
    assert data["cpuinfo"] | {"user_hz": 100} == {
        "model": "Test CPU", "cpus": 2, "sockets": 1, "cores": 2, "mhz": "2400.000",
        "flags": "fpu vmx sse", "hvm": "1", "user_hz": 100}
    assert data["pveversion"] == "pve-manager/" + manager_line(load(lab.node_json)).split(
        "/", 1)[1].split(" (")[0]
    assert data["current-kernel"]["release"] == "6.8" and data["kversion"].startswith(
        "Linux 6.8 ")
    assert data["boot-info"]["mode"] in ("efi", "legacy-bios")
    fs = data["rootfs"]
    assert fs["total"] == fs["used"] + fs["free"] and fs["avail"] <= fs["free"]


class FakeSsh:
    def __init__(self, returncode=0, stdout="", stderr=""):
        self.calls: list[list[str]] = []
        self.result = (returncode, stdout, stderr)

    def __call__(self, cmd, **kwargs):
        assert kwargs.get("timeout") == pvesh.PROXY_TIMEOUT_S  # bounded
        self.calls.append(cmd)
        return subprocess.CompletedProcess(cmd, *self.result)


def test_other_node_is_proxied(lab, capsys, monkeypatch):
    ssh = FakeSsh(stdout='{"uptime":7}\n')
    monkeypatch.setattr(pvesh.subprocess, "run", ssh)
    assert get_json(capsys, "/nodes/node2/status") == {"uptime": 7}
    assert ssh.calls == [["ssh", "-o", "BatchMode=yes", "root@198.18.60.12", "pvesh",
                          "--noproxy", "get", "/nodes/node2/status", "--output-format",
                          "json"]]
    code, out, _ = run(capsys, "get", "/nodes/node2/qemu", "--noheader", "1", "--full", "1",
                       "--noborder")
    assert code == 0 and ssh.calls[-1][-5:] == ["/nodes/node2/qemu", "--full", "1",
                                                "--output-format", "json"]
    assert out.split() == ["uptime", "7"]  # rendered here, in the format asked for


def test_proxy_failure(lab, capsys, monkeypatch):
    monkeypatch.setattr(pvesh.subprocess, "run", FakeSsh(
        255, stderr="ssh: connect to host 198.18.60.13 port 22: No route to host\n"))
    code, out, err = run(capsys, "get", "/nodes/node3/lxc")
    assert (code, out) == (255, "")
    assert err.startswith("ssh: connect to host 198.18.60.13 port 22: No route to host\n"
                          "proxy handler failed: command 'ssh -o BatchMode=yes "
                          "root@198.18.60.13 pvesh --noproxy get /nodes/node3/lxc")


def test_noproxy_and_unknown_node(lab, capsys, monkeypatch, proc):
    def no_ssh(*a, **k):
        raise AssertionError("--noproxy must not proxy")
    monkeypatch.setattr(pvesh.subprocess, "run", no_ssh)
    code, out, err = run(capsys, "--noproxy", "get", "/nodes/node2/status",
                         "--output-format", "json")
    assert (code, err) == (0, "") and "loadavg" in json.loads(out)
    assert run(capsys, "get", "/nodes/node9/status") == (
        255, "", "no such cluster node 'node9'\n")


def test_version_needs_the_node_json(lab, capsys):
    lab.node_json.unlink()
    code, out, err = run(capsys, "get", "/version")
    assert (code, out) == (255, "") and err.endswith("missing - not a pvechaos lab node\n")
