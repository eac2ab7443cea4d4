"""Boot, power cut, power on and teardown of the embedded lab, with nothing left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cluster import Cluster
from harness.errors import InterlockError, NodeUnreachable
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import leftovers

REPO = Path(__file__).resolve().parents[2]


def ssh_port_open(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1):
            return True
    except OSError:
        return False


def test_nodes_boot_as_separate_hosts_and_power_cycle(make_lab):
    lab = make_lab("life", "198.18.40.0/24")
    lab.start()
    cluster = Cluster(lab)
    try:
        for node in cluster.nodes():
            assert node.check("hostname").strip() == node.name
            # its own pid namespace: PID 1 is the node's init, not the host's
            assert "lab.embedded.pid1" in node.check("cat", "/proc/1/cmdline")
            assert node.check("ip", "-o", "-4", "addr", "show", "eth0").split()[3] == \
                f"{node.address}/24"
            assert node.check("systemctl", "is-active", "ssh", "pve-cluster").split() == \
                ["active", "active"]
        before = cluster.node("node2").check("cat", "/proc/1/stat").split()[21]

        lab.power_cut("node2")
        assert not lab.is_powered("node2")
        assert not ssh_port_open(lab.config.node_address("node2"))
        node2 = cluster.node("node2")
        node2.close()
        with pytest.raises(NodeUnreachable):
            node2.run("true", timeout_s=3)
        assert cluster.node("node1").check("hostname").strip() == "node1"  # others unharmed

        lab.power_on("node2")  # the power button: the node then boots on its own
        assert lab.is_powered("node2")
        node2.wait_reachable(timeout_s=30)
        assert cluster.node("node2").check("hostname").strip() == "node2"
        after = cluster.node("node2").check("cat", "/proc/1/stat").split()[21]
        assert after != before, "node2's init should be a new process after power on"
    finally:
        cluster.close()


def test_power_cut_kills_every_process_of_the_node_at_once(make_lab):
    lab = make_lab("cut", "198.18.41.0/24")
    lab.start()
    cluster = Cluster(lab)
    try:
        node = cluster.node("node1")
        node.check("nohup sleep 1000 >/dev/null 2>&1 & echo started")
        host_pids = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                     and _in_pid_ns_of(p, lab.state.data["processes"]["node1"]["pid"])]
        assert len(host_pids) >= 4  # init, pmxcfs, sshd, the sleep, ...
        lab.power_cut("node1")
        survivors = [p for p in host_pids if p.exists()]
        assert survivors == []
    finally:
        cluster.close()


def _in_pid_ns_of(proc: Path, init_pid: int) -> bool:
    try:
        return os.readlink(proc / "ns/pid") == os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return False


def test_faults_refuse_names_outside_the_lab(make_lab):
    lab = make_lab("lock", "198.18.42.0/24")
    with pytest.raises(InterlockError, match="not a node of lab"):
        lab.power_cut("node7")


def lab_in_a_child(config: EmbeddedConfig) -> subprocess.Popen:
    """Start the lab in another Python process; return once it is up (it then idles).

    The run's guardian is killed first: these tests show the second line, the next run's
    sweep and `cleanup`, behind the guardian (tests/integration/test_guardian.py shows the
    first); with the guardian alive it would race them to the leftovers."""
    script = ("import os, signal, sys; from lab.embedded import EmbeddedLab, EmbeddedConfig\n"
              f"lab = EmbeddedLab(EmbeddedConfig(name={config.name!r}, subnet={config.subnet!r}))"
              "\nlab.start(); os.kill(lab.state.guardian['pid'], signal.SIGKILL)\n"
              "print('ready', flush=True); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
    except BaseException:
        proc.kill()
        proc.wait(timeout=10)
        raise
    return proc


def test_next_run_cleans_up_after_a_sigkilled_run(make_lab):
    config = EmbeddedConfig(name="killed", subnet="198.18.43.0/24")
    proc = lab_in_a_child(config)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    left = leftovers(config)
    assert any(item.startswith("netns") for item in left), left
    assert any(item.startswith("process") for item in left), left
    lab = make_lab("killed", "198.18.43.0/24")
    lab.start()  # sweeps what the killed run left, then boots afresh
    assert all(lab.is_powered(n) for n in lab.config.node_names)
    lab.close()
    assert leftovers(config) == []


def test_cleanup_command_removes_a_killed_runs_leftovers():
    config = EmbeddedConfig(name="orphan", subnet="198.18.44.0/24")
    proc = lab_in_a_child(config)
    proc.kill()
    proc.wait(timeout=10)
    assert leftovers(config)
    out = subprocess.run([sys.executable, "-m", "lab.embedded", "cleanup", "orphan"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "orphan: cleaned" in out.stdout
    assert leftovers(config) == []


def test_a_second_run_may_not_take_a_lab_in_use(make_lab):
    first = make_lab("busy", "198.18.45.0/24")
    first.start()
    script = ("from lab.embedded import EmbeddedLab, EmbeddedConfig\n"
              "EmbeddedLab(EmbeddedConfig(name='busy', subnet='198.18.45.0/24')).start()\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    assert "belongs to a running process" in out.stderr and "--lab-name" in out.stderr
    assert all(first.is_powered(n) for n in first.config.node_names)  # untouched

