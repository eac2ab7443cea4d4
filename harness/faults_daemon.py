"""Daemon faults: kill (SIGKILL), stop, pause (SIGSTOP ... SIGCONT) of a PVE unit.

A mixin of FaultInjector (harness/faults.py). The commands are systemd's own, the same on
every lab, real PVE included (systemd 252 on bookworm/PVE 8 and 257 on trixie/PVE 9 both
spell the option ``--kill-whom=``; 252's ``systemctl --help`` lists it):

- kill:  ``systemctl kill --kill-whom=main --signal=SIGKILL <unit>``
- stop:  ``systemctl stop <unit>``
- pause: ``systemctl kill --kill-whom=main --signal=SIGSTOP <unit>``

Undo (``FaultInjector.end(fault)`` or teardown): a pause gets SIGCONT (if the unit still
runs: a node that reset has a fresh process); a kill or a stop gets ``systemctl start``
only if the unit is not active (systemd restarted it, or the node reset and booted it).

What PVE does next is in pve-faults.md §1 and §2.2 (per daemon), §3.4 (watchdog-mux):
e.g. pve-cluster is restarted by systemd after SIGKILL, nothing else restarts, and a
killed watchdog-mux or an LRM/CRM killed while holding the watchdog resets the node ≈10 s
later. Those outcomes are for the scenarios to assert; this module only sets the fault.
"""

from __future__ import annotations

import shlex

from harness.errors import ConfigError
from harness.node_command import LEFTOVERS, SWEEPS, NodeCommand

# PVE's unit names (pve-faults.md §2.1); pmxcfs runs as pve-cluster.service
UNITS = ("corosync", "pve-cluster", "pve-ha-crm", "pve-ha-lrm", "watchdog-mux")


def unit_name(unit: str) -> str:
    name = unit.removesuffix(".service")
    if name not in UNITS:
        hint = "pmxcfs is the pve-cluster unit" if name == "pmxcfs" else None
        raise ConfigError(f"no daemon fault for unit {unit!r}: use one of {', '.join(UNITS)}",
                          hint=hint)
    return name


def signal_command(unit: str, signal: str) -> str:
    return f"systemctl kill --kill-whom=main --signal={signal} {shlex.quote(unit)}"


def start_if_inactive(unit: str) -> str:
    quoted = shlex.quote(unit)
    return f"systemctl is-active --quiet {quoted} || systemctl start {quoted}"


def kill_command(unit: str) -> NodeCommand:
    name = unit_name(unit)
    return NodeCommand("daemon.kill", f"SIGKILL {name}", signal_command(name, "SIGKILL"),
                       start_if_inactive(name))


# `systemctl stop` returns when the daemon left: the LRM's restart takes up to two rounds
# of 10 s (its TERM handler asks, the CRM freezes its services in its next round, the
# LRM exits in its next one: pve-faults.md §1) and the CRM's up to one; a bound, not a
# prediction, below systemd's own (pve-ha-crm TimeoutStopSec=65)
STOP_TIMEOUT_S = 60.0


def stop_command(unit: str) -> NodeCommand:
    name = unit_name(unit)
    return NodeCommand("daemon.stop", f"systemctl stop {name}",
                       f"systemctl stop {shlex.quote(name)}", start_if_inactive(name),
                       apply_timeout_s=STOP_TIMEOUT_S)


def pause_command(unit: str) -> NodeCommand:
    name = unit_name(unit)
    resume = (f"! systemctl is-active --quiet {shlex.quote(name)} || "
              f"{signal_command(name, 'SIGCONT')}")
    return NodeCommand("daemon.pause", f"SIGSTOP {name}", signal_command(name, "SIGSTOP"),
                       resume)


# A killed run may leave a daemon stopped by SIGSTOP: continue all five (harmless when
# none is paused or a unit is not running).
SWEEPS["daemons"] = (f"for u in {' '.join(UNITS)}; do systemctl kill --kill-whom=main "
                     f'--signal=SIGCONT "$u" 2>/dev/null; done; true')
# a unit whose main process is stopped (state T): a pause not yet ended
LEFTOVERS["daemons"] = (f"for u in {' '.join(UNITS)}; do "
                        'p=$(systemctl status "$u" 2>/dev/null '
                        "| sed -n 's/.*Main PID: \\([0-9][0-9]*\\).*/\\1/p'); "
                        '[ -n "$p" ] || continue; '
                        'ps -o stat= -p "$p" 2>/dev/null | grep -q T && '
                        'echo "$u paused (pid $p)"; done; true')


class DaemonFaults:
    """FaultInjector's daemon verbs (uses its ``_node_fault``); each returns the Fault that
    ``end`` takes."""

    def kill_daemon(self, node: str, unit: str):
        """SIGKILL the unit's main process (systemd restarts only pve-cluster, §2.1)."""
        return self._node_fault(node, kill_command(unit))  # type: ignore[attr-defined]

    def stop_daemon(self, node: str, unit: str):
        """`systemctl stop` the unit (never restarted by systemd)."""
        return self._node_fault(node, stop_command(unit))  # type: ignore[attr-defined]

    def pause_daemon(self, node: str, unit: str):
        """SIGSTOP the unit's main process; ``end`` sends SIGCONT."""
        return self._node_fault(node, pause_command(unit))  # type: ignore[attr-defined]
