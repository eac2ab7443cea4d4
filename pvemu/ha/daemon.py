"""pve-ha-crm and pve-ha-lrm on an embedded node: a state machine run against NodeEnv.

`python -m pvemu.ha.daemon crm|lrm`. The daemon's generator says how long to
sleep between steps; SIGTERM (systemctl stop, a node shutdown or reboot) asks the daemon
to shut down the way PVE's does, and the loop runs on until the state machine returns.

A plain delay is PVE's `sleep($n)` (relative, untouched by clock steps); a ``SleepUntil``
is PVE's `sleep_until($end)` (PVE2.pm: `sleep(1)` until `time() >= $end`), so it is
waited out on the node's own wall clock (pvemu/wallclock.py), re-read at least once per
PVE second: a forward step ends the wait within that second, a backward step stalls the
loop by as much (pve-faults.md §7.2, §7.3). Unlike PVE's whole-second `time()` and
`sleep(1)`, the wait ends when the end is reached, not up to 1 s later, so the loop timing
without clock steps is what it was before.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

from pvemu import nodeinfo, wallclock
from pvemu.ha.env import SleepUntil
from pvemu.ha.env_node import NodeEnv

# Bound of one sleep_until in ticks: a backward step stalls the loop by the step, which
# has no bound in PVE; past one day of PVE time the runner gives up waiting and says so
# (a clock stepped back by more than a day is not a fault any scenario means to wait out).
MAX_UNTIL_PVE_SECONDS = 86400


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
    handled: list[bool] = []

    def on_signal() -> None:
        """PVE's TERM handler: ``shutdown_request`` at once, once; the loop runs on."""
        if asked and not handled:
            handled.append(True)
            daemon.env.log("info", "received signal TERM")
            request_shutdown(daemon)

    tick = daemon.env.timing.s(1)
    for delay in daemon.run():
        on_signal()  # a TERM during a step: Perl runs the handler between its ops
        if not pause(delay, wake, tick, on_signal=on_signal):
            daemon.env.log("warn", f"sleep_until({delay.end:.0f}) gave up after "
                           f"{MAX_UNTIL_PVE_SECONDS} s: the clock is far behind")
    daemon.env.log("info", "server stopped")
    return 0


def pause(delay: float, wake: threading.Event, tick: float, *,
          on_signal: Callable[[], None] = lambda: None,
          clock: Callable[[], float] = wallclock.now) -> bool:
    """Sleep as the daemon asked, as PVE2.pm does after a shutdown request too (its
    rounds keep their pace: the LRM's restart waits a round for the CRM's freeze,
    pve-faults.md §1):

    - a plain ``delay`` is Perl's ``sleep``: a signal (``wake``) ends it early, after its
      handler (``on_signal``) ran;
    - a ``SleepUntil`` is ``sleep_until``'s loop of ``sleep(1)`` until ``clock()`` reaches
      its end, checked every ``tick`` (one PVE second): a signal runs its handler and the
      loop sleeps on.

    False when a sleep_until hit its bound."""
    if not isinstance(delay, SleepUntil):
        if wake.wait(max(0.0, delay)):
            wake.clear()
            on_signal()
        return True
    for _ in range(MAX_UNTIL_PVE_SECONDS + 2):  # one tick is one PVE second
        left = delay.end - clock()
        if left <= 0:
            return True
        if wake.wait(min(tick, left)):
            wake.clear()  # the next wait sleeps again
            on_signal()
    return False


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
