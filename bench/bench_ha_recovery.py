"""Benchmark: how long the embedded lab's HA stack takes to recover a guest after a power
cut, against PVE's design (pve-model.md §10).

    sudo python3 bench/bench_ha_recovery.py [--timescale 1] [--rounds 2] [--master]

Each round boots a fresh lab, puts ct:100 under HA on node1 (ct:101 on node2 gives the
nodes different loads), waits until it serves, then cuts the power of the node running
ct:100: a non-master node by default, the CRM master with --master (ct:100 is moved there
first). It prints, in PVE seconds (real seconds / timescale):

- issued: from the cut until `ha-manager status` shows ct:100 `started` on another node
  (the restart command issued; PVE's design: 121-150 s for a non-master, about 170-210 s
  when the master died);
- serving: until the guest answers from its new node.

`ha-manager status` is polled every 0.5 s, so each figure is late by up to 0.5 s plus one
command round trip.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import WaitTimeout  # noqa: E402
from harness.timescale import Timescale, TimescaleError  # noqa: E402
from harness.waits import NotYet, wait_until  # noqa: E402
from lab.embedded.ha_testbed import boot_ha_lab  # noqa: E402


def one_round(timescale: Timescale, master_cut: bool, index: int) -> tuple[float, float, str]:
    h = boot_ha_lab(f"bha{index}", f"198.18.{91 + index}", timescale=timescale)
    try:
        h.create_ct("node1", 100)
        h.create_ct("node2", 101)
        h.ha("add", "ct:100")
        h.ha("add", "ct:101")
        h.wait_answer(100, "node1", timeout_s=h.s(60) + 10)
        h.wait_service("ct:100", "started", "node1", timeout_s=h.s(60) + 10)
        master = h.master()
        victim = "node1"
        if master_cut and master != "node1":
            h.ha("migrate", "ct:100", master)
            h.wait_answer(100, master, timeout_s=h.s(60) + 10)
            victim = master
        elif not master_cut and master == "node1":
            h.ha("migrate", "ct:100", "node3")
            h.wait_answer(100, "node3", timeout_s=h.s(60) + 10)
            victim = "node3"
        h.wait_service("ct:100", "started", victim, timeout_s=h.s(60) + 10)
        time.sleep(h.s(30))  # a settled cluster: LRMs active, rounds in their rhythm
        h.lab.power_cut(victim)
        cut = time.monotonic()
        watcher = next(n for n in ("node1", "node2", "node3") if n != victim)
        issued: list[float] = []

        def serving_again() -> bool | NotYet:
            node, state = h.services(on=watcher).get("ct:100", ("?", "?"))
            if not issued and node != victim and state in ("started", "starting"):
                issued.append(time.monotonic())
            return bool(issued and h.answer(100)) or NotYet(f"ct:100 {state} on {node}")

        try:
            wait_until("ct:100 recovered and serving", serving_again,
                       timeout_s=h.s(400) + 30, interval_s=0.5)
        except WaitTimeout:
            if not issued:
                raise SystemExit(f"round {index}: ct:100 was not recovered within "
                                 f"{h.s(400) + 30:.0f} s") from None
        serving = time.monotonic()
        return (issued[0] - cut) / timescale.factor, (serving - cut) / timescale.factor, victim
    finally:
        h.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timescale", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--master", action="store_true", help="cut the CRM master")
    args = parser.parse_args()
    try:
        timescale = Timescale(args.timescale)
    except TimescaleError as exc:
        parser.error(str(exc))
    kind = "the CRM master" if args.master else "a non-master node"
    print(f"power cut of {kind} running ct:100, timescale {timescale}", flush=True)
    issued, serving = [], []
    for index in range(args.rounds):
        a, b, victim = one_round(timescale, args.master, index)
        issued.append(a)
        serving.append(b)
        print(f"round {index + 1}: cut {victim}: restart issued after {a:.1f} s, "
              f"serving after {b:.1f} s (PVE seconds)", flush=True)
    print(f"median restart issued: {statistics.median(issued):.1f} s "
          f"(min {min(issued):.1f}, max {max(issued):.1f}, {args.rounds} rounds)")
    print(f"median serving again: {statistics.median(serving):.1f} s "
          f"(min {min(serving):.1f}, max {max(serving):.1f})")


if __name__ == "__main__":
    main()
