"""Predicted windows: when stock PVE should do each step of a recovery, in real seconds.

Derived step by step from pve-model.md §2 and §10; every term is named in the function's
docstring and in ``Window.basis``. All windows count from the fault (t0), except
``clean_shutdown_window``, which counts from the moment the node leaves the membership.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.expectations.constants import ClusterConstants

# Slack of membership formation after the consensus timeout (join messages, the commit
# token's round); a guess, a few corosync join timeouts (50 ms each) and a token rotation.
MEMBERSHIP_FORM_SLACK_S = 0.5

@dataclass(frozen=True)
class Window:
    low_s: float
    high_s: float
    basis: str

    def __post_init__(self) -> None:
        if self.low_s > self.high_s:
            raise ValueError(f"window low {self.low_s} > high {self.high_s}")

    def __contains__(self, seconds: float) -> bool:
        return self.low_s <= seconds <= self.high_s

    def __str__(self) -> str:
        return f"[{self.low_s:.1f}, {self.high_s:.1f}] s"


# What one `pvecm status` poll of the quorum watcher may take, at least: a figure stamped
# with a poll's start may be early or late by its length. A longer poll measured behind a
# figure (metrics.detect_poll_s: a loaded host's) widens the window by what was measured.
COMMAND_LATENCY_S = 1.0


def detect_window(c: ClusterConstants, *, poll_interval_s: float = 0.5,
                  command_latency_s: float | None = None) -> Window:
    """Power cut -> every survivor's membership no longer lists the node (time_to_detect).

    Corosync notices the token lost ``token`` ms after the last token it saw (the token
    circulates every few ms, so that is the cut), then waits ``consensus`` ms for the dead
    node before it forms the new ring: ``token + consensus`` (8.03 s for 3 nodes with the
    default coefficient). The new ring then needs a few join messages (MEMBERSHIP_FORM_SLACK_S).
    The survivor's token timer runs from the last token it saw, which may be up to the
    token hold before the cut (``ClusterConstants.token_hold``: an idle ring's
    representative holds the token that long), so corosync may drop the node that much
    earlier. A watcher stamps a change with the start of the poll that first saw it, so
    the figure can be late by one poll interval plus one command, or early by one
    command's latency.
    ``command_latency_s``: the longest poll measured behind the figure; below
    COMMAND_LATENCY_S it does not narrow the window. Not scaled: corosync's timers are
    real time at any timescale.
    """
    d = c.detection
    latency = max(COMMAND_LATENCY_S, command_latency_s or 0.0)
    command = f"{latency:g} s command" + (
        " (the longest poll, measured)" if latency > COMMAND_LATENCY_S else "")
    low = max(0.0, c.earliest_detection - latency)
    high = d + MEMBERSHIP_FORM_SLACK_S + poll_interval_s + latency
    return Window(low, high, (
        f"token {c.token_ms} ms + consensus {c.consensus_ms} ms = {d:.2f} s; "
        f"-{c.token_hold:g} s token hold -{command} (poll stamped at its start) .. "
        f"+{MEMBERSHIP_FORM_SLACK_S:g} s ring formation +{poll_interval_s:g} s poll "
        f"+{command}"))


def _acquisition(c: ClusterConstants, fence: tuple[float, float],
                 expiry: tuple[float, float]) -> tuple[float, float, str]:
    """When the master gets the dead node's agent lock (the fence is acknowledged).

    ``fence``: the range of the round in which the services become ``fence`` (the first
    mkdir). ``expiry``: the range of the moment the lock becomes deletable. The master's
    mkdir fails while the directory exists and then sends an unlock request; the lowest
    node deletes an expired lock asynchronously, so a later mkdir succeeds. For one fence
    round f and one expiry E:
    - E < f, the lock has expired by the fence round: the state change repeats the round
      at once, so the second mkdir may already succeed, or the next round does:
      [f, f + crm_loop];
    - E >= f: the first round after expiry sends the unlock request that works, the
      round after it gets the lock: (E + crm_loop, E + 2 crm_loop].
    The window is the range of that over every f and E the two ranges allow, each case
    counted only where the ranges let it happen (they may overlap, as at timescale 0.1
    when the fence round comes as the lock expires).
    """
    (f_lo, f_hi), (e_lo, e_hi) = fence, expiry
    lows: list[tuple[float, str]] = []
    highs: list[tuple[float, str]] = []
    if e_lo < f_hi:  # some fence round after some expiry
        lows.append((max(f_lo, e_lo), "lock expired before the fence round: fence round"))
        highs.append((f_hi + c.crm_loop, "fence round + one round"))
    if f_lo <= e_hi:  # some expiry at or after some fence round
        lows.append((max(e_lo, f_lo) + c.crm_loop, "first round after expiry + one round"))
        highs.append((e_hi + 2 * c.crm_loop, "expiry + two rounds"))
    (low, how_lo), (high, how_hi) = min(lows), max(highs)
    return low, high, f"lock acquired {low:.1f}..{high:.1f} s ({how_lo}; {how_hi})"


@dataclass(frozen=True)
class Course:
    """The predicted course of one recovery, in real seconds from the fault: the ranges
    of the fence round, of the fence acknowledgement (agent lock acquired, services set
    to ``recovery`` and ``started`` on the target in that round) and how they were got."""

    fence: tuple[float, float]
    acknowledged: tuple[float, float]
    how: str


def _course(c: ClusterConstants, master_died: bool) -> Course:
    # corosync drops the node between its earliest detection (the token hold before the
    # cut) and token + consensus after it (detect_window); the CRM's last round to see
    # it online is up to one round before that
    d, d_lo, t0 = c.detection, c.earliest_detection, 0.0
    expiry = (t0 - c.lrm_loop + c.lock_lifetime, t0 + c.lock_lifetime + c.lock_tick)
    if not master_died:
        anchor = (t0 + d_lo - c.crm_loop, t0 + d)
        how = (f"non-master: last_online {anchor[0]:.1f}..{anchor[1]:.1f} s "
               f"(detection {d_lo:.2f}..{d:.2f} s unscaled - one CRM round)")
    else:
        manager_expiry = (t0 - c.crm_loop + c.lock_lifetime,
                          t0 + c.lock_lifetime + c.lock_tick)
        takeover = (manager_expiry[0] + c.lock_retry,
                    manager_expiry[1] + c.lock_tries * c.lock_retry)
        anchor = (max(takeover[0], t0 + d_lo - c.crm_loop), max(takeover[1], t0 + d))
        how = (f"master: manager lock expires {manager_expiry[0]:.1f}..{manager_expiry[1]:.1f}"
               f" s, new master {takeover[0]:.1f}..{takeover[1]:.1f} s, fence delay counted "
               f"from {anchor[0]:.1f}..{anchor[1]:.1f} s")
    fence = (anchor[0] + c.fence_countdown, anchor[1] + c.fence_countdown)
    low, high, acquired = _acquisition(c, fence, expiry)
    return Course(fence, (low, high), (
        f"timescale {c.timescale:g}; {how}; fence round {fence[0]:.1f}..{fence[1]:.1f} s; "
        f"agent lock deletable {expiry[0]:.1f}..{expiry[1]:.1f} s; {acquired}"))


def _window(low: float, high: float, basis: str, slack: Slack | None) -> Window:
    return widen(Window(low, high, basis), slack)


def widen(window: Window, slack: Slack | None) -> Window:
    """``window`` as an observer with ``slack`` sees it (both edges moved, and said)."""
    if slack is None:
        return window
    return Window(max(0.0, window.low_s - slack.early_s), window.high_s + slack.late_s,
                  window.basis + f"; observed: -{slack.early_s:g} s .. +{slack.late_s:g} s "
                  f"({slack.why})")


@dataclass(frozen=True)
class Slack:
    """How far an observation may lie from the moment it observes: ``early_s`` (a poll
    is stamped at its start, before the command's answer) and ``late_s`` (poll interval,
    command latency, a guest's own start). Unscaled: these are real-world latencies."""

    early_s: float
    late_s: float
    why: str


def recovery_window(c: ClusterConstants, *, master_died: bool, lrm_pickup: bool = True,
                    slack: Slack | None = None) -> Window:
    """Power cut of a node with active HA services -> the guest's restart is issued.

    Non-master (pve-model.md §10.1), t0 = the cut, D = token + consensus (unscaled):
    (d) the node's LRM last renewed its agent lock at r in (t0 - lrm_loop, t0];
    (e) the lock is deletable once its age exceeds the lifetime, in whole seconds:
        E in [r + lock_lifetime, r + lock_lifetime + lock_tick];
    (b) last_online = the last master round that saw the node, in (t0 + D - crm_loop, t0 + D];
    (c) the services become ``fence`` in the round last_online + fence delay (whole rounds);
    (f) the master gets the lock (``_acquisition``), acknowledges the fence and sets the
        services to ``recovery`` and ``started`` on the target in the same round;
    (g) the target's LRM starts the guest within one LRM loop (``lrm_pickup``): an active
        LRM works every loop; an idle one wakes every 5 s and works as soon as it got its
        (free) agent lock.
    At timescale 1 the lock (e) is the bottleneck: [120, 141] s, 151 s with (g); the doc's
    "121 at best" counts age 121, but with both timestamps truncated to whole seconds a
    lock can be deleted at a real age just over 120. At timescale 0.1 the fence round (c),
    anchored on the unscaled detection, comes after the lock expiry and sets the pace.

    Master died (§10.2): the manager lock, renewed each CRM round at r_m in
    (t0 - crm_loop, t0], expires like (e); a slave's burst of lock tries (lock_retry
    apart, lock_tries of them) catches it lock_retry .. lock_tries x lock_retry later:
    the new master. It has no last_online memory, so the fence delay counts from its first
    round (or from its last round before detection, if it took over before corosync
    dropped the node); the dead node's agent lock has expired by then, so (f) is the fence
    round plus at most one round; then (g).

    ``slack`` widens both edges by the lags of whatever observes it (and says why).
    """
    course = _course(c, master_died)
    low, high = course.acknowledged
    pickup = c.lrm_loop if lrm_pickup else 0.0
    return _window(low, high + pickup, course.how
                   + (f"; + LRM pickup <= {pickup:.1f} s" if lrm_pickup else ""), slack)


def fence_window(c: ClusterConstants, *, master_died: bool, slack: Slack | None = None
                 ) -> Window:
    """Power cut -> the dead node's services enter ``fence`` (steps (a)-(c) of
    ``recovery_window``). When the agent lock has already expired at the fence round (at
    small timescales), ``fence``, the acknowledgement and the new start fall in one round
    and a poller may never see ``fence``; the fence acknowledgement stands in for it."""
    course = _course(c, master_died)
    return _window(*course.fence, course.how, slack)


def fence_ack_window(c: ClusterConstants, *, master_died: bool, slack: Slack | None = None
                     ) -> Window:
    """Power cut -> the master holds the dead node's agent lock: fence acknowledged, the
    services leave the dead node (step (f) of ``recovery_window``)."""
    course = _course(c, master_died)
    return _window(*course.acknowledged, course.how, slack)


def expected_one_window(c: ClusterConstants, *, lrm_pickup: bool = True,
                        slack: Slack | None = None) -> Window:
    """`pvecm expected 1` on the lone survivor -> its own guest restart is issued there.

    Long after both other nodes lost power (their agent locks and the manager lock have
    expired: the scenario waited longer than fence delay + lock lifetime first):
    - votequorum recalculates at once: quorate at t0;
    - the survivor's CRM, in ``wait_for_quorum``, looks again within its 5 s sleep
      (crm_wait_loop), takes the manager lock within its burst of tries (an expired lock
      needs an unlock request first: up to lock_tries x lock_retry): master at M;
    - the new master has no last_online memory: the fence delay counts from M, or from
      the round after M for a node that was still ``online`` in the persisted status and
      turns ``unknown`` only then: the fence round F in [M + fence, M + crm_loop + fence];
    - the expired agent lock of the dead node is taken in F or the round after (f);
    - the survivor's idle LRM picks the service up within one LRM loop (g).
    """
    m = (0.0, c.crm_wait_loop + c.lock_tries * c.lock_retry)
    fence = (m[0] + c.fence_countdown, m[1] + c.crm_loop + c.fence_countdown)
    acknowledged = (fence[0], fence[1] + c.crm_loop)
    pickup = c.lrm_loop if lrm_pickup else 0.0
    return _window(acknowledged[0], acknowledged[1] + pickup, (
        f"timescale {c.timescale:g}; from `pvecm expected 1`: master {m[0]:.1f}..{m[1]:.1f} s "
        f"(wait_for_quorum sleep {c.crm_wait_loop:.1f} s + lock tries); fence round "
        f"{fence[0]:.1f}..{fence[1]:.1f} s (fence delay {c.fence_countdown:.1f} s from the "
        f"new master's first or second round); lock acquired {acknowledged[0]:.1f}.."
        f"{acknowledged[1]:.1f} s" + (f"; + LRM pickup <= {pickup:.1f} s" if lrm_pickup
                                      else "")), slack)


def clean_shutdown_window(c: ClusterConstants, *, slack: Slack | None = None) -> Window:
    """A non-master node shut down cleanly (failover/conditional policy, §10.3).

    Counted from the moment the node leaves the membership (a clean leave is seen at
    once), not from the shutdown command (which first stops the guests). The LRM released
    its agent lock, so the master's first mkdir succeeds: the services are recovered in
    the first round with now - last_online >= fence delay, where last_online (the last
    round that saw the node) is in (-crm_loop, 0]; then the target's LRM starts the guest
    within one LRM loop. [50, 70] s at timescale 1.
    """
    low = -c.crm_loop + c.fence_countdown
    high = c.fence_countdown + c.lrm_loop
    return _window(low, high, (
        f"timescale {c.timescale:g}; from leaving the membership: last_online "
        f"(-{c.crm_loop:.1f}, 0] + fence delay {c.fence_countdown:.1f} s (lock released, "
        f"first mkdir succeeds) + LRM pickup <= {c.lrm_loop:.1f} s"), slack)


def self_fence_window(c: ClusterConstants) -> Window:
    """The isolated node itself (network cut, still powered, active LRM) resets
    (pve-model.md §10.4, pve-faults §6.1 and §3.2).

    Its last good agent-lock renewal (which also feeds its watchdog-mux client) is in
    [t0 - lrm_loop, t0 + D]: it loses quorum at detection D (unscaled), and its next
    renewal fails. mux stops feeding the device at its first tick where that client's
    last write is more than the watchdog timeout old: ages are whole seconds (time()), so
    up to two ticks past the timeout; PVE 9's mux then exits within one more tick, its
    close pinging the device once more (§3.6). The device resets its timeout after the
    last keepalive, which came at the tick before the expiry at the earliest: from the
    last write, watchdog + device .. watchdog + 3 ticks + device (§3.2: ≈70–73 s). So
    [60, 81] s at timescale 1 with 3 nodes (§10.4 derives 61…80, §6.1 ≈61…81).
    """
    d = c.detection
    low = -c.lrm_loop + c.watchdog + c.watchdog_device
    high = d + c.watchdog + 3 * c.watchdog_tick + c.watchdog_device
    return Window(low, high, (
        f"timescale {c.timescale:g}; last renewal {-c.lrm_loop:.1f}..{d:.2f} s (detection "
        f"unscaled) + watchdog {c.watchdog:.1f} s (+ up to 3 mux ticks of "
        f"{c.watchdog_tick:.1f} s) + device {c.watchdog_device:.1f} s"))


def first_start_bound(c: ClusterConstants, margin_s: float = 30.0) -> float:
    """A bound on `ha-manager add` -> the service started, for waits (not a prediction):
    a CRM becomes master only once a service exists (its wait_for_quorum sleep and lock
    tries), then one master round and one LRM round; plus a margin for commands."""
    return c.crm_wait_loop + c.lock_tries * c.lock_retry + c.crm_loop + c.lrm_loop + margin_s
