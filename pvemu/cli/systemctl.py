"""`systemctl` on an embedded node: asks the node's init to start or stop a service."""

from __future__ import annotations

import socket
import sys

from pvemu.nodeinfo import CONTROL_SOCKET

VERBS = ("start", "stop", "restart", "is-active")
POWER = ("poweroff", "reboot")  # the whole node: services stop in order, then off or boot


def call(verb: str, *units: str, timeout_s: float = 30.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(CONTROL_SOCKET)
        conn.sendall(" ".join((verb, *units)).encode())
        return conn.recv(4096).decode().strip()


def main(argv: list[str] | None = None) -> int:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    if args and args[0] in POWER:
        try:
            call(args[0])
        except OSError as exc:
            print(f"System has no service manager answering ({exc})", file=sys.stderr)
            return 1
        return 0
    if len(args) < 2 or args[0] not in VERBS:
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
        print("\n".join(reply.split()))
        return 0 if all(word == "active" for word in reply.split()) else 3
    failed = [w for w in reply.split() if w not in ("ok",) and not w.startswith("skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
