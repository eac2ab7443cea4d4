"""Guests on a real embedded lab: storage, pct/qm, a guest's own address, power cut,
recovery on another node with the write log continuing, PVE-worded errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.cluster import Cluster
from harness.formation import form_cluster
from harness.waits import NotYet, hold_for_s, wait_until
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from lab.embedded.provision import CT_TEMPLATE
from pvemu.guest_process import read_log
from tests.integration.conftest import leftovers

SUBNET = "198.18.50"
NET0 = "name=eth0,bridge=vmbr0,ip={}/24"
TEMPLATE = CT_TEMPLATE  # the lab puts it on the shared storage


@pytest.fixture(scope="module")
def lab():
    the_lab = EmbeddedLab(EmbeddedConfig(name="gst", subnet=f"{SUBNET}.0/24"))
    the_lab.start()
    yield the_lab
    the_lab.close()
    assert leftovers(the_lab.config) == []  # guests die with their node, nothing escapes


@pytest.fixture(scope="module")
def cluster(lab):
    the_cluster = Cluster(lab)
    form_cluster(the_cluster, "gst")
    node1 = the_cluster.node("node1")
    node1.check("pvesm", "add", "nfs", "shared", "--server", f"{SUBNET}.1", "--export",
                "/export", "--content", "rootdir,images")
    yield the_cluster
    the_cluster.close()


def ask(address: str, port: int = 8080, timeout_s: float = 1.0) -> str | None:
    try:
        with socket.create_connection((address, port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            return conn.recv(256).decode().strip()
    except OSError:
        return None


def guest_pids(lab: EmbeddedLab, sid: str) -> list[int]:
    """Host pids of guest processes of this lab for sid."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in cmdline]
        if ("pvemu.guest_process" in words and sid in words
                and str(lab.config.lab_dir) in " ".join(words)):
            found.append(int(proc.name))
    return found


def disk_of(lab: EmbeddedLab, vmid: int) -> Path:
    return lab.config.lab_dir / "nfs" / "images" / str(vmid) / f"vm-{vmid}-disk-0.raw"


def test_storage_cfg_is_written_in_pve_format_and_listed(cluster):
    node2 = cluster.node("node2")
    cfg = node2.check("cat", "/etc/pve/storage.cfg")
    assert "nfs: shared\n\texport /export\n\tpath /mnt/pve/shared\n" in cfg
    assert "\tcontent images,rootdir\n" not in cfg and "\tcontent rootdir,images" in cfg
    status = node2.check("pvesm", "status").splitlines()
    assert status[0].split() == ["Name", "Type", "Status", "Total", "Used", "Available", "%"]
    shared = next(line.split() for line in status if line.startswith("shared "))
    assert shared[1:3] == ["nfs", "active"]
    again = cluster.node("node3").run("pvesm", "add", "nfs", "shared", "--server", "x",
                                      "--export", "/e")
    assert again.rc == 255
    assert "create storage failed: storage ID 'shared' already defined" in again.stderr


def test_a_ct_fails_over_with_its_address_and_its_write_log(lab, cluster):
    node1, node2 = cluster.node("node1"), cluster.node("node2")
    address = f"{SUBNET}.100"
    node1.check("pct", "create", "100", TEMPLATE, "--rootfs", "shared:1", "--hostname",
                "web", "--net0", NET0.format(address), timeout_s=30)
    conf = node1.check("cat", "/etc/pve/nodes/node1/lxc/100.conf")
    assert "rootfs: shared:100/vm-100-disk-0.raw,size=1G\n" in conf
    assert f"ip={address}/24,type=veth" in conf and "hostname: web" in conf
    node1.check("pct", "start", "100", timeout_s=30)
    assert node1.check("pct", "status", "100").strip() == "status: running"
    answer = ask(address)
    assert answer is not None and answer.startswith("ct:100 node1 "), answer
    boot1 = answer.split()[2]
    listing = node1.check("pct", "list").splitlines()
    assert listing[0].split() == ["VMID", "Status", "Lock", "Name"]
    assert listing[1].split() == ["100", "running", "web"]

    disk = disk_of(lab, 100)
    first = read_log(disk).records
    wait_until("the write log grows", lambda: read_log(disk).records >= first + 5 or
               NotYet(f"{read_log(disk).records} records"), timeout_s=10, interval_s=0.2)
    assert guest_pids(lab, "ct:100")

    lab.power_cut("node1")
    assert ask(address) is None
    assert guest_pids(lab, "ct:100") == []
    before = read_log(disk)

    def written() -> str | None:
        now = read_log(disk).records
        return None if now == before.records else f"{now - before.records} records written"

    grew = hold_for_s(0.5, written, "no writes after the cut", interval_s=0.1)
    assert grew is None, grew  # nobody writes any more

    # HA recovery's "steal": rename the config into node2's directory (needs quorum)
    wait_until("node2 can write /etc/pve", lambda: node2.can_write_pve().rc == 0 or
               NotYet("read-only"), timeout_s=60, interval_s=1)
    node2.check("mv", "/etc/pve/nodes/node1/lxc/100.conf", "/etc/pve/nodes/node2/lxc/")
    node2.check("pct", "start", "100", timeout_s=30)
    answer = ask(address)
    assert answer is not None and answer.startswith("ct:100 node2 "), answer
    boot2 = answer.split()[2]
    assert boot2 != boot1
    wait_until("node2's copy to write", lambda: boot2 in {b.boot_id for b in
               read_log(disk).boots} or NotYet("no record yet"), timeout_s=10, interval_s=0.1)
    report = read_log(disk)
    assert not report.forked and report.gaps == [], report
    assert [b.boot_id for b in report.boots] == [boot1, boot2]
    assert report.boots[1].first_seq == report.boots[0].last_seq + 1
    assert report.boots[1].node == "node2"

    node2.check("pct", "stop", "100", timeout_s=30)
    assert ask(address) is None
    assert guest_pids(lab, "ct:100") == []
    assert node2.check("pct", "status", "100").strip() == "status: stopped"
    stopped = node2.run("pct", "stop", "100")
    assert stopped.rc == 255 and "CT 100 not running" in stopped.stderr


def test_a_fail_start_guest_fails_as_pve_says_and_counts_on_shared_storage(lab, cluster):
    node2, node3 = cluster.node("node2"), cluster.node("node3")
    address = f"{SUBNET}.102"
    node2.check("pct", "create", "102", TEMPLATE, "--rootfs", "shared:1", "--net0",
                NET0.format(address), "--description", "pvechaos: fail-start 1",
                timeout_s=30)
    failed = node2.run("pct", "start", "102", timeout_s=30)
    assert failed.rc == 255
    assert "startup for container '102' failed" in failed.stderr
    assert "fail-start" in failed.stderr
    assert ask(address) is None and guest_pids(lab, "ct:102") == []
    # the count is on shared storage: node3 sees the one failure already spent
    node2.check("mv", "/etc/pve/nodes/node2/lxc/102.conf", "/etc/pve/nodes/node3/lxc/")
    node3.check("pct", "start", "102", timeout_s=30)
    answer = ask(address)
    assert answer is not None and answer.startswith("ct:102 node3 "), answer
    node3.check("pct", "shutdown", "102", "--timeout", "5", timeout_s=30)
    assert guest_pids(lab, "ct:102") == []


def test_errors_are_worded_as_pve_words_them(cluster):
    node2, node3 = cluster.node("node2"), cluster.node("node3")
    unknown = node2.run("pct", "start", "999")
    assert unknown.rc == 255
    assert "Configuration file 'nodes/node2/lxc/999.conf' does not exist" in unknown.stderr
    node2.check("pct", "create", "103", TEMPLATE, "--rootfs", "shared:1", "--net0",
                NET0.format(f"{SUBNET}.103"), timeout_s=30)
    duplicate = node3.run("pct", "create", "103", TEMPLATE, "--rootfs", "shared:1")
    assert duplicate.rc == 255
    assert "CT 103 already exists on node 'node2'" in duplicate.stderr
    vm = node3.run("qm", "create", "103", "--scsi0", "shared:1")
    assert "unable to create VM 103 - CT 103 already exists on node 'node2'" in vm.stderr
    elsewhere = node3.run("pct", "start", "103")
    assert "Configuration file 'nodes/node3/lxc/103.conf' does not exist" in elsewhere.stderr
    outside = node3.run("pct", "create", "104", TEMPLATE, "--rootfs", "shared:1", "--net0",
                        NET0.format("10.1.2.3"))
    assert outside.rc == 255
    assert "outside the lab subnet 198.18.50.0/24" in outside.stderr
    assert node3.run("test", "-e", "/etc/pve/nodes/node3/lxc/104.conf").rc != 0
    storage = node3.run("pct", "create", "105", TEMPLATE, "--rootfs", "nosuch:1")
    assert storage.rc == 255 and "storage 'nosuch' does not exist" in storage.stderr
    missing = node3.run("pct", "create", "106", "shared:vztmpl/missing.tar.zst", "--rootfs",
                        "shared:1")
    assert missing.rc == 255
    assert "unable to create CT 106 - can't find file 'shared:vztmpl/missing.tar.zst'" in (
        missing.stderr)
    assert node3.run("test", "-e", "/etc/pve/nodes/node3/lxc/106.conf").rc != 0


def test_a_vm_runs_lists_and_is_destroyed(lab, cluster):
    node3 = cluster.node("node3")
    address = f"{SUBNET}.110"
    node3.check("qm", "create", "110", "--name", "db", "--memory", "1024", "--net0",
                "virtio,bridge=vmbr0", "--scsi0", "shared:2", "--ipconfig0",
                f"ip={address}/24", timeout_s=30)
    node3.check("qm", "start", "110", timeout_s=30)
    answer = ask(address)
    assert answer is not None and answer.startswith("vm:110 node3 "), answer
    listing = node3.check("qm", "list").splitlines()
    assert listing[0].split() == ["VMID", "NAME", "STATUS", "MEM(MB)", "BOOTDISK(GB)", "PID"]
    row = next(line.split() for line in listing[1:] if line.split()[0] == "110")
    assert row[1:5] == ["db", "running", "1024", "2.00"] and int(row[5]) > 0
    offline = node3.run("qm", "migrate", "110", "node2")
    assert offline.rc == 255 and "use online migration" in offline.stderr
    node3.check("qm", "migrate", "110", "node2", "--online", timeout_s=60)
    answer = ask(address)
    assert answer is not None and answer.startswith("vm:110 node2 "), answer
    assert "110" not in node3.check("qm", "list")
    node2 = cluster.node("node2")
    running = node2.run("qm", "destroy", "110")
    assert running.rc == 255 and "VM 110 is running - destroy failed" in running.stderr
    node2.check("qm", "stop", "110", timeout_s=30)
    assert ask(address) is None and guest_pids(lab, "vm:110") == []
    node2.check("qm", "destroy", "110", timeout_s=30)
    assert not disk_of(lab, 110).exists()
    assert node2.run("qm", "status", "110").rc == 255


def test_a_client_probing_the_port_does_not_fail_a_start(lab, cluster):
    """A probe's connection queued while the guest checks its own address is answered in
    turn; it must not make the start fail (on PVE nothing outside can)."""
    import threading

    node3 = cluster.node("node3")  # node1 was cut by an earlier test
    node3.check("pct", "create", "130", TEMPLATE, "--rootfs", "shared:1",
                "--net0", NET0.format(f"{SUBNET}.130"))
    stop = threading.Event()
    answers = []

    def probe() -> None:
        while not stop.is_set():
            answers.append(ask(f"{SUBNET}.130", timeout_s=0.2))
            stop.wait(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for _ in range(3):
            node3.check("pct", "start", "130", timeout_s=30)
            node3.check("pct", "stop", "130", timeout_s=30)
    finally:
        stop.set()
        prober.join(timeout=10)
        node3.run("pct", "destroy", "130", timeout_s=30)
    assert any(a and a.startswith("ct:130 node3 ") for a in answers)
