"""`pvesm` on an embedded node: add (dir, nfs), remove, status (see storage.py).

`pvesm add nfs` records --server and --export as given; the embedded lab serves every
nfs storage from its one export directory (storage.py explains the "mount").
"""

from __future__ import annotations

import sys

from pvemu import nodeinfo
from pvemu.cli import options
from pvemu.etc_pve import CfsError
from pvemu.storage import StorageError, Storages

ADD_OPTIONS = {"path": "str", "server": "str", "export": "str", "content": "str",
               "nodes": "str", "options": "str", "disable": "bool", "shared": "bool"}


def storages() -> Storages:
    return Storages(info=nodeinfo.load())


def cmd_add(argv: list[str], store: Storages | None = None) -> int:
    usage = "USAGE: pvesm add <type> <storage> [OPTIONS]"
    args, opts = options.parse(argv, ["type", "storage"], ADD_OPTIONS, usage)
    store = store or storages()
    try:
        store.etc.check_quorum()
    except CfsError as exc:
        raise StorageError(str(exc)) from None
    store.add(args["type"], args["storage"], {k: str(v) for k, v in opts.items()})
    return 0


def cmd_remove(argv: list[str], store: Storages | None = None) -> int:
    args, _ = options.parse(argv, ["storage"], {}, "USAGE: pvesm remove <storage>")
    (store or storages()).remove(args["storage"])
    return 0


def format_status(rows: list[dict]) -> str:
    """pve-storage PVE/CLI/pvesm.pm $print_status."""
    width = max([len(r["storage"]) for r in rows] + [0]) + 1
    out = [f"{'Name':<{width}} {'Type':>10} {'Status':>10} {'Total':>15} {'Used':>15} "
           f"{'Available':>15} {'%':>8}"]
    for r in sorted(rows, key=lambda r: r["storage"]):
        active = "active" if r["active"] else "inactive"
        if not r["enabled"]:
            active, per = "disabled", f"{'N/A':>8}"
        else:
            value = r["used"] * 100 / r["total"] if r["total"] > 0 else 0
            per = f"{value:7.2f}%"
        out.append(f"{r['storage']:<{width}} {r['type']:>10} {active:>10} "
                   f"{r['total'] // 1024:>15d} {r['used'] // 1024:>15d} "
                   f"{r['avail'] // 1024:>15d} {per}")
    return "\n".join(out) + "\n"


def cmd_status(argv: list[str], store: Storages | None = None) -> int:
    _, opts = options.parse(argv, [], {"storage": "str", "content": "str",
                                       "enabled": "bool", "target": "str"},
                            "USAGE: pvesm status [OPTIONS]")
    rows = (store or storages()).status()
    if "storage" in opts:
        rows = [r for r in rows if r["storage"] == opts["storage"]]
        if not rows:
            raise StorageError(f"storage '{opts['storage']}' does not exist")
    sys.stdout.write(format_status(rows))
    return 0


COMMANDS = {"add": cmd_add, "remove": cmd_remove, "status": cmd_status}


def main(argv: list[str] | None = None) -> int:
    return options.dispatch("pvesm", COMMANDS, sys.argv[1:] if argv is None else argv,
                            (StorageError,))

if __name__ == "__main__":
    sys.exit(main())
