"""`pvechaos chaos`: plan a schedule, or show one with what PVE's design predicts, without
touching any cluster.

    pvechaos chaos plan --seed N [--nodes 3] [--timescale X] [--duration S] [--mix ...]
                        [--roles ...] [--concurrency N] [--allow-quorum-loss]
                        [--guests N] [-o FILE] [--dry-run]
    pvechaos chaos show FILE          the schedule's faults with the design's predictions

Offline, the windows are computed from corosync's default token for the node count and
PVE's HA timers at the timescale (a running cluster's own token may differ: a pytest run
reads it from the nodes). Roles are resolved on a model of the run: the guests placed
round the nodes as a run places them, the first node assumed to be the CRM master, each
predicted move taken as done.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.chaos import predict as predictions
from harness.chaos import roles
from harness.chaos.generate import generate, parse_mix
from harness.chaos.schedule import Schedule, load
from harness.errors import PvechaosError
from harness.expectations import ClusterConstants
from harness.timescale import Timescale


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    verbs = parser.add_subparsers(dest="verb", required=True)
    plan = verbs.add_parser("plan", help="a schedule from a seed")
    plan.add_argument("--seed", type=int, required=True)
    plan.add_argument("--nodes", type=int, default=3, help="default: %(default)s")
    plan.add_argument("--timescale", type=float, default=1.0, help="default: %(default)s")
    plan.add_argument("--duration", type=float, default=600.0, metavar="S",
                      help="real seconds (default: %(default)s)")
    plan.add_argument("--mix", default=None, metavar="KIND=W,...")
    plan.add_argument("--roles", default=None, metavar="ROLE,...")
    plan.add_argument("--concurrency", type=int, default=None)
    plan.add_argument("--allow-quorum-loss", action="store_true")
    plan.add_argument("--guests", type=int, default=None)
    plan.add_argument("-o", "--out", type=Path, default=None, metavar="FILE",
                      help="write the schedule here (default: print it)")
    plan.add_argument("--dry-run", action="store_true",
                      help="print each fault with what PVE's design predicts")
    show = verbs.add_parser("show", help="a schedule file with the design's predictions")
    show.add_argument("file", type=Path)
    return parser


def main(argv: list[str] | None = None, prog: str = "pvechaos chaos") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        if args.verb == "show":
            schedule = load(args.file)
            print(dry_run(schedule))
            return 0
        names = [f"node{n}" for n in range(1, args.nodes + 1)]
        if args.nodes < 1:
            raise PvechaosError(f"--nodes {args.nodes} must be at least 1")
        c = ClusterConstants.stock(args.nodes, Timescale(args.timescale))
        schedule = generate(args.seed, names, c, duration_s=args.duration,
                            mix=parse_mix(args.mix) if args.mix else None,
                            concurrency=args.concurrency, guests=args.guests,
                            allow_quorum_loss=args.allow_quorum_loss,
                            roles=args.roles.split(",") if args.roles else None)
    except PvechaosError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.out:
        schedule.write(args.out)
        print(f"{prog}: {len(schedule.items)} faults, {schedule.length_s:.0f} s, written to "
              f"{args.out}", file=sys.stderr)
    elif not args.dry_run:
        sys.stdout.write(schedule.dumps())
    if args.dry_run:
        print(dry_run(schedule))
    return 0


def dry_run(schedule: Schedule) -> str:
    """Every fault with the nodes its role names on the modelled run and what PVE's design
    predicts for it; touches nothing."""
    names = tuple(sorted(schedule.nodes))
    c = ClusterConstants.stock(len(names), Timescale(schedule.timescale))
    placements = {f"ct:{100 + n}": names[n % len(names)] for n in range(schedule.guests)}
    state = predictions.State(names, names[0], placements)
    guests = ", ".join(f"{s} on {n}" for s, n in placements.items())
    lines = [f"seed {schedule.seed}, {len(names)} nodes, timescale {schedule.timescale:g}, "
             f"{len(schedule.items)} faults over {schedule.length_s:.0f} s, concurrency "
             f"{schedule.concurrency}; guests {guests}; CRM master assumed {names[0]}"]
    ends: list[tuple[float, tuple[str, ...]]] = []
    for item in schedule.items:
        busy = {n for end, nodes in ends if end > item.at_s for n in nodes}
        nodes = item.nodes or roles.resolve(item.role, item.pick, names, state.master,
                                            state.placements, busy)
        head = f"{item.at_s:8.1f} s  #{item.index:<3} {item.kind:<11} {item.role:<10}"
        if not nodes:
            lines.append(f"{head} -> no node fits now: skipped")
            continue
        ends.append((item.at_s + item.hold_s, tuple(nodes)))
        p = predictions.predict(item.kind, tuple(nodes), state, c)
        lines.append(f"{head} -> {','.join(nodes):<12} hold {item.hold_s:.1f} s, gap "
                     f"{item.gap_s:.1f} s: {p.describe()}")
        state, assumed = predictions.after(state, item.kind, tuple(nodes), p)
        if assumed:
            lines.append(f"{'':14}then {assumed}")
    return "\n".join(lines)
