"""`pvechaos`: labs and reports outside a test run (`pvechaos-lab` is the same command).

    pvechaos lab up [--name N] [--subnet CIDR] [--nodes N] [--pve-flavour 8|9]
                    [--timescale X] [--guest]      boot an embedded lab, form its cluster
                    [--emulation-bug NAME]         (and the HA test guest), leave it running
    pvechaos lab status [--name N]                 nodes, quorum, `ha-manager status`
    pvechaos lab ssh [--name N] NODE [CMD...]      a shell on a node, or CMD's exit status
    pvechaos lab down [--name N]                   remove the lab, leaving nothing behind
    pvechaos lab cleanup [NAME...]                 remove what labs and killed runs left
    pvechaos lab cleanup --all [--dry-run]         every lab whose owner is gone (listed;
                                                   a lab whose owner runs is kept)
    pvechaos preflight [--name N | --inventory FILE]
                                                   read-only checks of a running lab or an
                                                   existing cluster (harness/preflight.py)
    pvechaos compare BEFORE AFTER [...]            two metrics.json files (harness/compare.py)
    pvechaos baseline [--from METRICS] -o FILE     store runs as a baseline (harness/verify.py)
    pvechaos verify --against FILE [METRICS...]    a verdict per figure and behaviour
    pvechaos chaos plan --seed N [...] [--dry-run] | show FILE
                                                   a chaos schedule and what PVE's design
                                                   predicts for it (harness/chaos/cli.py)
    pvechaos report [RESULTS] [-o DIR]             the offline HTML report from Allure results
    pvechaos libvirt build|build-gateway|status|destroy --lab-config FILE
    pvechaos guest-template --out DIR [--storage ID] [--port N]
    pvechaos inventory check --inventory FILE [--destructive]
    pvechaos embedded cleanup [NAME... | --all [--dry-run]]
                                                   (the same as `lab cleanup`)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from harness.errors import PvechaosError

DEFAULT_NAME = "explore"  # not the test runs' `main`, so the two never meet
DEFAULT_SUBNET = "198.19.250.0/24"  # far from the test runs' 198.18.N.0/24
REPORT_RESULTS, REPORT_OUT = "reports/allure-results", "reports/html"


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    kinds = parser.add_subparsers(dest="kind", required=True)
    _lab_verbs(kinds.add_parser("lab", help="an embedded lab to explore by hand"))
    embedded = kinds.add_parser("embedded").add_subparsers(dest="verb", required=True)
    _cleanup_verb(embedded)
    check = kinds.add_parser("preflight", help="read-only checks of a running lab (`lab up`, "
                             "--keep-lab) or an existing cluster: every PVE requirement")
    check.add_argument("--name", "--lab-name", dest="name", default=DEFAULT_NAME,
                       help="the running embedded lab's name (default: %(default)s)")
    check.add_argument("--inventory", metavar="FILE",
                       help="an existing cluster's inventory YAML instead (never powered: "
                            "no --destructive needed)")
    kinds.add_parser("compare", help="compare two metrics.json files (see `compare -h`)")
    kinds.add_parser("baseline", help="store runs as a baseline (see `baseline -h`)")
    kinds.add_parser("verify", help="judge runs against a baseline (see `verify -h`)")
    report = kinds.add_parser("report", help="the offline HTML report from Allure results")
    report.add_argument("results", nargs="?", default=REPORT_RESULTS,
                        help="pytest's --alluredir (default: %(default)s)")
    report.add_argument("-o", "--out", default=REPORT_OUT, metavar="DIR",
                        help="where index.html goes; replaced (default: %(default)s)")
    libvirt = kinds.add_parser("libvirt").add_subparsers(dest="verb", required=True)
    for verb in ("build", "build-gateway", "status", "destroy"):
        sub = libvirt.add_parser(verb)
        sub.add_argument("--lab-config", required=True, metavar="FILE")
        sub.add_argument("--worker", type=int, default=0,
                         help="the xdist worker's lab (0: a run without -n)")
        if verb == "build-gateway":
            sub.add_argument("--mirror", default="http://deb.debian.org/debian",
                             metavar="URL", help="the Debian mirror debootstrap installs "
                             "the gateway from (default: %(default)s)")
    template = kinds.add_parser("guest-template")
    template.add_argument("--out", required=True, metavar="DIR")
    template.add_argument("--storage", default="shared", help="storage id (default shared)")
    template.add_argument("--port", type=int, default=7000, help="guest port (default 7000)")
    inventory = kinds.add_parser("inventory").add_subparsers(dest="verb", required=True)
    check = inventory.add_parser("check")
    check.add_argument("--inventory", required=True, metavar="FILE")
    check.add_argument("--destructive", action="store_true")
    return parser


def _lab_verbs(lab: argparse.ArgumentParser) -> None:
    verbs = lab.add_subparsers(dest="verb", required=True)

    def named(verb: str, help_text: str) -> argparse.ArgumentParser:
        sub = verbs.add_parser(verb, help=help_text)
        # --lab-name is pytest's spelling: lab/options.py's messages name it
        sub.add_argument("--name", "--lab-name", dest="name", default=DEFAULT_NAME,
                         help="the lab's name, 1-8 lowercase letters and digits, starting "
                              "with a letter (default: %(default)s)")
        return sub

    up = named("up", "boot a lab, form its cluster, leave it running")
    up.add_argument("--subnet", "--lab-subnet", dest="subnet", default=DEFAULT_SUBNET,
                    metavar="CIDR", help="inside 198.18.0.0/15, a /27 or larger "
                                         "(default: %(default)s)")
    up.add_argument("--nodes", type=int, default=3, help="1 to 9 (default: %(default)s)")
    up.add_argument("--qdevice", action="store_true",
                    help="add a qnetd host running the real corosync-qnetd, for `pvecm "
                         "qdevice setup` (two nodes and a QDevice: --nodes 2 --qdevice)")
    up.add_argument("--pve-flavour", choices=("8", "9"), default="8",
                    help="PVE generation of the nodes (default: %(default)s)")
    up.add_argument("--timescale", default="1",
                    help="HA timers' multiplier, 0.01 to 10 (default: 1, PVE's own)")
    up.add_argument("--cluster-name", default="pvechaos",
                    help="name given to `pvecm create` (default: %(default)s)")
    up.add_argument("--guest", action="store_true",
                    help="also create the HA test guest (CT 100) on the first node")
    up.add_argument("--emulation-bug", dest="emulation_bugs", action="append", default=[],
                    metavar="NAME",
                    help="a self-test switch that breaks PVE's safety on purpose, never "
                         "for anything else (double-start: a lost node's guests are "
                         "recovered with no fence delay and no agent lock, so a cut node's "
                         "guest runs twice); repeatable")
    named("status", "the lab's nodes, quorum and HA status")
    ssh = named("ssh", "ssh to a node: a shell, or CMD with its exit status")
    ssh.add_argument("node")
    ssh.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    named("down", "remove the lab and everything it made")
    _cleanup_verb(verbs)


def _cleanup_verb(verbs) -> None:
    """`lab cleanup` and its older spelling `embedded cleanup`: one parser, one meaning."""
    cleanup = verbs.add_parser("cleanup", help="remove labs and what killed runs left behind")
    cleanup.add_argument("names", nargs="*", metavar="NAME")
    cleanup.add_argument("--all", action="store_true",
                         help="every lab found (state directories and kernel objects named "
                              "like a lab's): remove each whose owner is gone, keep each "
                              "whose owner runs")
    cleanup.add_argument("--dry-run", action="store_true",
                         help="with --all: list what would be removed and kept, remove "
                              "nothing")


def main(argv: list[str] | None = None, prog: str = "pvechaos") -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["compare"]:  # its own parser, its own exit codes (1 regression)
        from harness.compare import main as compare_main

        return compare_main(args_in[1:], prog=f"{prog} compare")
    if args_in[:1] == ["chaos"]:  # offline planning: its own parser
        from harness.chaos.cli import main as chaos_main

        return chaos_main(args_in[1:], prog=f"{prog} chaos")
    if args_in[:1] in (["baseline"], ["verify"]):  # the same exit codes as compare
        from harness import verify

        run_verb = verify.baseline_main if args_in[0] == "baseline" else verify.main
        return run_verb(args_in[1:], prog=f"{prog} {args_in[0]}")
    args = build_parser(prog).parse_args(args_in)
    args.prog, args.argv = prog, args_in
    try:
        _validate(args)
    except (pytest.UsageError, PvechaosError) as exc:  # before anything is made
        print(f"{prog} {args.kind}: {exc}", file=sys.stderr)
        return 2
    try:
        return run(args)
    except PvechaosError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1


def lab_main() -> int:
    """`pvechaos-lab`: the same verbs under its old name."""
    return main(prog="pvechaos-lab")


def _validate(args: argparse.Namespace) -> None:
    """Every value checked before anything starts; each rule in its one place."""
    from harness import options
    from harness.errors import ConfigError
    from lab import options as lab_options

    if args.kind == "guest-template":
        from lab.guest_template import check_out_dir, check_port, check_storage_id

        check_storage_id(args.storage)
        check_port(args.port)
        check_out_dir(Path(args.out))
    if args.kind == "preflight" and args.inventory is None:
        lab_options.lab_name(args.name)
        args.config = _named(args.name)
    if args.kind == "lab" and args.verb != "cleanup":
        lab_options.lab_name(args.name)
        args.config = _config(args) if args.verb == "up" else _named(args.name)
    if args.kind == "lab" and args.verb == "up":
        options.cluster_name(args.cluster_name)
    names = getattr(args, "names", None) or []
    if args.kind in ("lab", "embedded") and args.verb == "cleanup":
        if args.all and names:
            raise ConfigError(f"give lab names or --all, not both (got --all and "
                                f"{' '.join(names)})", hint="drop the names to take every "
                                "lab whose owner is gone, or drop --all")
        if args.dry_run and not args.all:
            raise ConfigError("--dry-run goes with --all only",
                                hint="run `pvechaos lab cleanup --all --dry-run`")
    for name in names:
        lab_options.lab_name(name)


def _named(name: str):
    from lab.embedded import config

    return config.EmbeddedConfig(name=name, state_root=config.STATE_ROOT)


def _config(args: argparse.Namespace):
    from harness import options
    from lab import options as lab_options
    from lab.embedded import config

    subnet, _ = lab_options.lab_network(args.subnet, config.DEFAULT_RANGE)
    return config.EmbeddedConfig(
        name=args.name, subnet=str(subnet), node_count=args.nodes,
        state_root=config.STATE_ROOT,
        pve_version=lab_options.pve_version(None, args.pve_flavour),
        timescale=options.timescale(args.timescale), qdevice=args.qdevice,
        emulation_bugs=tuple(args.emulation_bugs))


def run(args: argparse.Namespace) -> int:
    if args.kind in ("lab", "embedded"):  # `embedded` has the one verb, cleanup
        from lab import lab_cli

        return lab_cli.run(args)
    if args.kind == "preflight":
        from lab import lab_cli

        return lab_cli.preflight(args)
    if args.kind == "report":
        from harness.report.generate import HISTORY, generate

        page = generate(Path(args.results), Path(args.out))
        print(f"pvechaos: HTML report in {page} (history: {page.parent.parent / HISTORY})")
        return 0
    if args.kind == "guest-template":
        from lab.guest_template import write_storage_files

        for path in write_storage_files(Path(args.out), storage_id=args.storage,
                                        port=args.port):
            print(path)
        return 0
    if args.kind == "inventory":
        from harness.timescale import REAL_TIME
        from lab.inventory.lab import InventoryLab

        lab = InventoryLab.from_options(inventory=args.inventory, destructive=args.destructive,
                                        timescale=REAL_TIME)  # a real cluster's own timers
        lab.start()
        for key, value in lab.describe().items():
            print(f"{key}: {value}")
        return 0
    from lab.libvirt import admin
    from lab.libvirt.config import load

    config = load(args.lab_config).for_worker(args.worker)
    if args.verb == "build-gateway":
        return admin.build_gateway(config, args.mirror)
    return {"build": admin.build, "status": admin.status, "destroy": admin.destroy}[
        args.verb](config)


if __name__ == "__main__":
    sys.exit(main())
