"""Guest configs in /etc/pve through EtcPve (pvemu.guest_store): ownership, VMIDs unique
cluster-wide, the quorum rule, moves; no root."""

from __future__ import annotations

import os
import stat

import pytest

from pvemu.guest_config import GuestConfig, GuestError

TEMPLATE = "shared:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"  # in conftest


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


def test_the_quorum_rule_is_the_write_bit_seen_through_local(guests, pve):
    assert guests.store.quorate() is True
    mode = (pve / "nodes/node1").stat().st_mode
    os.chmod(pve / "nodes/node1", stat.S_IMODE(mode) & ~0o222)
    try:
        assert guests.store.quorate() is False  # `local` points at node1's directory
        with pytest.raises(GuestError, match="^cluster not ready - no quorum\\?$"):
            guests.check_quorum()
    finally:
        os.chmod(pve / "nodes/node1", stat.S_IMODE(mode))


def test_configs_are_replaced_whole_and_moved_only_to_cluster_nodes(guests, pve):
    conf = GuestConfig({"arch": "amd64"}, [])
    guests.store.write("ct", 100, conf, create=True)
    with pytest.raises(GuestError, match="^CT 100 already exists on node 'node1'$"):
        guests.store.write("ct", 100, conf, create=True)
    guests.store.write("ct", 100, GuestConfig({"arch": "arm64"}, []))
    assert os.listdir(pve / "nodes/node1/lxc") == ["100.conf"]  # no temporary file left
    assert guests.load("ct", 100).values == {"arch": "arm64"}
    with pytest.raises(GuestError, match="^no such cluster node 'node9'$"):
        guests.move_config("ct", 100, "node9")
    guests.move_config("ct", 100, "node2")
    assert guests.config_node("ct:100") == "node2"
