"""What stock PVE predicts for the faults of issue 13, in real seconds from the fault.

Each prediction is derived from the cluster's constants (harness/expectations/constants.py:
corosync's token and consensus as the running cluster has them, unscaled; PVE's HA
timers times the timescale) and the research notes pve-faults.md and pve-model.md, with
every term named in the docstring and in the basis. Where PVE's design gives no number
the outcome is ``measured``: the scenario reports its figure and judges nothing.

- ``isolation_recovery_window``: the isolated node's guest restarted elsewhere;
- ``earliest_lock_steal``: before this, nobody may take the isolated node's agent lock;
- ``watchdog_reset_window``: a node whose watchdog-mux, or active LRM / master CRM, is
  SIGKILLed resets;
- ``stalled_client_reset_window``: a node whose watchdog client stops feeding without
  closing (paused LRM/CRM, pmxcfs or corosync gone under an active LRM) resets;
- ``clock_step``: a node's wall clock stepped by Δ (pve-faults §7.2, §7.3);
- ``corosync_pause``: what a SIGSTOP of corosync for some seconds does to the membership
  and to the node's watchdog;
- ``running_freeze`` / ``stopping_freeze``: a whole-node freeze with the node's clocks
  running on (cgroup freeze, SIGSTOP of a VM) or stopped (VM pause) (pve-faults §9).

The isolated node's own reset is ``windows.self_fence_window``.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.expectations.constants import ClusterConstants
from harness.expectations.windows import (
    Slack,
    Window,
    fence_window,
    recovery_window,
    self_fence_window,
)

HARMLESS = "harmless"
MEMBERSHIP_CHANGE = "membership change"
MEASURED = "measured"
NO_RESET = "no reset"
RESET = "reset"


@dataclass(frozen=True)
class Prediction:
    """PVE's predicted ``outcome`` of a fault (``harmless``, ``membership change``,
    ``reset``, ``no reset`` or ``measured`` where the design gives no answer), with the
    ``window`` it happens in when a number exists, and the ``basis``."""

    outcome: str
    basis: str
    window: Window | None = None


def earliest_lock_steal(c: ClusterConstants) -> float:
    """The first moment another node may take the isolated (or dead) node's agent lock,
    from the cut t0 (pve-model.md §10.1 (d)-(e)): its last renewal that reached the
    others r > t0 - lrm_loop, and a lock is deletable only once older than its lifetime.
    """
    return -c.lrm_loop + c.lock_lifetime


def isolation_recovery_window(c: ClusterConstants, *, isolated_master: bool,
                              lrm_pickup: bool = True, slack: Slack | None = None
                              ) -> Window:
    """Corosync cut of a powered node with active HA services -> its guest's restart is
    issued on the majority side (pve-faults §6.1: the majority follows pve-model §10.1,
    or §10.2 when the isolated node was the CRM master).

    A cut node's writes reach nobody (real pmxcfs replicates through corosync's CPG), so
    the last agent-lock renewal the majority saw is r in (t0 - lrm_loop, t0], exactly as
    for a power cut: the majority recovers like ``recovery_window`` after a power cut,
    never before the lock expires (``earliest_lock_steal``). The isolated node resets
    itself meanwhile (``self_fence_window``); PVE's safety argument (§10.4) is that this
    reset comes before ``earliest_lock_steal`` (``self_fence_precedes_recovery``).
    """
    w = recovery_window(c, master_died=isolated_master, lrm_pickup=lrm_pickup, slack=slack)
    return Window(w.low_s, w.high_s, (
        f"isolated {'master' if isolated_master else 'non-master'}: its writes after the "
        f"cut reach nobody, the majority recovers as after a power cut; lock stealable "
        f"from {earliest_lock_steal(c):.1f} s; " + w.basis))


def isolation_is_predicted(c: ClusterConstants) -> bool:
    """Whether PVE's design predicts the majority's recovery after an isolation at this
    timescale (``isolation_recovery_window``).

    The prediction rests on corosync re-forming its ring well inside the HA watchdog's
    budget: while the ring re-forms (token + consensus, never scaled) no /etc/pve write
    is delivered anywhere (pve-faults §5.4: every write waits for agreed-order delivery),
    and an active LRM or the master must renew within the watchdog client timeout (60 s,
    scaled; §3.2). At timescale 1 that is 8 s against 60 s. When the re-formation is
    longer than the scaled client timeout (timescale 0.1: 8 s against 6 s), the design
    says the survivors' own renewals stall past their watchdog, so it gives no window for
    the recovery: the figures are reported as measured."""
    return c.detection < c.watchdog


def self_fence_precedes_recovery(c: ClusterConstants) -> bool:
    """Whether PVE's design guarantees the isolated node reset before anyone may take its
    lock (pve-model.md §10.4: at timescale 1, 81 s < 110 s). At small timescales the
    unscaled detection can push the isolated node's last renewal, and so its reset, past
    the scaled lock expiry: then the design allows two copies for a moment."""
    return self_fence_window(c).high_s < earliest_lock_steal(c)


def watchdog_reset_window(c: ClusterConstants) -> Window:
    """SIGKILL of watchdog-mux (any node), or of pve-ha-lrm / pve-ha-crm holding an open
    watchdog -> the node resets (pve-faults §1, §3.3, §3.4, §3.6).

    - a client gone without the magic ``V``: mux stops feeding at once; the last
      keepalive came at the last idle tick, at most one mux tick earlier: reset after
      device - tick .. device (PVE 8, §3.3);
    - PVE 9's mux then leaves its loop within one tick and exits; closing the device
      without ``V`` pings it once more (Linux watchdog_release): reset up to device +
      tick after the kill (§3.6, §3.4);
    - mux itself SIGKILLed: that close and its last ping come at the kill: reset
      device after it (§3.4).
    [9, 11] s at timescale 1.
    """
    return Window(c.watchdog_device - c.watchdog_tick, c.watchdog_device + c.watchdog_tick, (
        f"timescale {c.timescale:g}; device timeout {c.watchdog_device:.2f} s from the last "
        f"keepalive: up to one mux tick ({c.watchdog_tick:.2f} s) before the kill (client "
        f"gone without V), or after it (PVE 9 mux exit; mux killed: at the kill)"))


def stalled_client_reset_window(c: ClusterConstants) -> Window:
    """A watchdog client (active LRM, master CRM) stops feeding without closing at t0 ->
    the node resets (pve-faults §3.2; the stalls of §2.2, §4.2, §4.3: SIGSTOP of the
    LRM or CRM, pmxcfs stopped or paused, corosync killed, stopped or paused).

    Its last write came at most one LRM loop before t0; mux stops feeding at its first
    tick where that write is more than the watchdog timeout old (whole-second ages: up to
    two ticks late; PVE 9's exit one tick more) and the device resets its timeout after
    the last keepalive: [watchdog - lrm_loop + device, watchdog + 3 ticks + device] from
    t0. [60, 73] s at timescale 1 (§1: "≈60–73 s").
    """
    return Window(c.watchdog - c.lrm_loop + c.watchdog_device,
                  c.watchdog + 3 * c.watchdog_tick + c.watchdog_device, (
                      f"timescale {c.timescale:g}; last feed 0..{c.lrm_loop:.1f} s before "
                      f"the stall, expires past watchdog {c.watchdog:.1f} s (+ up to 3 mux "
                      f"ticks of {c.watchdog_tick:.2f} s), + device {c.watchdog_device:.1f} s"))


def clock_step(c: ClusterConstants, delta_s: float, *, watchdog_open: bool) -> Prediction:
    """The node's wall clock stepped by ``delta_s`` real seconds (pve-faults §7.2, §7.3,
    Derived), for a node with or without an open watchdog (active LRM, master CRM).

    - backward (Δ < 0): its HA loops wait in ``sleep_until`` for |Δ|; mux ages go
      negative: ``no reset``;
    - forward by at most watchdog - lrm_loop: the client's age plus Δ stays within the
      watchdog timeout, and the LRM's renewal (own success younger than the lock
      lifetime) passes: ``no reset``;
    - forward by the lock lifetime or more: the renewal cannot pass (its own last success
      looks older than the lifetime, mkdir fails) and mux sees the client past the
      watchdog timeout at its first tick after the step: ``reset``, the device timeout
      after the last keepalive (one tick before the step at the earliest; up to two ticks
      after it with PVE 9's exit): [device - tick, device + 2 ticks] from the step;
    - between: a race between mux's tick and the daemon's renewal: ``measured``.
    """
    if delta_s < 0 or not watchdog_open:
        why = "backward step: loops stall, ages go negative" if delta_s < 0 \
            else "no watchdog client on the node"
        return Prediction(NO_RESET, why)
    basis = (f"timescale {c.timescale:g}; step +{delta_s:.2f} s; no reset up to watchdog "
             f"{c.watchdog:.1f} s - LRM loop {c.lrm_loop:.1f} s, reset from the lock "
             f"lifetime {c.lock_lifetime:.1f} s")
    if delta_s <= c.watchdog - c.lrm_loop:
        return Prediction(NO_RESET, basis)
    if delta_s < c.lock_lifetime:
        return Prediction(MEASURED, basis)
    return Prediction(RESET, basis, Window(
        c.watchdog_device - c.watchdog_tick, c.watchdog_device + 2 * c.watchdog_tick,
        f"timescale {c.timescale:g}; from the step: mux's next tick stops feeding, the "
        f"device {c.watchdog_device:.2f} s after the last keepalive (-1 .. +2 ticks of "
        f"{c.watchdog_tick:.2f} s)"))


def corosync_pause(c: ClusterConstants, paused_s: float, *, watchdog_open: bool
                   ) -> tuple[Prediction, Prediction]:
    """SIGSTOP of corosync on a node for ``paused_s`` real seconds (pve-faults §5.5):
    (membership, the node's own watchdog).

    Membership (corosync's timers, unscaled): shorter than the token, the others only
    wait (``harmless``); longer than token + consensus, they form a membership without
    the node (``membership change``); in between the token is lost and a ring re-forms,
    Derived with the same members (``measured``).

    Watchdog (``watchdog_open``: an active LRM or the master CRM on the node): its lock
    renewal blocks in pmxcfs while corosync is paused, so its watchdog client is last fed
    at most one LRM loop before the pause. No reset while that cannot age past the
    watchdog timeout (paused <= watchdog - lrm_loop) and the others cannot have fenced
    it yet (paused < the fence round after losing it, ``fence_window``'s low edge);
    ``reset`` once the pause outlasts the watchdog timeout plus mux's expiry ticks (two
    whole-second ages, one PVE 9 exit); ``measured`` between.
    """
    if paused_s < c.token:
        membership = Prediction(HARMLESS, f"paused {paused_s:.2f} s < token {c.token:.2f} s")
    elif paused_s > c.detection:
        membership = Prediction(MEMBERSHIP_CHANGE, (
            f"paused {paused_s:.2f} s > token {c.token:.2f} s + consensus "
            f"{c.consensus:.2f} s"))
    else:
        membership = Prediction(MEASURED, (
            f"token {c.token:.2f} s <= paused {paused_s:.2f} s <= token + consensus "
            f"{c.detection:.2f} s: the ring re-forms, Derived with the same members"))
    if not watchdog_open:
        return membership, Prediction(NO_RESET, "no watchdog client on the node")
    safe = min(c.watchdog - c.lrm_loop, fence_window(c, master_died=False).low_s)
    certain = c.watchdog + 3 * c.watchdog_tick
    terms = (f"timescale {c.timescale:g}; no reset up to min(watchdog {c.watchdog:.1f} s - "
             f"LRM loop {c.lrm_loop:.1f} s, fence round from "
             f"{fence_window(c, master_died=False).low_s:.2f} s) = {safe:.2f} s; reset "
             f"beyond watchdog + 3 mux ticks = {certain:.2f} s")
    if paused_s <= safe:
        return membership, Prediction(NO_RESET, terms)
    if paused_s > certain:
        return membership, Prediction(RESET, terms)
    return membership, Prediction(MEASURED, terms)


def running_freeze(c: ClusterConstants, frozen_s: float) -> Prediction:
    """A freeze with the node's clocks running on (pve-faults §9.3: SIGSTOP of a VM, a
    cgroup freeze of an emulated node) for ``frozen_s`` real seconds, any node (mux keeps
    the device armed and fed every tick, clients or not).

    On thaw the monotonic clock has jumped by the freeze: longer than the device timeout
    plus one tick (the last keepalive up to one tick before the freeze), softdog's timer
    is overdue and, a Guess of the notes, fires at once: ``reset``, at thaw, with no
    number for how soon (so no window). Shorter than device - tick: no watchdog reset
    (membership effects as for a corosync pause). Between: ``measured``.
    """
    low, high = c.watchdog_device - c.watchdog_tick, c.watchdog_device + c.watchdog_tick
    basis = (f"timescale {c.timescale:g}; device timeout {c.watchdog_device:.2f} s "
             f"(+/- one tick {c.watchdog_tick:.2f} s); Guess (§9.3): softdog fires at the "
             f"first timer interrupt after thaw")
    if frozen_s > high:
        return Prediction(RESET, f"frozen {frozen_s:.2f} s > {high:.2f} s; " + basis)
    if frozen_s < low:
        return Prediction(NO_RESET, f"frozen {frozen_s:.2f} s < {low:.2f} s; " + basis)
    return Prediction(MEASURED, basis)


def stopping_freeze(c: ClusterConstants, frozen_s: float, *, watchdog_open: bool
                    ) -> Prediction:
    """A freeze with the node's clocks stopped (pve-faults §9.2, Derived: `virsh
    suspend`, QMP stop; softdog and mux stand still with the node) of a node running an
    HA guest, for ``frozen_s`` real seconds; the window counts from the thaw.

    - thawed before the others' fence round (``fence_window`` low edge): its renewal
      passes on thaw, ``no reset``, no failover;
    - thawed after it: the node finds its services fenced (or its lock taken) and stops
      renewing: ``reset`` as a stalled watchdog client (``stalled_client_reset_window``)
      counted from the thaw: its mux ages resume where they froze. If the thaw comes
      after the lock steal (``isolation_recovery_window``), two copies run until then:
      a PVE property.
    - thawed within the fence round's own range: ``measured``.
    """
    fence = fence_window(c, master_died=False)
    if not watchdog_open:
        return Prediction(NO_RESET, "no watchdog client on the node")
    if frozen_s < fence.low_s:
        return Prediction(NO_RESET, f"thawed at {frozen_s:.2f} s, before the fence round "
                                    f"{fence.low_s:.2f}..{fence.high_s:.2f} s")
    if frozen_s <= fence.high_s:
        return Prediction(MEASURED, f"thawed at {frozen_s:.2f} s, within the fence round "
                                    f"{fence.low_s:.2f}..{fence.high_s:.2f} s")
    stalled = stalled_client_reset_window(c)
    return Prediction(RESET, f"thawed after the fence round ({fence.high_s:.2f} s)", Window(
        stalled.low_s, stalled.high_s, "from thaw (mux ages resume where they froze): "
        + stalled.basis))
