"""`systemctl` on an embedded node: asks the node's init (lab/embedded/pid1.py) to start,
stop, signal or describe a unit, or to power the node off or reboot it.

``systemctl kill [--kill-whom=main] --signal=SIG UNIT`` (or ``-s SIG``) signals the unit's
main process, as systemd 252/257 do (``--kill-who=`` is the older spelling, accepted);
only ``main`` is emulated (a PVE unit's fault is a signal to its daemon). ``is-active``
prints active, activating, failed or inactive (rc 0 only for active; ``-q`` prints
nothing); ``status`` shows the Active line and the main PID (rc 3 unless active).
"""

from __future__ import annotations

import signal
import socket
import sys

from pvemu.nodeinfo import CONTROL_SOCKET

VERBS = ("start", "stop", "restart", "is-active", "status", "kill")
POWER = ("poweroff", "reboot")  # the whole node: services stop in order, then off or boot


class UsageError(Exception):
    pass


def call(verb: str, *units: str, timeout_s: float = 30.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(CONTROL_SOCKET)
        conn.sendall(" ".join((verb, *units)).encode())
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode().strip()


def signal_number(name: str) -> int:
    """SIGKILL, KILL or 9 -> 9 (systemctl's --signal accepts the name with or without SIG)."""
    if name.isdigit():
        return int(name)
    try:
        return int(signal.Signals["SIG" + name.upper().removeprefix("SIG")])
    except KeyError:
        raise UsageError(f"Failed to parse signal string {name}.") from None


def parse(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional words and options (--signal, -s, --kill-whom/--kill-who, -q)."""
    words: list[str] = []
    opts: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg in ("-s", "--signal", "--kill-whom", "--kill-who"):
            value = next(args, None)
            if value is None:
                raise UsageError(f"option {arg} requires an argument")
            opts["signal" if arg == "-s" else arg.lstrip("-")] = value
        elif arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            opts[key] = value
        elif arg in ("-q", "--quiet"):
            opts["quiet"] = "1"
        elif arg.startswith("-"):
            continue  # --no-pager, --no-block, ...: nothing to emulate
        else:
            words.append(arg)
    if "kill-who" in opts:
        opts.setdefault("kill-whom", opts.pop("kill-who"))
    return words, opts


def main(argv: list[str] | None = None) -> int:
    try:
        args, opts = parse(list(sys.argv[1:] if argv is None else argv))
        if args and args[0] == "kill":
            whom = opts.get("kill-whom", "main")
            if whom != "main":
                raise UsageError(f"--kill-whom={whom} is not emulated (only main)")
            args = ["kill", str(signal_number(opts.get("signal", "SIGTERM"))), *args[1:]]
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args and args[0] in POWER:
        try:
            call(args[0])
        except OSError as exc:
            print(f"System has no service manager answering ({exc})", file=sys.stderr)
            return 1
        return 0
    if len(args) < 2 or args[0] not in VERBS or (args[0] == "kill" and len(args) < 3):
        print(f"usage: systemctl {{{'|'.join(VERBS)}}} UNIT...", file=sys.stderr)
        return 1
    try:
        reply = call(args[0], *args[1:])
    except OSError as exc:
        print(f"System has no service manager answering ({exc})", file=sys.stderr)
        return 1
    if reply.startswith("error:"):
        print(reply.removeprefix("error: "), file=sys.stderr)
        return 5
    if args[0] == "is-active":
        if "quiet" not in opts:
            print("\n".join(reply.split()))
        return 0 if all(word == "active" for word in reply.split()) else 3
    if args[0] == "status":
        text = reply.removesuffix(".").rstrip()
        print(text)
        return 0 if all("Active: active" in part for part in text.split("\n* ")) else 3
    failed = [w for w in reply.split() if w not in ("ok",) and not w.startswith("skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
