"""Clock faults: step a node's wall clock by ±Δ, or strobe it, with `date -s` on the node.

The same shell commands on every lab: on a real node (libvirt, inventory, PVE) `date -s`
steps the kernel's clock; on the embedded lab the node's `date` steps the node's emulated
wall clock (pvemu/cli/date.py), which its HA daemons, watchdog-mux and pmxcfs read.

What PVE's design says follows (pve-faults.md §7; HA src/PVE/HA/Env/PVE2.pm,
src/watchdog-mux.c, src/PVE/API2/HA/Status.pm; pve-cluster src/pmxcfs/memdb.c):
- +Δ: the node's lrm/master lines look Δ in the future to the others ("detected time
  drift!" past 2 s); with a watchdog open, Δ > 60 s makes watchdog-mux stop feeding the
  device and the node resets ≈10 s later, near certainly for Δ ≳ 110-120 s (§7.2);
- -Δ: the node's HA loops stall for Δ (`sleep_until` waits for the wall clock), so the
  others see its lrm "old timestamp - dead?" after 30 s; no reset (§7.3);
- corosync, knet and softdog run on the monotonic clock and do not notice (§7.1).

A step is relative, computed on the node by `date` itself: `date -s "now + Δ seconds"`
(GNU date reads now and sets now + Δ in one process, to the nanosecond), and undone by
the opposite step, so the time that passed while the fault lasted is kept. A time daemon
that would fight the step (chrony, systemd-timesyncd, ntpd) is stopped first and started
again when no clock fault is left on the node; where none runs nothing happens.

Each fault leaves a marker under /run (a tmpfs on PVE and on the embedded node) holding
the step that undoes it: a node that rebooted meanwhile has no marker and is not stepped
back (its boot set the clock). The sweep undoes what a killed run left: the markers' steps
and any strobe loop (told to stop, it steps back itself). Only a strobe loop killed with
SIGKILL in its +Δ half leaves an offset nobody can know on a real node; on the embedded
lab a reset clears /run and with it the node's offset (pvemu/wallclock.py).
"""

from __future__ import annotations

import math
import secrets
import shlex
from typing import TYPE_CHECKING

from harness.errors import PvechaosError
from harness.node_command import LEFTOVERS, SWEEPS, NodeCommand

if TYPE_CHECKING:
    from harness.faults import Fault

STATE = "/run/pvechaos-clock"
TIME_DAEMONS = ("chrony", "chronyd", "systemd-timesyncd", "ntpsec", "ntp", "openntpd")
STOPPED = f"{STATE}/stopped-time-daemons"
MAX_STROBE_FLIPS = 10000  # a strobe's bound in +Δ/-Δ pairs, whatever its duration
STOP_WAIT_TICKS = 100  # x 0.1 s: how long an undo waits for a strobe loop to step back
ZOMBIE = "^State:[[:space:]]*Z"  # an exited loop not yet reaped is gone too


def _seconds(delta_s: float) -> str:
    """Δ as `date` reads it in a relative item ("60", "0.5")."""
    text = f"{abs(delta_s):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def step_spec(delta_s: float) -> str:
    """The `date -s` argument stepping the clock by ``delta_s`` from the node's now."""
    return f"now {'-' if delta_s < 0 else '+'} {_seconds(delta_s)} seconds"


def _check_delta(delta_s: float) -> None:
    if isinstance(delta_s, bool) or not isinstance(delta_s, (int, float)) \
            or not math.isfinite(delta_s) or delta_s == 0:
        raise PvechaosError(f"clock step {delta_s!r}: give a non-zero number of seconds",
                            hint="e.g. clock_step('node1', 90) or clock_step('node1', -90)")


STOP_TIME_DAEMONS = (
    f"mkdir -p {STATE}; for u in {' '.join(TIME_DAEMONS)}; do "
    f'if systemctl is-active --quiet "$u" >/dev/null 2>&1; then '
    f'systemctl stop "$u" && echo "$u" >> {STOPPED}; fi; done')
# started again only when the node has no clock fault left (no step marker, no strobe)
START_TIME_DAEMONS = (
    f"if [ -f {STOPPED} ] && ! find {STATE} -maxdepth 1 \\( -name 'step.*' -o "
    f"-name 'strobe.*.pid' \\) | grep -q .; then "
    f'for u in $(sort -u {STOPPED}); do systemctl start "$u"; done; rm -f {STOPPED}; fi')


def _stop_strobe(pidfile: str) -> str:
    """Tell a strobe loop to stop (it steps back if it is in its +Δ half) and wait for it,
    bounded; a loop that does not go is killed, said on stderr, and ``bad`` set to 1."""
    alive = f"kill -0 \"$p\" 2>/dev/null && ! grep -qs '{ZOMBIE}' /proc/\"$p\"/status"
    return (f"if [ -s {pidfile} ]; then p=$(cat {pidfile}); kill -TERM \"$p\" 2>/dev/null; "
            f"i=0; while {alive} && [ $i -lt {STOP_WAIT_TICKS} ]; do "
            f"sleep 0.1; i=$((i+1)); done; if {alive}; then "
            f"kill -KILL \"$p\"; bad=1; echo \"clock strobe $p did not stop: "
            f"the clock may be off by its step\" >&2; fi; rm -f {pidfile}; fi")


def step_command(delta_s: float, token: str) -> NodeCommand:
    """Step the clock by ``delta_s``; the undo steps it back unless the node rebooted."""
    _check_delta(delta_s)
    marker = f"{STATE}/step.{token}"
    back = step_spec(-delta_s)
    apply = (f"{STOP_TIME_DAEMONS}; echo {shlex.quote(back)} > {marker} && "
             f"date -s {shlex.quote(step_spec(delta_s))} >/dev/null || "
             f"{{ rm -f {marker}; exit 1; }}")
    undo = (f"if [ -f {marker} ]; then date -s {shlex.quote(back)} >/dev/null && "
            f"rm -f {marker}; fi; {START_TIME_DAEMONS}")
    return NodeCommand("clock.step", f"{'+' if delta_s > 0 else '-'}{_seconds(delta_s)} s",
                       apply=apply, undo=undo)


def strobe_command(delta_s: float, period_s: float, duration_s: float,
                   token: str) -> NodeCommand:
    """A background loop on the node: +Δ, hold ``period_s``, -Δ, hold ``period_s``, for
    ``duration_s`` (whole pairs, at most MAX_STROBE_FLIPS); on SIGTERM it finishes the pair
    it is in, so the clock ends where it started."""
    _check_delta(delta_s)
    for name, value in (("period_s", period_s), ("duration_s", duration_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise PvechaosError(f"clock strobe {name}={value!r}: give seconds > 0")
    pairs = max(1, math.ceil(duration_s / (2 * period_s)))
    if pairs > MAX_STROBE_FLIPS:
        raise PvechaosError(f"clock strobe of {pairs} flips: at most {MAX_STROBE_FLIPS}",
                            hint="raise period_s or shorten duration_s")
    pidfile = f"{STATE}/strobe.{token}.pid"
    hold = f"{period_s:.3f}".rstrip("0").rstrip(".")
    up, down = shlex.quote(step_spec(delta_s)), shlex.quote(step_spec(-delta_s))
    loop = (f"echo $$ > {pidfile}; stop=0; trap 'stop=1' TERM; i=0; "
            f"while [ $i -lt {pairs} ] && [ $stop = 0 ]; do "
            f"date -s {up} >/dev/null; sleep {hold} & wait $!; "
            f"date -s {down} >/dev/null; [ $stop = 0 ] || break; "
            f"sleep {hold} & wait $!; i=$((i+1)); done; rm -f {pidfile}")
    apply = (f"{STOP_TIME_DAEMONS}; setsid -f sh -c {shlex.quote(loop)} "
             f">/dev/null 2>&1 </dev/null; i=0; while [ ! -s {pidfile} ] && [ $i -lt 50 ]; "
             f"do sleep 0.1; i=$((i+1)); done; [ -s {pidfile} ] || "
             f"{{ echo 'clock strobe loop did not start' >&2; exit 1; }}")
    undo = f"bad=0; {_stop_strobe(pidfile)}; {START_TIME_DAEMONS}; [ $bad = 0 ]"
    detail = f"±{_seconds(delta_s)} s every {hold} s for {duration_s:g} s ({pairs} pairs)"
    return NodeCommand("clock.strobe", detail, apply=apply, undo=undo)


def _sweep() -> str:
    strobes = (f"for f in {STATE}/strobe.*.pid; do [ -f \"$f\" ] || continue; "
               f"{_stop_strobe(chr(34) + '$f' + chr(34))}; done")
    steps = (f"for f in {STATE}/step.*; do [ -f \"$f\" ] || continue; "
             f"date -s \"$(cat \"$f\")\" >/dev/null; rm -f \"$f\"; done")
    return f"if [ -d {STATE} ]; then {strobes}; {steps}; {START_TIME_DAEMONS}; fi; true"


# A killed run's clock faults: strobe loops told to stop (each steps back), steps undone
# from their markers, time daemons started again. A strobe loop killed with SIGKILL in its
# +Δ half leaves an offset no sweep can know on a real node (chrony, once started again,
# slews it away); on the embedded lab a reset clears /run and the offset with it.
SWEEPS["faults_clock"] = _sweep()
# a strobe loop's pid file or a step's marker: a clock fault not yet undone
LEFTOVERS["faults_clock"] = (f"for f in {STATE}/strobe.*.pid {STATE}/step.*; do "
                             f"[ -f \"$f\" ] && echo \"clock fault marker $f\"; done; true")


class ClockFaults:
    """FaultInjector's clock verbs (a mixin: uses its _node_fault)."""

    def clock_step(self, node: str, delta_s: float) -> Fault:
        """Step ``node``'s wall clock by ``delta_s`` seconds (lab seconds: scale PVE's
        figures by the timescale); undone by the opposite step."""
        return self._node_fault(node, step_command(delta_s, secrets.token_hex(4)))  # type: ignore[attr-defined]

    def clock_strobe(self, node: str, delta_s: float, period_s: float,
                     duration_s: float) -> Fault:
        """Flip ``node``'s clock +Δ/-Δ every ``period_s`` for ``duration_s`` in the
        background; undone by stopping the loop, which leaves the clock where it was."""
        command = strobe_command(delta_s, period_s, duration_s, secrets.token_hex(4))
        return self._node_fault(node, command)  # type: ignore[attr-defined]
