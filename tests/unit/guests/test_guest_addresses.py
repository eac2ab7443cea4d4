"""Guest addresses inside the lab subnet (pvemu.guest_addresses), no root."""

from __future__ import annotations

import pytest

from pvemu import guest_addresses as g
from pvemu.guest_config import GuestError


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


def test_every_other_guest_of_the_cluster_reserves_its_address(guests, pve, monkeypatch):
    monkeypatch.setattr(g, "node_addresses", lambda: {"198.18.50.11"})
    (pve / "nodes/node2/lxc/100.conf").write_text(
        "net0: name=eth0,hwaddr=BC:24:11:00:00:01,ip=198.18.50.100/24\n")
    (pve / "nodes/node3/qemu-server/110.conf").write_text(
        "ipconfig0: ip=198.18.50.110/24\nnet0: virtio=BC:24:11:00:00:02\n")
    assert g.reserved_addresses(guests.store) == {"198.18.50.11", "198.18.50.100",
                                                  "198.18.50.110"}
    assert g.reserved_addresses(guests.store, 100) == {"198.18.50.11", "198.18.50.110"}
    assert g.random_mac().startswith("BC:24:11:")
