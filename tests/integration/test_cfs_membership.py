"""pmxcfs follows corosync's membership (pve-faults.md §4.4, §4.5): on the real lab, node3
is cut off from corosync's traffic (an nft drop of udp 5405-5412 inside its namespace, so
that SSH still reaches it), and

- a file node3 writes in the seconds before its corosync notices never reaches node1 or
  node2 (the change travels through CPG, which no longer reaches them);
- node3, inquorate, still reads the content a file had when it lost contact, while node1
  changes it;
- once the drop is removed, every node converges on the majority's tree.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from harness.timescale import Timescale
from harness.waits import NotYet, wait_until
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import running

TABLE = "pvechaos_cfs_test"
SHARED, CUT = "/etc/pve/cfs-shared.cfg", "/etc/pve/cfs-cut.cfg"
# the files of the tree on a node, with their checksums (virtual files and links excluded)
TREE = "cd /etc/pve && find . -type f ! -name '.*' | sort | xargs -r md5sum"


@pytest.fixture(scope="module")
def cluster():
    lab = EmbeddedLab(EmbeddedConfig(name="cfm", subnet="198.18.39.0/24",
                                     timescale=Timescale(0.1), pmxcfs="cpg"))
    with running(lab, formed="pvechaos") as the_cluster:
        yield the_cluster


def nft(lab: EmbeddedLab, node: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", lab.config.netns(node), "nft", *args],
                   check=True, capture_output=True, timeout=10)


def cut_corosync(lab: EmbeddedLab, node: str) -> None:
    nft(lab, node, "add", "table", "inet", TABLE)
    for hook, port in (("input", "dport"), ("output", "dport"), ("input", "sport")):
        nft(lab, node, "add", "chain", "inet", TABLE, f"{hook}_{port}",
            f"{{ type filter hook {hook} priority 0 ; }}")
        nft(lab, node, "add", "rule", "inet", TABLE, f"{hook}_{port}", "udp", port,
            "5405-5412", "drop")


def heal(lab: EmbeddedLab, node: str) -> None:
    subprocess.run(["ip", "netns", "exec", lab.config.netns(node), "nft", "delete", "table",
                    "inet", TABLE], capture_output=True, timeout=10)


def read(node, path: str) -> str | None:
    result = node.run("cat", path)
    return result.stdout if result.rc == 0 else None


def test_a_cut_node_writes_to_nobody_reads_its_frozen_copy_and_rejoins(cluster):
    lab = cluster.lab
    node1, node2, node3 = (cluster.node(n) for n in ("node1", "node2", "node3"))
    node1.check("sh", "-c", f"echo old > {SHARED}")
    wait_until("node3 to see the shared file", lambda: read(node3, SHARED) == "old\n"
               or NotYet(read(node3, SHARED)), timeout_s=10)
    cut_corosync(lab, "node3")
    try:
        start = time.monotonic()
        # node3's corosync has not noticed yet: its pmxcfs still believes it is quorate
        # and sends the change, which waits for its own delivery
        wrote = node3.run("sh", "-c", f"echo from-node3 > {CUT}", timeout_s=60)
        took = time.monotonic() - start
        wait_until("node1 to count node3 out", lambda: len(node1.quorum().members) == 2
                   or NotYet("still 3 members"), timeout_s=30)
        node1.check("sh", "-c", f"echo new > {SHARED}")
        wait_until("node2 to see node1's change", lambda: read(node2, SHARED) == "new\n"
                   or NotYet(read(node2, SHARED)), timeout_s=10)
        wait_until("node3 to lose quorum", lambda: not node3.quorum().quorate
                   or NotYet("still quorate"), timeout_s=30)
        print(f"node3's write returned rc={wrote.rc} after {took:.1f} s: "
              f"{wrote.stderr.strip()!r}")
        assert read(node1, CUT) is None and read(node2, CUT) is None  # reached nobody
        assert read(node3, SHARED) == "old\n"  # the frozen copy
        assert node3.run("sh", "-c", f"echo x > {SHARED}").rc != 0  # read-only
    finally:
        heal(lab, "node3")
    wait_until("node3 to be a member again", lambda: node3.quorum().quorate
               or NotYet("not quorate"), timeout_s=60)

    def same_tree() -> bool | NotYet:
        trees = {n.name: n.check("sh", "-c", TREE) for n in (node1, node2, node3)}
        return len(set(trees.values())) == 1 or NotYet("trees differ")

    wait_until("every node to hold the same tree", same_tree, timeout_s=30, interval_s=1)
    assert read(node3, SHARED) == "new\n" and read(node3, CUT) is None  # majority won
    node1.run("rm", "-f", SHARED)
