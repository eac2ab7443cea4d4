"""Benchmark: time to boot a quorate embedded lab, formed afresh or from its ready state.

    sudo python3 bench/bench_lab_boot.py [--rounds 5] [--nodes 3 5 7] [--timescale 0.1]

For each node count, each round boots the lab twice:

- "fresh": from nothing to every node answering SSH ("boot"), then forming the cluster
  with `pvecm create` / `pvecm add --use_ssh` until every node is quorate with all
  members ("quorate": what a scenario waits for before its first fault); then, untimed,
  the shared storage and the lab's ready state (lab/embedded/ready.py), as a module's
  first formation does;
- "formed": the same lab again, booting that ready state (--lab-formed reuse, the
  default of a scenario run): "boot", then "quorate" once every node is quorate with all
  members, nothing formed.

"teardown" is close(). The ready state is removed at the end. The timescale is the run's
(the main job's is 0.1; at 1 the nodes run the CPG pmxcfs, below it the shared one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.cluster import Cluster  # noqa: E402
from harness.formation import form_cluster, wait_for_whole_cluster  # noqa: E402
from harness.shared_storage import add_shared_storage  # noqa: E402
from harness.timescale import Timescale  # noqa: E402
from lab.embedded import EmbeddedLab, ready  # noqa: E402
from lab.embedded.config import STATE_ROOT, EmbeddedConfig  # noqa: E402

NAME, CLUSTER = "bench", "bench"


def one_boot(nodes: int, timescale: float, *, formed: bool) -> tuple[float, float, float]:
    """(boot, quorate, teardown) seconds of one start of the lab."""
    lab = EmbeddedLab(EmbeddedConfig(name=NAME, subnet="198.18.90.0/24", node_count=nodes,
                                     timescale=Timescale(timescale), cluster_name=CLUSTER,
                                     formed="reuse"))
    t0 = time.monotonic()
    try:
        lab.start()
        t1 = time.monotonic()
        if lab.prepared() != formed:
            raise SystemExit(f"expected a {'formed' if formed else 'fresh'} boot, got the "
                             "other: is another run using lab 'bench'?")
        cluster = Cluster(lab)
        try:
            if formed:
                wait_for_whole_cluster(cluster, timeout_s=120)
                t2 = time.monotonic()
            else:
                form_cluster(cluster, CLUSTER)
                t2 = time.monotonic()
                add_shared_storage(cluster, lab.shared_storage(), on="node1")
                lab.save_ready()
        finally:
            cluster.close()
    finally:
        t3 = time.monotonic()
        lab.close()
        t4 = time.monotonic()
    return t1 - t0, t2 - t0, t4 - t3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3])
    parser.add_argument("--timescale", type=float, default=1.0)
    args = parser.parse_args()
    table = []
    try:
        for nodes in args.nodes:
            results: dict[str, list[tuple[float, float, float]]] = {"fresh": [], "formed": []}
            ready.remove(STATE_ROOT, [NAME])
            for i in range(args.rounds):
                for way in ("fresh", "formed"):
                    boot, quorate, teardown = one_boot(nodes, args.timescale,
                                                       formed=way == "formed")
                    results[way].append((boot, quorate, teardown))
                    print(f"{nodes} nodes, round {i + 1}, {way}: boot {boot:.2f} s, quorate "
                          f"{quorate:.2f} s, teardown {teardown:.2f} s", flush=True)
                ready.remove(STATE_ROOT, [NAME])  # the next fresh boot finds none
            for way, rows in results.items():
                medians = [statistics.median(r[k] for r in rows) for k in range(3)]
                table.append((nodes, way, *medians, min(r[1] for r in rows),
                              max(r[1] for r in rows)))
    finally:
        ready.remove(STATE_ROOT, [NAME])
    print(f"\nmedians of {args.rounds} rounds, timescale {args.timescale:g}:")
    print("nodes  way     boot (SSH)  boot to quorate (min-max)  teardown")
    for nodes, way, boot, quorate, teardown, low, high in table:
        print(f"{nodes:>5}  {way:<6}  {boot:>8.2f} s  {quorate:>8.2f} s ({low:.2f}-{high:.2f})"
              f"  {teardown:>8.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
