"""The libvirt lab against libvirt's test driver: definition, power verbs, links, the
`ready` snapshot and its fallback, events. What happens inside the nodes (SSH) is
recorded by a twin of the lab's NodeAccess."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import pytest

from harness.errors import InterlockError, LabError, UnsupportedFault
from harness.lab_api import Capability, Lab
from harness.waits import wait_until
from lab.libvirt import lab as lab_module
from lab.libvirt import snapshots
from lab.libvirt.host import LibvirtLinks, RecordedLinks
from lab.libvirt.lab import LibvirtLab
from tests.unit.libvirt_lab.twins import KeptOpen, RecordingAccess


@pytest.fixture
def access() -> RecordingAccess:
    return RecordingAccess()


@pytest.fixture
def links() -> RecordedLinks:
    return RecordedLinks()


@pytest.fixture
def the_lab(config, host, golden, access, links):
    lab = LibvirtLab(config, host=host, links=links, access=access)
    yield lab
    lab.close()


def states(lab: LibvirtLab) -> dict[str, str]:
    return {m.name: lab.host.state(m.domain) for m in lab.plan.machines()}


def test_the_lab_keeps_the_lab_protocol(the_lab):
    assert isinstance(the_lab, Lab)
    assert Capability.SNAPSHOT in the_lab.capabilities
    assert [n.name for n in the_lab.nodes()] == ["node1", "node2", "node3"]
    assert the_lab.nodes()[0].address == "198.19.4.11"
    assert the_lab.nodes()[0].link0 == "198.19.132.11"


def test_a_cold_start_defines_networks_and_overlays_and_boots_every_vm(the_lab, access):
    the_lab.start()
    conn = the_lab.host.conn
    networks = {n.name(): n.isActive() for n in conn.listAllNetworks()}
    assert networks == {"pvechaos-t-mgmt": 1, "pvechaos-t-coro": 1}
    assert states(the_lab) == {"gw": "running", "node1": "running", "node2": "running",
                               "node3": "running"}
    pool = conn.storagePoolLookupByName("pvechaos")
    assert {"pvechaos-t-node1.qcow2", "pvechaos-t-gw.qcow2"} <= set(pool.listVolumes())
    disk = ET.fromstring(conn.lookupByName("pvechaos-t-node2").XMLDesc(0)).find(
        "devices/disk/source").get("file")
    assert disk.endswith("pvechaos-t-node2.qcow2")
    assert access.calls == ["wait_ssh", "configure_networking"]
    assert the_lab.prepared() is False


def test_power_verbs_map_to_libvirt_calls(the_lab):
    the_lab.start()
    the_lab.power_cut("node1")
    assert the_lab.host.domain("pvechaos-t-node1").state() == [5, 2]  # shut off, destroyed
    assert the_lab.is_powered("node1") is False
    the_lab.power_on("node1")
    assert the_lab.is_powered("node1") is True
    the_lab.freeze("node2")
    assert the_lab.host.state("pvechaos-t-node2") == "paused"
    the_lab.thaw("node2")
    assert the_lab.host.state("pvechaos-t-node2") == "running"
    the_lab.shutdown("node3")
    assert the_lab.host.state("pvechaos-t-node3") == "shutoff"
    the_lab.reset("node2")
    assert the_lab.host.state("pvechaos-t-node2") == "running"


def test_nothing_outside_the_lab_is_touched(the_lab):
    the_lab.start()
    with pytest.raises(InterlockError, match="not a node of lab t"):
        the_lab.power_cut("gw")
    with pytest.raises(InterlockError, match="nodes are node1, node2, node3"):
        the_lab.power_cut("pve1")


def test_a_link_cut_switches_only_the_corosync_nic(the_lab, links):
    the_lab.start()
    the_lab.link_down("node2")
    corosync, management = the_lab.plan.machine("node2").corosync, \
        the_lab.plan.machine("node2").management
    dom = the_lab.host.domain("pvechaos-t-node2")
    assert links.link_is_up(dom, corosync) is False
    assert links.link_is_up(dom, management) is True
    the_lab.link_up("node2")
    assert links.link_is_up(dom, corosync) is True
    the_lab.power_cut("node2")
    with pytest.raises(LabError, match="not running"):
        the_lab.link_down("node2")


def test_a_second_start_reverts_to_the_ready_snapshot(config, host, golden, access, links):
    host = KeptOpen(host)
    first = LibvirtLab(config, host=host, links=links, access=access)
    first.start()
    first.save_ready()
    assert all(snapshots.has_snapshot(d) for d in first._domains())
    assert set(states(first).values()) == {"running"}  # resumed after the cut
    first.close()
    assert set(states(first).values()) == {"shutoff"}  # definitions and snapshots kept

    again = RecordingAccess()
    second = LibvirtLab(config, host=host, links=links, access=again)
    second.start()
    assert second.prepared() is True
    assert set(states(second).values()) == {"running"}
    assert again.calls == ["wait_ssh", "step_clocks"]
    second.close()


def test_a_failed_revert_falls_back_to_fresh_overlays_and_a_cold_boot(
        config, host, golden, access, links, monkeypatch, capsys):
    host = KeptOpen(host)
    first = LibvirtLab(config, host=host, links=links, access=access)
    first.start()
    first.save_ready()
    first.close()

    def broken(*_args, **_kwargs):
        raise LabError("revert of pvechaos-t-node2 failed: internal error")

    monkeypatch.setattr(lab_module.snapshots, "revert", broken)
    again = RecordingAccess()
    second = LibvirtLab(config, host=host, links=links, access=again)
    second.start()
    assert "starting again from fresh overlays (cold boot)" in capsys.readouterr().out
    assert second.prepared() is False  # the harness forms the cluster again
    assert not any(snapshots.has_snapshot(d) for d in second._domains())
    assert set(states(second).values()) == {"running"}
    assert again.calls == ["wait_ssh", "configure_networking"]
    second.close()


@pytest.mark.parametrize("volume, command", [
    ("gw-debian12.qcow2", "pvechaos-lab libvirt build-gateway --lab-config FILE"),
    ("pvechaos-golden-9.1-1-t-node2.qcow2", "pvechaos-lab libvirt build --lab-config FILE"),
])
def test_a_missing_golden_image_names_the_command_that_makes_it(config, host, golden, access,
                                                                links, volume, command):
    pool = host.conn.storagePoolLookupByName("pvechaos")
    pool.storageVolLookupByName(volume).delete(0)
    lab = LibvirtLab(config, host=host, links=links, access=access)
    with pytest.raises(LabError, match=f"golden image {volume} is missing") as info:
        lab.start()
    assert f"fix: run `{command}`" in str(info.value)
    assert not [d for d in host.conn.listAllDomains() if d.isActive()]


def test_a_missing_pool_names_the_build_command(tmp_path, access, links):
    from lab.libvirt.host import Host
    from tests.unit.libvirt_lab.conftest import make_config

    node = tmp_path / "empty.xml"
    node.write_text("<node/>")
    host = Host(f"test://{node}")
    lab = LibvirtLab(make_config(tmp_path, host.uri), host=host, links=links, access=access)
    with pytest.raises(LabError, match="storage pool pvechaos is missing") as info:
        lab.start()
    assert "pvechaos-lab libvirt build" in str(info.value)


def test_power_events_reach_the_subscriber_by_node_name(the_lab):
    the_lab.start()
    seen: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def sink(node, event, detail):
        with lock:
            seen.append((node, event, detail))

    the_lab.subscribe(sink)
    the_lab.power_cut("node3")
    the_lab.power_on("node3")
    the_lab.freeze("node1")
    wait_until("libvirt events delivered", lambda: len(seen) >= 3, timeout_s=10,
               interval_s=0.05)
    assert ("node3", "stopped", "destroyed") in seen
    assert ("node3", "started", "0") in seen
    assert ("node1", "suspended", "0") in seen


def test_every_subscriber_gets_every_event(the_lab):
    """libvirtd takes one callback per event kind and connection (a second one is
    refused: 'event callback already tracked', seen on libvirtd 9.0 by the qemu test
    bed), so two subscribers share it. (That both still hear a lab closed and started
    again, on a new connection, tests/qemu/test_libvirt_real.py shows: the test
    driver's state does not outlive its connection.)"""
    the_lab.start()
    first: list[tuple[str, str, str]] = []
    second: list[tuple[str, str, str]] = []
    the_lab.subscribe(lambda *e: first.append(e))
    the_lab.subscribe(lambda *e: second.append(e))
    the_lab.power_cut("node2")
    wait_until("both subscribers told", lambda: first and second, timeout_s=10,
               interval_s=0.05)
    assert ("node2", "stopped", "destroyed") in first
    assert ("node2", "stopped", "destroyed") in second


def test_the_real_link_switch_says_the_test_driver_cannot_do_it(the_lab):
    the_lab.start()
    real = LibvirtLinks(the_lab.host)
    dom = the_lab.host.domain("pvechaos-t-node1")
    with pytest.raises(UnsupportedFault, match="not supported"):
        real.set_link(dom, the_lab.plan.machine("node1").corosync, False)
    assert real.link_is_up(dom, the_lab.plan.machine("node1").corosync) is True


def test_describe_names_the_lab_for_reports(the_lab):
    facts = the_lab.describe()
    assert facts["lab"] == "libvirt"
    assert facts["libvirt.uri"].startswith("test://")
    assert facts["nodes"] == "node1=198.19.4.11, node2=198.19.4.12, node3=198.19.4.13"


def test_guest_recipe_uses_the_management_network_and_shared_storage(the_lab):
    recipe = the_lab.guest_recipe(101)
    assert (recipe.address, recipe.prefixlen, recipe.storage_id) == ("198.19.4.21", 24,
                                                                       "shared")
    storage = the_lab.shared_storage()
    assert (storage.server, storage.export) == ("198.19.4.2", "/srv/pvechaos")


def test_a_host_that_cannot_be_reached_is_named_with_its_fix_and_close_is_safe(
        tmp_path, access, links):
    from lab.libvirt.host import Host
    from tests.unit.libvirt_lab.conftest import make_config

    def refuse(uri):  # what libvirt says when sshd on the runner refuses (no network here)
        import libvirt

        raise libvirt.libvirtError("Cannot recv data: ssh: connect to host runner2 port 22: "
                                   "Connection refused: Connection reset by peer")

    uri = "qemu+ssh://root@runner2/system?keyfile=/root/.ssh/id_ed25519"
    lab = LibvirtLab(make_config(tmp_path, uri), host=Host(uri, opener=refuse), links=links,
                     access=access)
    with pytest.raises(LabError) as info:
        lab.start()
    text = str(info.value)
    assert "cannot connect to libvirt at qemu+ssh://root@runner2" in text
    assert "Connection refused" in text
    assert "`ssh root@runner2` works without a password prompt" in text
    lab.close()  # nothing was reached: nothing to undo, no second error
    assert access.calls == []


def test_nodes_that_never_answer_after_a_revert_get_a_cold_boot(config, host, golden, links,
                                                                capsys):
    from harness.errors import WaitTimeout

    kept = KeptOpen(host)
    first = LibvirtLab(config, host=kept, links=links, access=RecordingAccess())
    first.start()
    first.save_ready()
    first.close()

    class SilentAfterRevert(RecordingAccess):
        def wait_ssh(self, lab, timeout_s):
            super().wait_ssh(lab, timeout_s)
            if self.calls.count("wait_ssh") == 1:
                raise WaitTimeout("every node of lab t to answer SSH", timeout_s,
                                  "node2: timed out")

    access = SilentAfterRevert()
    second = LibvirtLab(config, host=kept, links=links, access=access)
    second.start()
    assert "starting again from fresh overlays" in capsys.readouterr().out
    assert second.prepared() is False
    assert access.calls == ["wait_ssh", "wait_ssh", "configure_networking"]
    second.close()


def test_the_upgrade_verb_runs_the_users_command_then_reboots(config, host, access, links):
    from dataclasses import replace

    from harness.ssh import CommandResult

    calls = []

    def run(node, command, timeout_s):
        calls.append((node.name, node.address, command))
        return CommandResult(node.name, command, 0, "Setting up pve-manager ...\n", "", 1.0)

    bare = LibvirtLab(config, host=host, links=links, access=access, run=run)
    assert Capability.UPGRADE not in bare.capabilities
    with pytest.raises(UnsupportedFault, match="--upgrade-command CMD"):
        bare.upgrade("node1")
    lab = LibvirtLab(replace(config, upgrade_command="apt-get -y dist-upgrade"), host=host,
                     links=links, access=access, run=run)
    assert Capability.UPGRADE in lab.capabilities
    assert lab.upgrade("node2") == "Setting up pve-manager ...\n"
    assert calls == [("node2", "198.19.4.12", "apt-get -y dist-upgrade"),
                     ("node2", "198.19.4.12", "systemctl reboot")]
    with pytest.raises(InterlockError, match="not a node of lab t"):
        lab.upgrade("gw")  # the NFS gateway is no PVE node


def test_a_killed_runs_guardian_powers_off_what_runs_and_skips_what_is_gone():
    """lab/run_guardian.py's teardown of a libvirt lab: `close` for a run that is gone,
    on libvirt's test driver (its default host shares one state within this process)."""
    import libvirt

    from lab.libvirt.lab import power_off_domains

    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByName("test")
        if not dom.isActive():
            dom.create()
        power_off_domains("test:///default", ["test", "pvechaos-never-defined"])
        assert not dom.isActive()
        assert conn.lookupByName("test").isPersistent()  # the definition stays
    finally:
        conn.close()
