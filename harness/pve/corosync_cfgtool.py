"""Typed view of `corosync-cfgtool -s`: the knet link state to every peer."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ParseError


@dataclass(frozen=True)
class LinkPeer:
    link: int
    nodeid: int
    state: str  # "localhost", "connected", "disconnected", ...


_LINK = re.compile(r"^LINK ID (\d+)")
_PEER = re.compile(r"^\s*nodeid:\s*(\d+):\s*(.+?)\s*$")


def parse_cfgtool_status(text: str) -> tuple[LinkPeer, ...]:
    peers, link = [], None
    for line in text.splitlines():
        m = _LINK.match(line)
        if m:
            link = int(m.group(1))
            continue
        m = _PEER.match(line)
        if m and link is not None:
            peers.append(LinkPeer(link, int(m.group(1)), m.group(2)))
    if not peers:
        raise ParseError("corosync-cfgtool -s", "no link status rows", text)
    return tuple(peers)
