"""`ha-manager migrate|relocate` and `ha-manager crm-command ...`: requests queued for
the CRM in ha/crm_commands (PVE::HA::Config::queue_crm_commands, PVE::API2::HA::Resources
migrate/relocate, PVE::CLI::ha_manager crm-command; pve-model.md §12.3)."""

from __future__ import annotations

import re

from pvemu.cli import options
from pvemu.cli.errors import CommandError
from pvemu.cli.ha_node import HaNode, check_service_state, parse_sid, service_is_ha_managed
from pvemu.cli.ha_params import check_node_name, check_sid_format, param_error, unknown_subcommand
from pvemu.ha import config


def queue_crm_command(node: HaNode, cmd: str) -> None:
    """PVE::HA::Config::queue_crm_commands: append one line under the domain-ha lock."""
    with node.lock():
        data = node.etc.read(config.CRM_COMMANDS) or ""
        node.etc.write(config.CRM_COMMANDS, data + cmd.strip() + "\n")


def motion(node: HaNode, cmd: str, sid_arg: str, target: str) -> None:
    sid, _, _ = parse_sid(node, sid_arg)
    service_is_ha_managed(node, sid)
    check_service_state(node, sid)
    queue_crm_command(node, f"{cmd} {sid} {target}")


def cmd_motion(cmd: str):
    def run(node: HaNode, argv: list[str]) -> int:
        usage = f"ha-manager crm-command {cmd} <sid> <node>"
        args, _ = options.parse(argv, ["sid", "node"], {}, usage)
        check_sid_format(args["sid"], usage)
        check_node_name(args["node"], usage)
        motion(node, cmd, args["sid"], args["node"])
        return 0
    return run


def cmd_stop(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager crm-command stop <sid> <timeout>"
    args, _ = options.parse(argv, ["sid", "timeout"], {}, usage)
    check_sid_format(args["sid"], usage)
    if not re.fullmatch(r"-?\d+", args["timeout"]):
        raise param_error("timeout", f"type check ('integer') failed - got "
                                     f"'{args['timeout']}'", usage)
    if int(args["timeout"]) < 0:
        raise param_error("timeout", "value must have a minimum value of 0", usage)
    sid, _, _ = parse_sid(node, args["sid"])
    service_is_ha_managed(node, sid)
    check_service_state(node, sid)
    queue_crm_command(node, f"stop {sid} {int(args['timeout'])}")
    return 0


def cmd_maintenance(node: HaNode, argv: list[str]) -> int:
    usage = "ha-manager crm-command node-maintenance <enable|disable> <node>"
    if not argv or argv[0] not in ("enable", "disable"):
        raise options.UsageError(unknown_subcommand("crm-command node-maintenance", argv,
                                          ["enable <node>", "disable <node>"]))
    args, _ = options.parse(argv[1:], ["node"], {}, usage)
    check_node_name(args["node"], usage)
    if args["node"] not in node.cluster_nodes():
        raise CommandError(f"no such cluster node '{args['node']}'")
    queue_crm_command(node, f"{argv[0]}-node-maintenance {args['node']}")
    return 0


def cmd_crm(node: HaNode, argv: list[str]) -> int:
    subs = {"migrate": cmd_motion("migrate"), "relocate": cmd_motion("relocate"),
            "stop": cmd_stop, "node-maintenance": cmd_maintenance}
    if not argv or argv[0] not in subs:
        raise options.UsageError(unknown_subcommand("crm-command", argv, [
            "migrate <sid> <node>", "relocate <sid> <node>", "stop <sid> <timeout>",
            "node-maintenance enable <node>", "node-maintenance disable <node>"]))
    return subs[argv[0]](node, argv[1:])
