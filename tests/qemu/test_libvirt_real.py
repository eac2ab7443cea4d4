"""The libvirt lab's own code paths on real libvirtd and qemu (TCG): define, boot, the power
verbs, freeze/thaw, the corosync NIC's link seen from inside the guest, the consistent
`ready` snapshot and the revert with its clock step, the i6300esb watchdog firing and
libvirt's events on the timeline, `pvechaos-lab libvirt status` and `destroy`.

The tests are steps on one bed (lab/qemu_bed/), in order; each leaves every VM running.
Figures are printed as "figure: what = N s" lines (`-s` shows them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.clock import Clock
from harness.events import EventKind, LabEvent
from harness.ssh import SshSession
from harness.timeline import Timeline
from harness.waits import NotYet, wait_until
from lab.libvirt import clock
from lab.libvirt.host import LibvirtLinks, libvirt_module
from lab.libvirt.lab import LibvirtLab
from tests.qemu.conftest import Events, boot_id, out, run, wait_answers

NODES = ("node1", "node2", "node3")


def figure(name: str, value: float) -> None:
    print(f"figure: {name} = {value:.2f} s")


@pytest.fixture(scope="module")
def bed(bed_factory):
    t0 = time.monotonic()
    bed = bed_factory("qbed", "198.19.170.0/24", "198.19.171.0/24", real_gateway=True)
    figure("images: 3 nodes + the gateway's build (debootstrap, disk)", time.monotonic() - t0)
    return bed


@pytest.fixture(scope="module")
def lab(bed):
    lab = bed.lab()
    t0 = time.monotonic()
    lab.start()
    figure("cold start (define 4 VMs, boot, SSH, corosync NIC)", time.monotonic() - t0)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def events(lab) -> Events:
    sink = Events()
    lab.subscribe(sink)
    return sink


def node(lab: LibvirtLab, name: str):
    return next(n for n in lab.nodes() if n.name == name)


def dom(lab: LibvirtLab, name: str):
    return lab.host.domain(lab.plan.machine(name).domain)


def corosync_ifname(lab: LibvirtLab, name: str) -> str:
    mac = lab.plan.machine(name).corosync.mac
    return out(node(lab, name), f"ip -o link | awk -F': ' 'tolower($0) ~ /{mac}/ "
                                "{print $2; exit}'")


def test_cold_start_boots_every_vm_with_its_addresses(lab, events):
    assert not lab.prepared()  # no `ready` snapshot yet: a cold boot
    for machine in lab.plan.machines():
        assert lab.host.state(machine.domain) == "running", machine.domain
    for name in NODES:
        n = node(lab, name)
        assert out(n, "hostname") == name
        machine = lab.plan.machine(name)
        # the lab's networking_script, run over SSH: the corosync NIC found by its MAC
        addresses = out(n, f"ip -o -4 addr show dev {corosync_ifname(lab, name)}")
        assert f"{machine.corosync.address}/{machine.corosync.prefixlen}" in addresses
        hosts = out(n, "cat /etc/hosts")
        for other in lab.plan.nodes():
            assert f"{other.address} {other.fqdn} {other.name}" in hosts


def test_the_gateway_built_from_debian_packages_serves_the_export(lab):
    """lab/libvirt/gateway.py's disk, booted: networkd took `.2` by DHCP (the management
    network's reservation for its MAC), nfs-server runs and exports the guest template to
    the allowed range, and a node reaches its NFS port."""
    from harness.lab_api import LabNode
    from lab.libvirt.plan import GATEWAY

    machine = lab.plan.machine(GATEWAY)
    gw = LabNode(name="gw", address=machine.address, ssh_key=lab.config.ssh_key)
    wait_answers(gw, "the gateway to answer SSH", timeout_s=240)
    assert out(gw, "hostname") == "pvechaos-qbed-gw"
    assert f"inet {machine.address}/24" in out(gw, "ip -4 -o addr show")
    wait_until("nfs-server to be active", lambda: True if run(
        gw, "systemctl is-active nfs-server").stdout.strip() == "active" else NotYet(
        run(gw, "systemctl status nfs-server --no-pager | tail -3").stdout),
        timeout_s=120, interval_s=2)
    exports = out(gw, "exportfs -v")
    assert lab.config.gateway.export in exports
    assert str(lab.config.allowed_range) in exports and "no_root_squash" in exports
    assert lab.config.gateway.export in out(gw, "showmount -e localhost")
    assert run(gw, f"test -s {lab.config.gateway.export}/template/cache/"
                   "pvechaos-guest_1.0_amd64.tar.xz").rc == 0
    assert run(gw, f"test -x {lab.config.gateway.export}/snippets/pvechaos-guest.sh").rc == 0
    reach = f"timeout 5 bash -c 'echo > /dev/tcp/{machine.address}/2049' && echo open"
    assert out(node(lab, "node1"), reach) == "open"


def test_power_cut_and_power_on(lab, events):
    n = node(lab, "node1")
    before = boot_id(n)
    t0 = time.time()
    lab.power_cut("node1")
    figure("power_cut (destroy) returns", time.time() - t0)
    assert not lab.is_powered("node1")
    events.wait_for("node1", "stopped", t0, detail="destroyed")
    t1 = time.time()
    lab.power_on("node1")
    figure("power_on (create) returns", time.time() - t1)
    events.wait_for("node1", "started", t1)
    wait_answers(n, "node1 back after the power cut", not_boot=before)
    figure("power_on until SSH answers", time.time() - t1)


def test_reset_reboots_in_the_same_qemu_process(lab, events):
    n = node(lab, "node2")
    before, domain_id = boot_id(n), dom(lab, "node2").ID()
    t0 = time.time()
    lab.reset("node2")
    events.wait_for("node2", "reboot", t0)
    wait_answers(n, "node2 after the reset", not_boot=before)
    figure("reset until SSH answers", time.time() - t0)
    assert dom(lab, "node2").ID() == domain_id  # same QEMU process, as the twin assumes


def test_acpi_shutdown_powers_the_guest_off(lab, events):
    t0 = time.time()
    lab.shutdown("node3")
    wait_until("node3 to power itself off", lambda: True if not lab.is_powered("node3")
               else NotYet("still running"), timeout_s=60, interval_s=0.5)
    figure("shutdown (ACPI) until shut off", time.time() - t0)
    events.wait_for("node3", "stopped", t0, detail="shutdown")
    lab.power_on("node3")
    wait_answers(node(lab, "node3"), "node3 after power on")


def test_freeze_stops_the_guest_and_thaw_resumes_it(lab, events):
    n = node(lab, "node1")
    booted = boot_id(n)
    t0 = time.time()
    lab.freeze("node1")
    events.wait_for("node1", "suspended", t0)
    assert lab.host.state(lab.plan.machine("node1").domain) == "paused"
    from harness.errors import PvechaosError

    with pytest.raises(PvechaosError):
        run(n, "true", timeout_s=3)  # a frozen guest answers nothing
    lab.thaw("node1")
    events.wait_for("node1", "resumed", t0)
    assert boot_id(n) == booted  # the same boot, carried on


def test_link_down_is_seen_inside_the_guest_and_management_stays(lab):
    n2, n3 = node(lab, "node2"), node(lab, "node3")
    coro2 = lab.plan.machine("node2").corosync.address
    ifname = corosync_ifname(lab, "node2")
    assert out(n3, f"ping -c 1 -W 2 {coro2} >/dev/null && echo ok") == "ok"
    lab.link_down("node2")
    try:
        wait_until("node2's corosync NIC to lose carrier", lambda: True if out(
            n2, f"cat /sys/class/net/{ifname}/carrier") == "0" else NotYet("carrier 1"),
            timeout_s=20, interval_s=0.5)
        assert run(n3, f"ping -c 2 -W 1 {coro2}").rc != 0  # corosync traffic is cut
        assert out(n2, "hostname") == "node2"  # management (SSH) stays
    finally:
        lab.link_up("node2")
    wait_until("node2's corosync NIC to get carrier back", lambda: True if out(
        n2, f"cat /sys/class/net/{ifname}/carrier") == "1" else NotYet("carrier 0"),
        timeout_s=20, interval_s=0.5)
    assert out(n3, f"ping -c 1 -W 2 {coro2} >/dev/null && echo ok") == "ok"


def test_link_contract_on_the_real_qemu_driver(lab):
    """What tests/unit/libvirt_lab/test_link_contract.py holds the twin to, checked on
    qemu itself: a cut link survives a reset (same QEMU process), not a power cycle,
    and an off VM is refused naming it."""
    from harness.errors import LabError

    links = LibvirtLinks(lab.host)
    nic = lab.plan.machine("node2").corosync
    n2 = node(lab, "node2")
    lab.link_down("node2")
    booted = boot_id(n2)
    lab.reset("node2")
    wait_answers(n2, "node2 after the reset", not_boot=booted)
    assert links.link_is_up(dom(lab, "node2"), nic) is False
    ifname = corosync_ifname(lab, "node2")
    assert out(n2, f"cat /sys/class/net/{ifname}/carrier") == "0"
    lab.power_cut("node2")
    with pytest.raises(LabError, match=r"link down of .* on pvechaos-qbed-node2 failed"):
        lab.link_down("node2")
    lab.power_on("node2")
    assert links.link_is_up(dom(lab, "node2"), nic) is True
    wait_answers(n2, "node2 after power on")
    assert out(n2, f"cat /sys/class/net/{corosync_ifname(lab, 'node2')}/carrier") == "1"


# how far a stepped guest clock may sit from this host's: the lab steps it to within
# clock.TOLERANCE_S, checked by the lab's own measure (the best of a few round trips),
# on a 2-core host whose TCG guests share it with other test files. One `date` round trip
# per reading and one step without a check measured 1.15 s and 1.67 s.
STEPPED_CLOCK_BOUND_S = 1.0


def guest_clock_offset(n) -> float:
    """The guest's wall clock minus this host's, measured as the lab measures it
    (lab/libvirt/clock.py) on a session already up."""
    session = SshSession(n)
    try:
        session.run("true", timeout_s=20)
        return clock.measure(session, n.name).seconds
    finally:
        session.close()


def test_ready_snapshot_and_revert_with_the_clock_step(lab):
    from lab.libvirt import snapshots

    n1 = node(lab, "node1")
    booted = boot_id(n1)
    t0 = time.monotonic()
    lab.save_ready()
    figure("ready snapshot of the 4 VMs (pause, snapshot each, resume)",
           time.monotonic() - t0)
    out(n1, "touch /run/after-the-snapshot")  # RAM only (tmpfs): the revert undoes it
    hold = 8.0
    wait_until("time to pass after the snapshot", lambda: True if time.monotonic() - t0
               > hold else NotYet("waiting"), timeout_s=hold + 5, interval_s=0.5)
    t1 = time.monotonic()
    snapshots.revert(lab.host, lab._domains())
    figure("revert of the 4 VMs to ready (all paused, then resumed)", time.monotonic() - t1)
    lab.access.wait_ssh(lab, 60)
    lag = -guest_clock_offset(n1)
    assert lag > hold - 2, f"a reverted guest wakes with the snapshot's time; lag {lag:.1f}"
    lab.access.step_clocks(lab)
    # stepped back to the host's time: well under the snapshot's lag (> 6 s above)
    for name in NODES:
        assert abs(guest_clock_offset(node(lab, name))) < STEPPED_CLOCK_BOUND_S, name
    assert boot_id(n1) == booted
    assert run(n1, "test -e /run/after-the-snapshot").rc != 0


def test_start_after_close_reverts_to_ready(lab):
    lab.close()
    t0 = time.monotonic()
    lab.start()
    figure("start from ready (revert, SSH, clock step)", time.monotonic() - t0)
    assert lab.prepared()
    for name in NODES:
        assert abs(guest_clock_offset(node(lab, name))) < STEPPED_CLOCK_BOUND_S, name


def test_watchdog_fires_when_the_guest_stops_feeding_it(lab, events):
    """The feeder (watchdog-mux's stand-in, 10 s timeout) is killed; the i6300esb fires,
    libvirt reports WATCHDOG (action reset) and the guest boots again. ``events`` was
    subscribed before the lab was closed and started again (a new connection): it
    still hears; a second subscriber (the timeline, as harness/fixtures.py adds it)
    hears too."""
    timeline = Timeline(Clock())
    lab.subscribe(lambda n, e, d: timeline.record(EventKind.LAB_EVENT, n, LabEvent(n, e, d)))
    n3 = node(lab, "node3")
    booted = boot_id(n3)
    offset = guest_clock_offset(n3)
    t0 = time.time()
    last_feed = float(out(n3, "kill -9 $(cat /run/watchdog-feeder.pid) && "
                              "cat /run/watchdog-fed"))
    fired = events.wait_for("node3", "watchdog", t0, timeout_s=60)
    assert fired[3] == "reset"
    since_feed = fired[0] - (last_feed - offset)
    figure("last watchdog feed to libvirt's WATCHDOG event", since_feed)
    assert 9.0 < since_feed < 13.0, since_feed  # the 10 s timeout, and event delivery
    wait_answers(n3, "node3 after the watchdog reset", not_boot=booted)
    seen = [(e.source, e.payload.event, e.payload.detail)
            for e in timeline.events(EventKind.LAB_EVENT)]
    assert ("node3", "watchdog", "reset") in seen


def test_status_and_destroy_leave_nothing(lab, bed):
    lab.close()
    status = subprocess.run([lab_cli(), "libvirt", "status",
                             "--lab-config", str(bed.lab_file)], capture_output=True,
                            text=True, timeout=60, env=bed_env())
    assert status.returncode == 0, status.stderr
    for machine in lab.plan.machines():
        assert f"{machine.domain}: shutoff, ready snapshot" in status.stdout
    destroyed = subprocess.run([lab_cli(), "libvirt", "destroy",
                                "--lab-config", str(bed.lab_file)], capture_output=True,
                               text=True, timeout=120, env=bed_env())
    assert destroyed.returncode == 0, destroyed.stderr
    libvirt = libvirt_module()
    conn = libvirt.open("qemu:///system")
    try:
        assert [d.name() for d in conn.listAllDomains(0)
                if d.name().startswith("pvechaos-qbed-")] == []
        assert [n.name() for n in conn.listAllNetworks(0)
                if n.name().startswith("pvechaos-qbed-")] == []
        pool = conn.storagePoolLookupByName("pvechaos-qbed")
        pool.refresh(0)
        left = sorted(v.name() for v in pool.listAllVolumes(0))
        assert left == sorted(  # golden images stay, as documented
            [lab.plan.golden(n, lab.config.iso_version) for n in NODES]
            + [lab.config.gateway.image])
    finally:
        conn.close()
    bridges = {lab.plan.management_bridge, lab.plan.corosync_bridge}
    assert not [b for b in bridges if (Path("/sys/class/net") / b).exists()]
    qemu = subprocess.run(["pgrep", "-f", "guest=pvechaos-qbed-"], capture_output=True)
    assert qemu.stdout == b""


def lab_cli() -> str:
    found = shutil.which("pvechaos-lab")
    assert found, "pvechaos-lab is not installed: pip install -e ."
    return found


def bed_env() -> dict[str, str]:
    from lab.qemu_bed.bed import PASSWORD_ENV

    return {**os.environ, PASSWORD_ENV: "pvechaos-qbed"}

