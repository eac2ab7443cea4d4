"""pve-ha-crm and pve-ha-lrm on an embedded node: a state machine run against NodeEnv.

`python -m pvemu.ha.daemon crm|lrm`. The daemon's generator says how long to
sleep between steps; SIGTERM (systemctl stop, a node shutdown or reboot) asks the daemon
to shut down the way PVE's does, and the loop runs on until the state machine returns.
"""

from __future__ import annotations

import signal
import sys
import threading

from pvemu import nodeinfo
from pvemu.ha.env_node import NodeEnv


def build(kind: str):
    info = nodeinfo.load()
    if kind == "crm":
        from pvemu.ha.crm import Crm

        return Crm(NodeEnv(info, "crm"))
    from pvemu.guest_lifecycle import NodeGuests
    from pvemu.ha.lrm import Lrm

    guests = NodeGuests(info.name, info=info)
    return Lrm(NodeEnv(info, "lrm", guests), guests)


def run(kind: str) -> int:
    daemon = build(kind)
    wake = threading.Event()
    asked: list[bool] = []

    def on_term(*_: object) -> None:
        asked.append(True)
        wake.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    shutdown_requested = False
    for delay in daemon.run():
        if not asked:
            wake.wait(max(0.0, delay))
            wake.clear()
        if asked and not shutdown_requested:
            shutdown_requested = True
            daemon.env.log("info", "received signal TERM")
            request_shutdown(daemon)
    daemon.env.log("info", "server stopped")
    return 0


def request_shutdown(daemon) -> None:
    if hasattr(daemon, "guests"):  # the LRM: a reboot, a poweroff, or a plain restart
        _, reboot = daemon.env.is_node_shutdown()
        daemon.request_shutdown(reboot)
    else:
        daemon.request_shutdown()


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("crm", "lrm"):
        print("usage: python -m pvemu.ha.daemon crm|lrm", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(sys.argv[1]))


if __name__ == "__main__":
    main()
