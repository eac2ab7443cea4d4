"""`pveversion`: the PVE version the lab gave this node (configurable per node)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from pvemu import nodeinfo


def manager_line(info: nodeinfo.NodeInfo) -> str:
    build = hashlib.sha1(f"pve-manager {info.pve_version}".encode()).hexdigest()[:16]
    return f"pve-manager/{info.pve_version}/{build} (running kernel: {info.kernel})"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    info = nodeinfo.load()
    if not args:
        print(manager_line(info))
        return 0
    if args in (["-v"], ["--verbose"]):
        corosync = subprocess.run(["corosync", "-v"], capture_output=True, text=True)
        version = corosync.stdout.split("'")[1] if "'" in corosync.stdout else "unknown"
        major = info.pve_version.split(".")[0]
        print(f"proxmox-ve: {major}.{info.pve_version.split('.')[1]}.0 "
              f"(running kernel: {info.kernel})")
        print(f"pve-manager: {info.pve_version} ({manager_line(info).split('/')[2].split()[0]})")
        print(f"corosync: {version}-pve1")
        return 0
    print(f"Unknown option: {args[0].lstrip('-')}\n400 unable to parse option\n"
          "pveversion  [OPTIONS]", file=sys.stderr)
    return 255


if __name__ == "__main__":
    sys.exit(main())
