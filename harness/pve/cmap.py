"""Typed views of `corosync-cmapctl` output: the nodelist and knet's per-link statistics.

Every line is ``KEY (TYPE) = VALUE`` (corosync tools/corosync-cmapctl.c, print_key). The
knet figures come from `corosync-cmapctl -m stats stats.knet`: per peer and link,
``stats.knet.node<ID>.link<N>.<field>``; ``latency_ave`` is knet's running average of
its ping/pong round trips in microseconds (libknet.h, struct knet_link_stats: "measured
in usecs"), over at most 2048 samples (knet_ping_precision, pve-faults.md §5.2), so a
change shows in it gradually.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ParseError

CMAP_LINE = re.compile(r"^(?P<key>\S+) \((?P<type>[a-z0-9]+)\) = (?P<value>.*)$")
_KNET_KEY = re.compile(r"^stats\.knet\.node(\d+)\.link(\d+)\.(\w+)$")
_NODE_KEY = re.compile(r"^nodelist\.node\.(\d+)\.(\w+)$")


def parse_cmap(text: str) -> dict[str, str]:
    """KEY -> VALUE (as text) of every ``KEY (TYPE) = VALUE`` line."""
    return {m["key"]: m["value"].strip() for line in text.splitlines()
            if (m := CMAP_LINE.match(line.strip()))}


@dataclass(frozen=True)
class KnetLink:
    """One knet link to one peer, as the local node's knet sees it."""

    nodeid: int
    link: int
    connected: bool
    latency_ave_us: int  # knet's running average round trip, microseconds
    latency_samples: int


@dataclass(frozen=True)
class CorosyncNode:
    nodeid: int
    name: str
    ring0_addr: str


def _int(value: str, key: str, text: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ParseError("corosync-cmapctl", f"{key} is {value!r}, not a number",
                         text) from None


def parse_knet_links(text: str) -> tuple[KnetLink, ...]:
    """Every (peer, link) of `corosync-cmapctl -m stats stats.knet`, sorted; the local
    node's own entry (no samples, never pinged) is kept: callers skip it by node id."""
    fields: dict[tuple[int, int], dict[str, str]] = {}
    for key, value in parse_cmap(text).items():
        m = _KNET_KEY.match(key)
        if m:
            fields.setdefault((int(m[1]), int(m[2])), {})[m[3]] = value
    if not fields:
        raise ParseError("corosync-cmapctl -m stats stats.knet",
                         "no stats.knet.nodeN.linkM keys (is corosync running with knet?)",
                         text)
    links = []
    for (nodeid, link), f in sorted(fields.items()):
        missing = {"connected", "latency_ave", "latency_samples"} - set(f)
        if missing:
            raise ParseError("corosync-cmapctl -m stats stats.knet",
                             f"node{nodeid}.link{link} lacks {sorted(missing)}", text)
        links.append(KnetLink(nodeid, link, f["connected"] == "1",
                              _int(f["latency_ave"], "latency_ave", text),
                              _int(f["latency_samples"], "latency_samples", text)))
    return tuple(links)


def parse_nodelist(text: str) -> tuple[CorosyncNode, ...]:
    """The nodes of corosync's nodelist (`corosync-cmapctl nodelist.node`), by node id."""
    fields: dict[int, dict[str, str]] = {}
    for key, value in parse_cmap(text).items():
        m = _NODE_KEY.match(key)
        if m:
            fields.setdefault(int(m[1]), {})[m[2]] = value
    nodes = []
    for position, f in sorted(fields.items()):
        if "nodeid" not in f:
            raise ParseError("corosync-cmapctl nodelist.node",
                             f"nodelist.node.{position} has no nodeid", text)
        nodes.append(CorosyncNode(_int(f["nodeid"], "nodeid", text),
                                  f.get("name", f.get("ring0_addr", "")),
                                  f.get("ring0_addr", "")))
    if not nodes:
        raise ParseError("corosync-cmapctl nodelist.node", "no nodelist.node.N keys", text)
    return tuple(sorted(nodes, key=lambda n: n.nodeid))
