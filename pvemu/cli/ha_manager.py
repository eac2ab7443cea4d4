"""`ha-manager` on an embedded node (pve-model.md §12.1-§12.3; PVE::CLI::ha_manager): the
command table of each PVE generation; the commands live by job in ha_resources (status,
config, add, set, remove), ha_crm (migrate, relocate, crm-command), ha_groups (PVE 8)
and ha_rules (PVE 9).

Works on the node's /etc/pve through EtcPve (root from PVECHAOS_PVE_ROOT, default the
mount point). Writes of resources.cfg, groups.cfg, rules.cfg and crm_commands take PVE's
`domain-ha` cfs lock and replace files atomically. Errors are worded as PVE's API and
CLIHandler word them; every error exits with 255.

Flavour 8 (PVE 8, pve-ha-manager 4.0.7): groups, no rules. Flavour 9 (HEAD): rules, the
group commands are gone, `failback` and `remove --purge` exist.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from pvemu.cli import ha_crm, ha_groups, ha_resources, ha_rules, options
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode
from pvemu.etc_pve import CfsError

Command = Callable[[HaNode, list[str]], int]

COMMON: dict[str, Command] = {
    "status": ha_resources.cmd_status, "config": ha_resources.cmd_config,
    "add": ha_resources.cmd_add, "remove": ha_resources.cmd_remove,
    "set": ha_resources.cmd_set, "migrate": ha_crm.cmd_motion("migrate"),
    "relocate": ha_crm.cmd_motion("relocate"), "crm-command": ha_crm.cmd_crm}
# PVE 9 keeps only `groupconfig` (groups until migrated, then an error:
# pve-operations.md §3.4); guess: the other group commands are unknown commands there.
PVE8: dict[str, Command] = {
    "groupadd": ha_groups.cmd_groupadd, "groupset": ha_groups.cmd_groupset,
    "groupremove": ha_groups.cmd_groupremove, "groupconfig": ha_groups.cmd_groupconfig}
PVE9: dict[str, Command] = {"rules": ha_rules.cmd_rules,
                            "groupconfig": ha_groups.cmd_groupconfig}


def commands(node: HaNode) -> dict[str, Command]:
    return {**COMMON, **(PVE9 if node.flavour >= 9 else PVE8)}


def main(argv: list[str] | None = None) -> int:
    node = HaNode()
    cmds = {name: (lambda args, fn=fn: fn(node, args)) for name, fn in commands(node).items()}
    return options.dispatch("ha-manager", cmds, sys.argv[1:] if argv is None else argv,
                            (CommandError, CfsError))


if __name__ == "__main__":
    sys.exit(main())
