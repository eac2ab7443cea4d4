"""Benchmark: time to boot a quorate three-node embedded lab, and to tear it down.

    sudo python3 bench/bench_lab_boot.py [--rounds 5]

"boot" is from nothing to every node answering SSH; "quorate" adds forming the cluster
with `pvecm create` / `pvecm add --use_ssh` until every node is quorate with three
members (what a scenario waits for before its first fault); "teardown" is close().
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.cluster import Cluster  # noqa: E402
from harness.formation import form_cluster  # noqa: E402
from lab.embedded import EmbeddedLab  # noqa: E402
from lab.embedded.config import EmbeddedConfig  # noqa: E402


def one_round() -> tuple[float, float, float]:
    lab = EmbeddedLab(EmbeddedConfig(name="bench", subnet="198.18.90.0/24"))
    t0 = time.monotonic()
    try:
        lab.start()
        t1 = time.monotonic()
        cluster = Cluster(lab)
        form_cluster(cluster, "bench")
        t2 = time.monotonic()
        cluster.close()
    finally:
        t3 = time.monotonic()
        lab.close()
        t4 = time.monotonic()
    return t1 - t0, t2 - t0, t4 - t3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    results = []
    for i in range(rounds):
        boot, quorate, teardown = one_round()
        results.append((boot, quorate, teardown))
        print(f"round {i + 1}: boot {boot:.2f} s, quorate {quorate:.2f} s, "
              f"teardown {teardown:.2f} s", flush=True)
    for label, index in (("boot (nodes answer SSH)", 0), ("boot to quorate 3-node cluster", 1),
                         ("teardown", 2)):
        values = [r[index] for r in results]
        print(f"median {label}: {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f}, {rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
