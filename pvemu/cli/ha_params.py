"""Parameter checks of the HA commands, worded as PVE's JSONSchema verification and
CLIHandler word them (`400 Parameter verification failed.`), and the `--delete` handling
that `groupset` and `rules set` share (PVE::SectionConfig's update)."""

from __future__ import annotations

import re

from pvemu.cli import options
from pvemu.cli.errors import CommandError

GROUP_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_.]+$")  # pve-configid (guess: same regex)


def check_sid_format(sid: str, usage: str) -> None:
    # pve-ha-resource-or-vm-id: `<type>:<name>` or a VMID
    if not re.fullmatch(r"(?:(?:vm|ct):)?\d+|[a-z]+:\S+", sid):
        raise options.UsageError(f"400 Parameter verification failed.\nsid: value does not "
                                 f"look like a valid ha resource id\n{usage}")


def param_error(name: str, message: str, usage: str) -> options.UsageError:
    return options.UsageError(f"400 Parameter verification failed.\n{name}: {message}\n{usage}")


def check_int_min(opts: dict, name: str, minimum: int, usage: str) -> None:
    if name in opts and int(opts[name]) < minimum:  # type: ignore[call-overload]
        raise param_error(name, f"value must have a minimum value of {minimum}", usage)


def check_enum(opts: dict, name: str, values: tuple[str, ...], usage: str) -> None:
    if name in opts and opts[name] not in values:
        raise param_error(name, f"value '{opts[name]}' does not have a value in the "
                                f"enumeration '{', '.join(values)}'", usage)


def bool01(value: object) -> int:
    return 1 if value else 0


def check_node_name(name: str, usage: str) -> None:
    if not re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?", name):
        raise param_error("node", "invalid format - value does not look like a valid node "
                                  "name", usage)


def unknown_subcommand(prefix: str, argv: list[str], lines: list[str]) -> str:
    what = f"unknown command 'ha-manager {prefix} {argv[0]}'" if argv else \
        "no command specified"
    return (f"ERROR: {what}\nUSAGE: ha-manager {prefix} <COMMAND> [ARGS] [OPTIONS]\n" +
            "\n".join(f"       ha-manager {prefix} {line}" for line in lines))


def explicit_prio(text: str) -> frozenset:
    return frozenset(i.split(":")[0] for i in re.split(r"[,;\s]+", text) if ":" in i)


def update_section(section, values: dict, opts: dict, delete: list[str], *,
                    required: tuple[str, ...], deletable: tuple[str, ...],
                    zeroed: tuple[str, ...]) -> None:
    """`groupset` / `rules set`: set ``values``, then ``--delete`` keys (a required key
    cannot be, a flag in ``zeroed`` goes back to 0); track which keys are stored."""
    section.update(values)
    stored = set(getattr(section, "stored", frozenset())) | set(values)
    if "nodes" in values:
        section.explicit = explicit_prio(str(opts["nodes"]))
    for key in delete:
        if key in required:
            raise CommandError(f"unable to delete required option '{key}'")
        if key not in deletable:
            raise CommandError(f"no such option '{key}'")
        section.pop(key, None)
        stored.discard(key)
        if key in zeroed:
            section[key] = 0
    section.stored = frozenset(stored)
