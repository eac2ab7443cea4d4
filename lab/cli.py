"""`pvechaos-lab`: what a lab needs outside a test run.

    pvechaos-lab embedded cleanup [NAME...]          remove what killed runs left behind
    pvechaos-lab libvirt build   --lab-config FILE   golden images for the configured ISO
    pvechaos-lab libvirt build-gateway --lab-config FILE --cloud-image QCOW2
                                                     the NFS gateway's disk from a Debian
                                                     cloud image (virt-customize)
    pvechaos-lab libvirt status  --lab-config FILE   domains, states, `ready` snapshots
    pvechaos-lab libvirt destroy --lab-config FILE   remove the lab's VMs, overlays, networks
    pvechaos-lab guest-template --out DIR [--storage ID] [--port N]
                                                     the real-PVE test guest's template and
                                                     hookscript, laid out as on a storage
    pvechaos-lab inventory check --inventory FILE [--destructive]
                                                     reach every node and power switch, and
                                                     say whether the interlock would arm
"""

from __future__ import annotations

import argparse
import sys

from harness.errors import PvechaosError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pvechaos-lab", description=__doc__.split("\n")[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    embedded = kinds.add_parser("embedded").add_subparsers(dest="verb", required=True)
    embedded.add_parser("cleanup").add_argument("names", nargs="*")
    libvirt = kinds.add_parser("libvirt").add_subparsers(dest="verb", required=True)
    for verb in ("build", "build-gateway", "status", "destroy"):
        sub = libvirt.add_parser(verb)
        sub.add_argument("--lab-config", required=True, metavar="FILE")
        sub.add_argument("--worker", type=int, default=0,
                         help="the xdist worker's lab (0: a run without -n)")
        if verb == "build-gateway":
            sub.add_argument("--cloud-image", required=True, metavar="QCOW2",
                             help="a Debian 12 generic cloud image on this host")
    template = kinds.add_parser("guest-template")
    template.add_argument("--out", required=True, metavar="DIR")
    template.add_argument("--storage", default="shared", help="storage id (default shared)")
    template.add_argument("--port", type=int, default=7000, help="guest port (default 7000)")
    inventory = kinds.add_parser("inventory").add_subparsers(dest="verb", required=True)
    check = inventory.add_parser("check")
    check.add_argument("--inventory", required=True, metavar="FILE")
    check.add_argument("--destructive", action="store_true")
    args = parser.parse_args(argv)
    if args.kind == "guest-template":  # every value checked before anything is written
        from pathlib import Path

        from lab.guest_template import check_out_dir, check_port, check_storage_id

        try:
            check_storage_id(args.storage)
            check_port(args.port)
            check_out_dir(Path(args.out))
        except PvechaosError as exc:
            print(f"pvechaos-lab guest-template: {exc}", file=sys.stderr)
            return 2
    try:
        return run(args)
    except PvechaosError as exc:
        print(f"pvechaos-lab: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    if args.kind == "embedded":
        from lab.embedded.__main__ import main as embedded_main

        return embedded_main(["cleanup", *args.names])
    if args.kind == "guest-template":
        from pathlib import Path

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
        return admin.build_gateway(config, args.cloud_image)
    return {"build": admin.build, "status": admin.status, "destroy": admin.destroy}[
        args.verb](config)


if __name__ == "__main__":
    sys.exit(main())
