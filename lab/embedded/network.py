"""The lab's network: one bridge on the host, one namespace and veth pair per node.

Nodes have no default route: the only addresses they can reach are on the lab bridge.
"""

from __future__ import annotations

import time
from pathlib import Path

from lab.embedded.config import EmbeddedConfig
from lab.embedded.system import sh


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def create_bridge(config: EmbeddedConfig) -> None:
    prefix = config.network.prefixlen
    sh("ip", "link", "add", config.bridge, "type", "bridge")
    sh("ip", "addr", "add", f"{config.host_address}/{prefix}", "dev", config.bridge)
    sh("ip", "link", "set", config.bridge, "up")


def create_node_network(config: EmbeddedConfig, node: str) -> None:
    ns, veth = config.netns(node), config.veth(node)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", veth, "master", config.bridge)
    sh("ip", "-n", ns, "addr", "add",
       f"{config.node_address(node)}/{config.network.prefixlen}", "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    set_link(config, node, up=True)


def set_link(config: EmbeddedConfig, node: str, *, up: bool) -> None:
    sh("ip", "link", "set", config.veth(node), "up" if up else "down")


def delete_netns(name: str) -> None:
    if netns_exists(name):
        sh("ip", "netns", "del", name, check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        sh("ip", "link", "del", name, check=False)


def remove_lab_network(config: EmbeddedConfig, timeout_s: float = 10.0) -> None:
    """Delete veths, namespaces and the bridge, and wait until the kernel has let go.

    Deleting a namespace frees its devices asynchronously, so the host end of each veth
    is deleted explicitly (which removes both ends) and the removal is awaited.
    """
    names = [config.veth(n) for n in config.node_names] + [config.bridge]
    for name in names:
        delete_link(name)
    for node in config.node_names:
        delete_netns(config.netns(node))
    deadline = time.monotonic() + timeout_s
    while any(link_exists(n) for n in names) and time.monotonic() < deadline:
        time.sleep(0.05)
