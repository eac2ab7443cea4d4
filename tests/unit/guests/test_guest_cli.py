"""pct and qm (pvemu.cli.pct's GuestCli) on a node's guests: HA redirect, list, config,
destroy; no root."""

from __future__ import annotations

import os

from pvemu.cli.pct import GuestCli

NET0 = "name=eth0,bridge=vmbr0,ip=198.18.50.100/24"
TEMPLATE = "shared:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"  # in conftest


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


def test_pct_create_from_a_missing_template_fails_and_creates_nothing(guests, pve, tmp_path,
                                                                      capsys):
    """PVE dies with "unable to create CT <vmid> - can't find file '<volid>'" (pve-container
    src/PVE/API2/LXC.pm, pve-storage src/PVE/Storage.pm abs_filesystem_path)."""
    cli = GuestCli("ct", guests)
    missing = "shared:vztmpl/missing.tar.zst"
    assert cli.main(["create", "101", missing, "--rootfs", "shared:1"]) == 255
    assert capsys.readouterr().err == (
        "unable to create CT 101 - can't find file 'shared:vztmpl/missing.tar.zst'\n")
    assert not (pve / "nodes/node1/lxc/101.conf").exists()
    assert not (tmp_path / "shared/images/101").exists()
    assert cli.main(["create", "101", "/no/such/file.tar.zst", "--rootfs", "shared:1"]) == 255
    assert "can't find file '/no/such/file.tar.zst'" in capsys.readouterr().err
