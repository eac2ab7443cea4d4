"""`python -m lab.embedded cleanup [NAME...]`: remove what killed runs left behind."""

from __future__ import annotations

import sys

from harness.errors import PvechaosError
from lab.embedded.config import STATE_ROOT, EmbeddedConfig
from lab.embedded.state import sweep


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "cleanup":
        print("usage: python -m lab.embedded cleanup [LAB-NAME...]", file=sys.stderr)
        return 2
    names = argv[1:] or sorted(p.name for p in STATE_ROOT.glob("*") if p.is_dir())
    try:
        for name in names:
            lab = __import__("lab.embedded", fromlist=["EmbeddedLab"]).EmbeddedLab(
                EmbeddedConfig(name=name))
            found = sweep(lab.config.lab_dir)
            lab._remove_stray_kernel_objects()
            print(f"{name}: {'cleaned' if found else 'nothing to clean'}")
    except PvechaosError as exc:
        print(f"pvechaos: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
