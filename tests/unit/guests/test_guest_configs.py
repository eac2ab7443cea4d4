"""Guest configs in PVE's format, ownership, knobs, addresses, HA redirect (no root)."""

from __future__ import annotations

import os
import stat

import pytest

from pvemu import guests as g
from pvemu.cli.pct import GuestCli
from pvemu.guests import GuestConfig, GuestError

NET0 = "name=eth0,bridge=vmbr0,ip=198.18.50.100/24"
TEMPLATE = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"


def test_a_ct_config_is_written_as_pve_writes_it(guests, pve):
    guests.create_ct(100, TEMPLATE, {"rootfs": "shared:1", "hostname": "web",
                                     "net0": NET0, "cores": 2})
    text = (pve / "nodes/node1/lxc/100.conf").read_text()
    lines = text.splitlines()
    assert lines == sorted(lines)
    assert "arch: amd64\n" in text and "ostype: debian\n" in text
    assert "rootfs: shared:100/vm-100-disk-0.raw,size=1G\n" in text
    assert "memory: 512\n" in text and "swap: 512\n" in text and "cores: 2\n" in text
    net0 = GuestConfig.parse(text).values["net0"]
    assert net0.startswith("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:")
    assert net0.endswith(",ip=198.18.50.100/24,type=veth")


def test_a_vm_config_has_the_mac_after_the_model_and_a_boot_order(guests, pve):
    guests.create_vm(110, {"name": "db", "memory": 1024, "net0": "virtio,bridge=vmbr0",
                           "scsi0": "shared:2", "ipconfig0": "ip=198.18.50.110/24"})
    conf = GuestConfig.parse((pve / "nodes/node1/qemu-server/110.conf").read_text())
    assert conf.values["scsi0"] == "shared:110/vm-110-disk-0.raw,size=2G"
    assert conf.values["boot"] == "order=scsi0;net0"
    assert conf.values["net0"].startswith("virtio=BC:24:11:")
    assert conf.values["net0"].endswith(",bridge=vmbr0")
    assert g.guest_network("vm", conf)[0] == "198.18.50.110/24"
    assert g.boot_volume("vm", conf) == "shared:110/vm-110-disk-0.raw"


def test_description_lines_and_snapshots_survive_a_round_trip():
    text = ("#pvechaos: fail-start 2\n#pvechaos: port 9000\narch: amd64\nhostname: a\n"
            "\n[snap1]\narch: amd64\n")
    conf = GuestConfig.parse(text)
    assert conf.knobs() == {"fail-start": "2", "port": "9000"}
    assert conf.values == {"arch": "amd64", "hostname": "a"}
    assert conf.render() == text


def test_vmids_are_unique_cluster_wide_and_worded_as_pve_words_it(guests, pve):
    (pve / "nodes/node2/lxc/100.conf").write_text("arch: amd64\n")
    assert guests.config_node("ct:100") == "node2" and guests.exists("ct:100")
    assert guests.config_node("vm:100") is None
    with pytest.raises(GuestError, match="^CT 100 already exists on node 'node2'$"):
        guests.create_ct(100, TEMPLATE, {"rootfs": "shared:1"})
    with pytest.raises(GuestError, match="^unable to create VM 100 - CT 100 already exists "
                       "on node 'node2'$"):
        guests.create_vm(100, {"scsi0": "shared:1"})
    with pytest.raises(GuestError, match="Configuration file 'nodes/node1/lxc/100.conf' "
                       "does not exist"):
        guests.status("ct", 100)


def test_without_quorum_nothing_is_created(guests, pve):
    node_dir = pve / "nodes/node1"
    mode = node_dir.stat().st_mode
    os.chmod(node_dir, stat.S_IMODE(mode) & ~0o222)
    try:
        if os.access(node_dir, os.W_OK) and os.geteuid() != 0:
            pytest.skip("cannot make the directory read-only here")
        with pytest.raises(GuestError, match="cluster not ready - no quorum?"):
            guests.create_ct(101, TEMPLATE, {"rootfs": "shared:1"})
    finally:
        os.chmod(node_dir, stat.S_IMODE(mode))


@pytest.mark.parametrize(("ip", "message"), [
    ("10.0.0.5/24", "outside the lab subnet 198.18.50.0/24"),
    ("198.18.51.5/24", "outside the lab subnet 198.18.50.0/24"),
    ("198.18.50.1/24", "reserved"),
    ("198.18.50.255/24", "reserved"),
    ("dhcp", "not supported on the embedded lab"),
    ("198.18.50.11/24", "already used"),
])
def test_guest_addresses_must_be_free_addresses_of_the_lab(info, ip, message):
    with pytest.raises(GuestError, match=message):
        g.check_lab_address(ip, info, {"198.18.50.11"})


def test_an_address_outside_the_lab_leaves_no_config_and_no_disk(guests, pve, tmp_path):
    with pytest.raises(GuestError, match="outside the lab subnet"):
        guests.create_ct(104, TEMPLATE, {"rootfs": "shared:1",
                                         "net0": "name=eth0,ip=10.1.2.3/24"})
    assert not (pve / "nodes/node1/lxc/104.conf").exists()
    assert not (tmp_path / "shared/images/104").exists()


def test_fail_start_counts_n_failures_then_lets_starts_through(tmp_path):
    counter = tmp_path / "vm-100-disk-0.raw.pvechaos-fail-start"
    results = [g.consume_fail_start("2", counter)[0] for _ in range(4)]
    assert results == [True, True, False, False]
    assert g.consume_fail_start("3", counter)[0] is True  # a new value counts afresh
    assert g.consume_fail_start("always", counter)[0] is True
    assert g.consume_fail_start("always", counter)[0] is True
    assert g.consume_fail_start(None, counter) == (False, "")
    assert not counter.exists()
    with pytest.raises(GuestError, match="invalid pvechaos knob"):
        g.consume_fail_start("soon", counter)


def test_a_stale_runtime_entry_reads_as_stopped(guests, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "100.json").write_text('{"sid": "ct:100", "pid": 999999999, "start": 1, '
                                  '"address": "198.18.50.100/24", "port": 8080, '
                                  '"started_at": 0}')
    assert guests.running("ct:100") is False
    assert not (run / "100.json").exists()
    mine = g.process_start(os.getpid())
    (run / "100.json").write_text(f'{{"sid": "ct:100", "pid": {os.getpid()}, '
                                  f'"start": {mine}, "address": "a", "port": 1, '
                                  '"started_at": 0}')
    assert guests.running("ct:100") is True and guests.running("vm:100") is False


def test_start_of_an_ha_guest_asks_ha_manager(guests, pve, tmp_path, monkeypatch, capsys):
    guests.create_ct(100, TEMPLATE, {"rootfs": "shared:1", "net0": NET0})
    (pve / "ha").mkdir()
    (pve / "ha/resources.cfg").write_text("ct: 100\n\tstate stopped\n")
    calls = tmp_path / "calls"
    fake = tmp_path / "bin/ha-manager"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    cli = GuestCli("ct", guests)
    assert cli.main(["start", "100"]) == 0
    assert capsys.readouterr().out == "Requesting HA start for CT 100\n"
    assert calls.read_text() == "set ct:100 --state started\n"
    assert guests.running("ct:100") is False  # the LRM starts it, not pct
    fake.write_text("#!/bin/sh\nexit 3\n")
    assert cli.main(["start", "100"]) == 255
    assert ("command 'ha-manager set ct:100 --state started' failed: exit code 3"
            in capsys.readouterr().err)


def test_list_config_and_destroy_from_the_cli(guests, pve, tmp_path, capsys):
    cli = GuestCli("ct", guests)
    assert cli.main(["create", "100", TEMPLATE, "--rootfs", "shared:1", "--hostname",
                     "web", "--net0", NET0]) == 0
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["VMID       Status     Lock         Name                ",
                   "100        stopped                 web                 "]
    assert cli.main(["config", "100"]) == 0
    assert "rootfs: shared:100/vm-100-disk-0.raw,size=1G" in capsys.readouterr().out
    assert cli.main(["status", "100"]) == 0
    assert capsys.readouterr().out == "status: stopped\n"
    (pve / "ha").mkdir()
    (pve / "ha/resources.cfg").write_text("ct: 100\n")
    assert cli.main(["destroy", "100"]) == 255
    assert ("unable to remove CT 100 - used in HA resources and purge parameter not set."
            in capsys.readouterr().err)
    (pve / "ha/resources.cfg").write_text("")
    assert cli.main(["destroy", "100"]) == 0
    assert not (pve / "nodes/node1/lxc/100.conf").exists()
    assert not (tmp_path / "shared/images/100").exists()
    assert cli.main(["stop", "100"]) == 255
    assert "CT 100 not running" in capsys.readouterr().err


def test_qm_list_layout(guests, capsys):
    guests.create_vm(110, {"name": "db", "memory": 1024, "scsi0": "shared:2"})
    assert GuestCli("vm", guests).main(["list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header == ("      VMID NAME                 STATUS     MEM(MB)    BOOTDISK(GB) "
                      "PID       ")
    assert row == ("       110 db                   stopped    1024               2.00 "
                   "0         ")


def test_migrating_a_stopped_guest_moves_its_config(guests, pve):
    guests.create_ct(100, TEMPLATE, {"rootfs": "shared:1", "net0": NET0})
    assert guests.migrate("ct:100", "node3", online=False) is True
    assert guests.config_node("ct:100") == "node3"
    assert guests.migrate("ct:100", "node2", online=False) is False  # not ours any more
    assert "does not exist" in guests.last_error
    assert guests.start("ct:100") is False
    assert "Configuration file 'nodes/node1/lxc/100.conf' does not exist" in guests.last_error
