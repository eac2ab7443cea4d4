"""`python -m lab.embedded cleanup [NAME...]`: remove what killed runs left behind, and
the labs' saved formed clusters (lab/embedded/ready.py).

Removing a lab's namespaces, links, cgroups and processes needs root: run as another user
it stops at once (exit 2) and says so, and an operation refused on the way (root without
the capabilities, e.g. in a container) ends in the same kind of message, not a traceback.
"""

from __future__ import annotations

import os
import sys

from harness.errors import PvechaosError
from lab.embedded import ready
from lab.embedded.config import STATE_ROOT, EmbeddedConfig
from lab.embedded.state import lab_names

NEEDS = "removing a lab's namespaces, links, cgroups and processes needs root"


def remove_leftovers(config: EmbeddedConfig) -> bool:
    from lab.embedded import remove_leftovers as remove  # the one teardown rule

    return remove(config)


def _command(names: list[str]) -> str:
    return " ".join(["sudo python3 -m lab.embedded cleanup", *names])


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "cleanup":
        print("usage: python -m lab.embedded cleanup [LAB-NAME...]", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print(f"pvechaos: cleanup run as uid {os.geteuid()}: {NEEDS}\n"
              f"  fix: run it as root: {_command(argv[1:])}", file=sys.stderr)
        return 2
    names = argv[1:] or lab_names(STATE_ROOT)
    try:
        for name in names:
            found = remove_leftovers(EmbeddedConfig(name=name))
            print(f"{name}: {'cleaned' if found else 'nothing to clean'}")
        for name in ready.remove(STATE_ROOT, argv[1:] or None):
            print(f"{name}: its ready state (a saved formed cluster) removed")
    except PvechaosError as exc:
        print(f"pvechaos: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:  # root, but without the capabilities (a container)
        what = f" on {exc.filename}" if exc.filename else ""
        print(f"pvechaos: cleanup was refused{what} ({exc.strerror or exc}): {NEEDS} with "
              f"CAP_NET_ADMIN and CAP_SYS_ADMIN\n  fix: run it as root on the host (not in "
              f"an unprivileged container): {_command(argv[1:])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
