"""What stock PVE should do, in seconds: predicted windows from the cluster's own constants.

A scenario measures a figure on the timeline (power cut -> restart issued, ...) and asks
``verdict`` whether it lies inside the window that PVE's design predicts, and whether it
meets a user's budget. The windows are derived step by step from pve-model.md §2 and §10;
every term is named in the function's docstring and in ``Window.basis``.

Two clocks are at work. Corosync's timers (token, consensus) are never scaled: they are
read from the running cluster. PVE's HA timers (CRM and LRM loops, lock lifetime, fence
delay, watchdog) are multiplied by the timescale on labs that can scale them. So at a
timescale below 1 the unscaled detection can land on the critical path (the fence delay
counts from the last CRM round before detection), and the windows are not simply the
timescale-1 windows times the timescale.

All windows are in real seconds from the fault (t0), except ``clean_shutdown_window``,
which counts from the moment the node leaves the membership.

The package has four parts: ``constants`` (read from a cluster), ``windows`` (the
predictions of a recovery), ``fault_windows`` (the predictions for partitions, daemon
faults, corosync pauses and freezes; ``measured`` where PVE's design gives no number) and
``budget`` (a user's limit and the verdict).
"""

from harness.expectations.budget import Budget, Verdict, verdict
from harness.expectations.constants import (
    COROSYNC_CONSENSUS_FACTOR,
    COROSYNC_TOKEN_COEFFICIENT_MS,
    COROSYNC_TOKEN_MS,
    ClusterConstants,
    ConstantsUnavailable,
    parse_cmap_value,
    read_constants,
)
from harness.expectations.fault_windows import (
    HARMLESS,
    MEASURED,
    MEMBERSHIP_CHANGE,
    NO_RESET,
    RESET,
    Prediction,
    clock_step,
    corosync_pause,
    earliest_lock_steal,
    isolation_is_predicted,
    isolation_recovery_window,
    running_freeze,
    self_fence_precedes_recovery,
    stalled_client_reset_window,
    stopping_freeze,
    watchdog_reset_window,
)
from harness.expectations.windows import (
    MEMBERSHIP_FORM_SLACK_S,
    Course,
    Slack,
    Window,
    clean_shutdown_window,
    detect_window,
    expected_one_window,
    fence_ack_window,
    fence_window,
    first_start_bound,
    recovery_window,
    self_fence_window,
    widen,
)

__all__ = [
    "HARMLESS", "MEASURED", "MEMBERSHIP_CHANGE", "NO_RESET", "RESET", "Prediction",
    "clock_step", "corosync_pause", "earliest_lock_steal", "isolation_is_predicted",
    "isolation_recovery_window",
    "running_freeze", "self_fence_precedes_recovery", "stalled_client_reset_window",
    "stopping_freeze", "watchdog_reset_window",
    "COROSYNC_CONSENSUS_FACTOR", "COROSYNC_TOKEN_COEFFICIENT_MS", "COROSYNC_TOKEN_MS",
    "MEMBERSHIP_FORM_SLACK_S", "Budget", "ClusterConstants", "ConstantsUnavailable",
    "Course", "Slack", "Verdict", "Window", "clean_shutdown_window", "detect_window",
    "expected_one_window", "fence_ack_window", "fence_window", "first_start_bound",
    "parse_cmap_value", "read_constants", "recovery_window", "self_fence_window", "verdict",
    "widen",
]
