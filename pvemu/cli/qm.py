"""`qm` on an embedded node: the VM side of pct's GuestCli (see cli/pct.py, guest_lifecycle.py).

`qm start <id> --migratedfrom <node>` is what a migration source runs on the target: it
starts the VM without redirecting an HA-managed VM to ha-manager (in PVE the migration
path and the HA LRM bypass that redirect the same way).
"""

from __future__ import annotations

import sys

from pvemu.cli.pct import GuestCli


def main(argv: list[str] | None = None) -> int:
    return GuestCli("vm").main(argv)


if __name__ == "__main__":
    sys.exit(main())
