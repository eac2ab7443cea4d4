"""`date` on an embedded node: the real GNU date, shown and set on the node's own clock.

Why emulated: the nodes share the host kernel, and its CLOCK_REALTIME is one for all of
them (Linux time namespaces offset only CLOCK_MONOTONIC and CLOCK_BOOTTIME). A real
`date -s` on a node would step the host's clock, every node's and the harness's at once
(the embedded lab drops CAP_SYS_TIME from its nodes so that it cannot). So a node's wall
clock is the host's plus an offset (pvemu/wallclock.py), and this command is the node's
way to read and step it, as `date` is on a PVE node (pve-faults.md §7):

- `date -s SPEC`, `date --set=SPEC`: SPEC is parsed by the real `/bin/date -d` and the
  node's offset becomes (that time - the host's time). A SPEC relative to now ("now + 60
  seconds", "5 min ago") is relative to the node's clock, as on a real node: the real date
  says (`--debug`) when it took the current time as its starting value, and the node's
  offset is added. The new time is printed as `date -s` prints it.
- every other form runs the real date on the node's time (`-d @<node's now>`), keeping the
  user's options and format (`+%s`, `-u`, `-R`, `-I`, `--rfc-3339=...`); `-d SPEC` is
  resolved on the node's clock as for `-s`.
- `-r FILE` and `-f FILE` go to the real date unchanged: a file's time is what the kernel
  stored, and dates read from a file relative to now use the host's now (a known limit).

Never is `-s` passed to the real date. Guess: a SPEC that takes only the *date* from now
("10:00 tomorrow") is shifted by whole days when the node's local date differs from the
host's; DST changes between the two are ignored.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time

from pvemu import wallclock

REAL_DATE = next((p for p in ("/bin/date", "/usr/bin/date") if os.path.exists(p)), "/bin/date")
_UTC = ("-u", "--utc", "--universal")
_PASS_THROUGH = ("-r", "--reference", "-f", "--file")
_CLUSTER_FLAGS = set("uR")  # short flags without an argument that may lead a cluster


class Usage(Exception):
    pass


def split_args(argv: list[str]) -> tuple[str | None, str | None, list[str], bool]:
    """(set spec, date spec, the options kept for the real date, pass through as is)."""
    set_spec = date_spec = None
    keep: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if arg == "--":
            keep += [arg, *args]
            break
        if name in _PASS_THROUGH or any(arg.startswith(o) and len(arg) > 2
                                        for o in ("-r", "-f")):
            return None, None, list(argv), True
        if name in ("--set", "--date"):
            if not eq:
                if not args:
                    raise Usage(f"option '{name}' requires an argument")
                value = args.pop(0)
            if name == "--set":
                set_spec = value
            else:
                date_spec = value
            continue
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            flags = arg[1:]
            cut = next((i for i, c in enumerate(flags) if c not in _CLUSTER_FLAGS), None)
            if cut is not None and flags[cut] in "sd":
                value = flags[cut + 1:]
                if not value:
                    if not args:
                        raise Usage(f"option requires an argument -- '{flags[cut]}'")
                    value = args.pop(0)
                if flags[cut] == "s":
                    set_spec = value
                else:
                    date_spec = value
                if cut:
                    keep.append("-" + flags[:cut])
                continue
        keep.append(arg)
    return set_spec, date_spec, keep, False


def _parse_options(keep: list[str]) -> list[str]:
    """The kept options that change how a SPEC is read (only the time zone)."""
    return [a for a in keep if a in _UTC or (a.startswith("-") and not a.startswith("--")
                                             and "u" in a[1:] and set(a[1:]) <= _CLUSTER_FLAGS)]


def resolve(spec: str, keep: list[str]) -> float:
    """SPEC as the node reads it: the real date's answer, on the node's clock if the real
    date took the host's current time (or date) as the starting value."""
    argv = [REAL_DATE, *_parse_options(keep), "--debug", "-d", spec, "+%s.%N"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    if result.returncode != 0:
        plain = subprocess.run([REAL_DATE, *_parse_options(keep), "-d", spec, "+%s"],
                               capture_output=True, text=True, check=False, timeout=10)
        words = (plain.stderr or result.stderr).strip()
        raise Usage(words.removeprefix(f"{REAL_DATE}: ").removeprefix("date: "))
    value = float(result.stdout.strip())
    debug = result.stderr
    if "using current time as starting value" in debug:
        return value + wallclock.offset()
    if "using current date as starting value" in debug:
        utc = datetime.UTC if _parse_options(keep) else None
        node = datetime.datetime.fromtimestamp(wallclock.now(), utc).date()
        host = datetime.datetime.fromtimestamp(time.time(), utc).date()
        return value + (node - host).days * 86400
    return value


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        set_spec, date_spec, keep, raw = split_args(args)
        if raw:
            return subprocess.run([REAL_DATE, *keep], check=False).returncode
        if set_spec is not None and date_spec is not None:
            raise Usage("the options to print and set the time may not be used together")
        if set_spec is not None:
            when = resolve(set_spec, keep)
            wallclock.set_time(when)
        elif date_spec is not None:
            when = resolve(date_spec, keep)
        else:
            when = wallclock.now()
    except Usage as exc:
        print(f"date: {exc}", file=sys.stderr)
        return 1
    return subprocess.run([REAL_DATE, "-d", f"@{when:.9f}", *keep], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
