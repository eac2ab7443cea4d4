"""Start knobs and migration of one node's guests (pvemu.guest_lifecycle), no root."""

from __future__ import annotations

import pytest

from pvemu import guest_lifecycle as g
from pvemu.guest_config import GuestError

NET0 = "name=eth0,bridge=vmbr0,ip=198.18.50.100/24"
TEMPLATE = "shared:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"  # in conftest


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


def test_migrating_a_stopped_guest_moves_its_config(guests, pve):
    guests.create_ct(100, TEMPLATE, {"rootfs": "shared:1", "net0": NET0})
    assert guests.migrate("ct:100", "node3", online=False) is True
    assert guests.config_node("ct:100") == "node3"
    assert guests.migrate("ct:100", "node2", online=False) is False  # not ours any more
    assert "does not exist" in guests.last_error
    assert guests.start("ct:100") is False
    assert "Configuration file 'nodes/node1/lxc/100.conf' does not exist" in guests.last_error
