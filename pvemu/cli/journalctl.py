"""`journalctl` on an embedded node: the node's daemon logs, read from its /var/log files.

PVE nodes log to the systemd journal; embedded nodes have no journald, their services
write files (init.py). This answers the subset the harness and a user need:

    journalctl [-u UNIT]... [--since T] [--until T] [-o short-iso] [--no-pager] [-q]

T is `@<epoch seconds>`, `YYYY-MM-DD HH:MM:SS` (local time) or `now`. Output is
`<ISO time> <node> <unit>: <line as the daemon wrote it>`, merged across units in time
order; a line without a time of its own (a traceback, a continuation) takes the time of
the line before it. Without -u every unit is read. `-- No entries --` when nothing
matches, as journalctl says it.

Times are the node's own wall clock (pvemu/wallclock.py): `now`, and the stamps the
emulated HA daemons write (pvemu/ha/env_node.py). Lines written by real binaries
(corosync, sshd) and by the node's init carry the host's clock, which no node can step.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pvemu import wallclock

LOG = Path("/var/log")
UNITS = {  # unit -> file under /var/log
    "corosync": "corosync/corosync.log",
    "pve-cluster": "pve-cluster.log",
    "pve-ha-crm": "pve-ha-crm.log",
    "pve-ha-lrm": "pve-ha-lrm.log",
    "watchdog-mux": "watchdog-mux.log",
    "ssh": "sshd.log",
}
GUEST_UNIT = re.compile(r"^pve-container@(\d+)(\.service)?$|^qemu-server@(\d+)$")

# the time stamps the node's daemons write, tried in order
_STAMPS = [
    (re.compile(r"^--- (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"), "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"), "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)"), "%b %d %H:%M:%S"),
]


@dataclass(frozen=True)
class Entry:
    t: float
    unit: str
    line: str


def stamp_of(line: str, year: int) -> float | None:
    for pattern, fmt in _STAMPS:
        m = pattern.match(line)
        if m:
            text = m.group(1)
            if "%Y" not in fmt:
                text, fmt = f"{year} {text}", f"%Y {fmt}"
            try:
                return time.mktime(time.strptime(text, fmt))
            except ValueError:
                return None
    return None


def read_unit(unit: str, path: Path, year: int) -> list[Entry]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    entries, last = [], 0.0
    for line in text.splitlines():
        t = stamp_of(line, year)
        last = t if t is not None else last
        entries.append(Entry(last, unit, line))
    return entries


def unit_path(unit: str) -> Path | None:
    name = unit.removesuffix(".service")
    if name in UNITS:
        return LOG / UNITS[name]
    m = GUEST_UNIT.match(unit)
    if m:
        return LOG / "pvechaos-guests" / f"{m.group(1) or m.group(3)}.log"
    return None


def parse_time(text: str) -> float:
    if text == "now":
        return wallclock.now()  # the node's clock, as journald's "now" is the node's
    if text.startswith("@"):
        return float(text[1:])
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(text, fmt))
        except ValueError:
            continue
    raise ValueError(f'Failed to parse timestamp: {text}')


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    units: list[str] = []
    since, until = float("-inf"), float("inf")
    while args:
        arg = args.pop(0)
        try:
            if arg in ("-u", "--unit"):
                units.append(args.pop(0))
            elif arg.startswith("--unit="):
                units.append(arg.split("=", 1)[1])
            elif arg in ("-S", "--since"):
                since = parse_time(args.pop(0))
            elif arg.startswith("--since="):
                since = parse_time(arg.split("=", 1)[1])
            elif arg in ("-U", "--until"):
                until = parse_time(args.pop(0))
            elif arg.startswith("--until="):
                until = parse_time(arg.split("=", 1)[1])
            elif arg in ("-o", "--output"):
                args.pop(0)  # only short-iso is written
            elif arg in ("--no-pager", "-q", "--quiet", "--no-hostname") or \
                    arg.startswith("--output="):
                pass
            else:
                print(f"journalctl: unrecognized option '{arg}'", file=sys.stderr)
                return 1
        except IndexError:
            print(f"journalctl: option '{arg}' requires an argument", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    year = time.localtime(wallclock.now()).tm_year
    entries: list[Entry] = []
    for unit in units or list(UNITS):
        path = unit_path(unit)
        if path is not None:
            entries += read_unit(unit.removesuffix(".service"), path, year)
    host = socket.gethostname()
    shown = sorted((e for e in entries if since <= e.t <= until), key=lambda e: e.t)
    if not shown:
        print("-- No entries --")
    for e in shown:
        iso = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(e.t))
        print(f"{iso} {host} {e.unit}: {e.line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
