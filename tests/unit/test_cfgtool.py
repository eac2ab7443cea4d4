"""harness.pve.corosync_cfgtool: `corosync-cfgtool -s`."""

from __future__ import annotations

import pytest

from harness.errors import ParseError
from harness.pve import LinkPeer, parse_cfgtool_status


@pytest.mark.parametrize("version", ["pve8", "pve9"])
def test_all_peers_connected(load, version):
    assert parse_cfgtool_status(load(f"{version}/corosync_cfgtool_all_connected.txt")) == (
        LinkPeer(0, 1, "localhost"), LinkPeer(0, 2, "connected"), LinkPeer(0, 3, "connected"))


@pytest.mark.parametrize("version", ["pve8", "pve9"])
def test_a_powered_off_peer_is_disconnected(load, version):
    peers = parse_cfgtool_status(load(f"{version}/corosync_cfgtool_one_down.txt"))
    assert {p.nodeid: p.state for p in peers} == {1: "localhost", 2: "connected",
                                                  3: "disconnected"}


def test_two_links_are_told_apart(load):
    """A second link repeats the recorded block with its own LINK ID."""
    one = load("pve8/corosync_cfgtool_one_down.txt")
    second = one.split("\n", 1)[1].replace("LINK ID 0", "LINK ID 1").replace(
        "198.18.60.11", "198.19.60.11").replace("2:\tconnected", "2:\tdisconnected")
    peers = parse_cfgtool_status(one + second)
    assert [(p.link, p.nodeid, p.state) for p in peers] == [
        (0, 1, "localhost"), (0, 2, "connected"), (0, 3, "disconnected"),
        (1, 1, "localhost"), (1, 2, "disconnected"), (1, 3, "disconnected")]


@pytest.mark.parametrize("text", ["", "Could not initialize corosync configuration API "
                                      "error 2\n", "nodeid: 2: connected\n"])
def test_no_link_rows_raise_parse_error(text):
    """Peer rows outside a LINK block do not count either."""
    with pytest.raises(ParseError) as info:
        parse_cfgtool_status(text)
    assert "corosync-cfgtool" in str(info.value)
    assert (text.strip() or "(empty)") in str(info.value)
