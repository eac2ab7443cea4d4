"""PVE's command-line option syntax: `--opt value`, `-opt value`, `--opt=value`, and
boolean flags given alone or as `--flag 0|1`. Errors are worded as PVE's CLIHandler does.
"""

from __future__ import annotations

import sys


class UsageError(Exception):
    """Wrong arguments: message printed as PVE prints it, exit code 255."""


def parse(argv: list[str], positional: list[str], options: dict[str, str], usage: str
          ) -> tuple[dict[str, str], dict[str, object]]:
    """Return (positional values, options). ``options`` maps name -> 'str'|'int'|'bool'."""
    args: list[str] = []
    opts: dict[str, object] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word.startswith("-") and len(word) > 1 and not word[1:].isdigit():
            name, eq, value = word.lstrip("-").partition("=")
            kind = options.get(name)
            if kind is None:
                raise UsageError(f"Unknown option: {name}\n400 unable to parse option\n{usage}")
            if not eq:
                if kind == "bool" and (i + 1 >= len(argv) or argv[i + 1] not in ("0", "1")):
                    value = "1"
                elif i + 1 < len(argv):
                    i += 1
                    value = argv[i]
                else:
                    raise UsageError(f"400 Parameter verification failed.\n"
                                     f"{name}: missing value\n{usage}")
            if kind == "int" and not value.lstrip("-").isdigit():
                raise UsageError(f"400 Parameter verification failed.\n"
                                 f"{name}: type check ('integer') failed - got '{value}'\n{usage}")
            opts[name] = int(value) if kind == "int" else (value in ("1", "yes", "true")
                                                            if kind == "bool" else value)
        else:
            args.append(word)
        i += 1
    if len(args) < len(positional):
        missing = positional[len(args)]
        raise UsageError(f"400 not enough arguments\n{usage}" if missing else usage)
    if len(args) > len(positional):
        raise UsageError(f"400 too many arguments\n{usage}")
    return dict(zip(positional, args, strict=True)), opts


def dispatch(prog: str, commands: dict, argv: list[str],
             errors: tuple[type[Exception], ...] = ()) -> int:
    """PVE's CLIHandler: run `<prog> <command> ...`; an unknown command prints the usage,
    a usage error or a command's death (``errors``) prints the message; both exit 255
    (our reading of PVE's CLI handler)."""
    if not argv or argv[0] not in commands:
        problem = f"unknown command '{prog} {argv[0]}'" if argv else "no command specified"
        print(f"ERROR: {problem}\nUSAGE: {prog} <COMMAND> [ARGS] [OPTIONS]\n"
              + "\n".join(f"       {prog} {c}" for c in sorted(commands)), file=sys.stderr)
        return 255
    try:
        return commands[argv[0]](argv[1:])
    except (UsageError, *errors) as exc:
        print(exc, file=sys.stderr)
        return 255
