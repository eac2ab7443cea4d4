"""harness.expectations.fault_windows: PVE's predictions for an isolated node's guest,
daemon kills, corosync pauses and freezes (pve-faults §3, §5.5, §6.1, §9), at timescale
1 and 0.1, with ``measured`` where the design gives no number."""

from __future__ import annotations

import pytest

from harness.expectations import (
    HARMLESS,
    MEASURED,
    MEMBERSHIP_CHANGE,
    NO_RESET,
    RESET,
    ClusterConstants,
    corosync_pause,
    earliest_lock_steal,
    isolation_is_predicted,
    isolation_recovery_window,
    recovery_window,
    running_freeze,
    self_fence_precedes_recovery,
    self_fence_window,
    stopping_freeze,
    watchdog_reset_window,
)
from harness.timescale import REAL_TIME, Timescale

STOCK = ClusterConstants.stock(3, REAL_TIME)
TENTH = ClusterConstants.stock(3, Timescale(0.1))


def edges(w) -> tuple[float, float]:
    return w.low_s, w.high_s


# -- the isolated node (pve-model §10.1, §10.4; pve-faults §6.1) ------------------------
def test_the_majority_recovers_an_isolated_nodes_guest_as_after_a_power_cut():
    w = isolation_recovery_window(STOCK, isolated_master=False)
    assert edges(w) == edges(recovery_window(STOCK, master_died=False))  # 120..151 s
    assert "reach nobody" in w.basis and "stealable from 110.0 s" in w.basis
    master = isolation_recovery_window(STOCK, isolated_master=True)
    assert edges(master) == edges(recovery_window(STOCK, master_died=True))


def test_the_lock_cannot_be_stolen_before_its_lifetime_after_the_last_renewal():
    assert earliest_lock_steal(STOCK) == pytest.approx(110.0)  # r > t0 - 10, age > 120
    assert earliest_lock_steal(TENTH) == pytest.approx(11.0)
    assert isolation_recovery_window(STOCK, isolated_master=False).low_s >= \
        earliest_lock_steal(STOCK)


def test_the_self_fence_precedes_any_recovery_at_timescale_1_only():
    # §10.4: "always before t0 + 121 s"; at 0.1 the unscaled detection (8 s) lets the
    # isolated node's last renewal, and so its reset (<= 15.3 s), pass the lock (11 s)
    assert self_fence_window(STOCK).high_s < earliest_lock_steal(STOCK)
    assert self_fence_precedes_recovery(STOCK)
    assert not self_fence_precedes_recovery(TENTH)
    assert self_fence_precedes_recovery(ClusterConstants.stock(3, Timescale(0.25)))


def test_an_isolation_is_predicted_only_while_the_ring_reforms_inside_the_watchdog():
    # token + consensus (8.03 s, never scaled) against the watchdog client timeout (60 s,
    # scaled): 8 < 60 at timescale 1 and 8 < 15 at 0.25, but 8 > 6 at 0.1
    assert isolation_is_predicted(STOCK)
    assert isolation_is_predicted(ClusterConstants.stock(3, Timescale(0.25)))
    assert not isolation_is_predicted(TENTH)


# -- daemon kills (pve-faults §1, §3.3, §3.4) -------------------------------------------
def test_a_killed_mux_or_armed_client_resets_within_the_device_timeout_and_a_tick():
    assert edges(watchdog_reset_window(STOCK)) == pytest.approx((9.0, 11.0))
    assert edges(watchdog_reset_window(TENTH)) == pytest.approx((0.9, 1.1))
    assert "device timeout" in watchdog_reset_window(STOCK).basis


# -- corosync paused (pve-faults §5.5) -----------------------------------------------------
@pytest.mark.parametrize(("paused_s", "membership"), [
    (1.0, HARMLESS), (3.6, HARMLESS), (3.7, MEASURED), (8.0, MEASURED),
    (8.1, MEMBERSHIP_CHANGE), (40.0, MEMBERSHIP_CHANGE)])
def test_a_pause_shorter_than_the_token_is_harmless_longer_than_detection_a_change(
        paused_s, membership):
    # token 3.65 s, consensus 4.38 s: unscaled, the same at every timescale
    for c in (STOCK, TENTH):
        assert corosync_pause(c, paused_s, watchdog_open=False)[0].outcome == membership


def test_a_pause_resets_an_armed_node_only_past_the_watchdog_timeout():
    def watchdog(c, s):
        return corosync_pause(c, s, watchdog_open=True)[1].outcome

    # timescale 1: no reset up to 60 - 10 = 50 s (fence round from 58 s); reset past 63 s
    assert [watchdog(STOCK, s) for s in (30, 50, 55, 63, 63.1)] == [
        NO_RESET, NO_RESET, MEASURED, MEASURED, RESET]
    # timescale 0.1: the watchdog is scaled, corosync is not: 9 s is a reset
    assert [watchdog(TENTH, s) for s in (5.0, 6.0, 6.31, 9.0)] == [
        NO_RESET, MEASURED, RESET, RESET]
    assert corosync_pause(STOCK, 90, watchdog_open=False)[1].outcome == NO_RESET


# -- freezes (pve-faults §9) -----------------------------------------------------------
def test_a_clock_running_freeze_longer_than_the_device_timeout_resets_at_thaw():
    assert [running_freeze(STOCK, s).outcome for s in (5.0, 8.9, 10.0, 11.1, 30.0)] == [
        NO_RESET, NO_RESET, MEASURED, RESET, RESET]
    assert running_freeze(TENTH, 3.0).outcome == RESET  # device 1 s at timescale 0.1
    # how soon after thaw is a Guess of the notes: no window
    assert running_freeze(STOCK, 30.0).window is None
    assert "Guess" in running_freeze(STOCK, 30.0).basis


def test_a_clock_stopping_freeze_resets_only_when_thawed_after_the_fence_round():
    fenced = stopping_freeze(STOCK, 100.0, watchdog_open=True)
    assert fenced.outcome == RESET
    # from thaw: client age 0..10 s at the freeze, expiry past 60 s (+3 ticks), +10 s
    assert edges(fenced.window) == pytest.approx((60.0, 73.0))
    assert stopping_freeze(STOCK, 30.0, watchdog_open=True).outcome == NO_RESET
    assert stopping_freeze(STOCK, 60.0, watchdog_open=True).outcome == MEASURED  # 58..68
    assert stopping_freeze(STOCK, 100.0, watchdog_open=False).outcome == NO_RESET


# -- a watchdog client that stops feeding; clock steps (pve-faults §3.2, §7) -------------
def test_a_stalled_client_resets_its_node_60_to_73_s_later():
    from harness.expectations import stalled_client_reset_window

    assert edges(stalled_client_reset_window(STOCK)) == pytest.approx((60.0, 73.0))
    assert edges(stalled_client_reset_window(TENTH)) == pytest.approx((6.0, 7.3))


def test_a_clock_step_resets_an_armed_node_only_forward_past_the_lock_lifetime():
    from harness.expectations import clock_step

    assert clock_step(STOCK, -300, watchdog_open=True).outcome == NO_RESET
    assert clock_step(STOCK, 50, watchdog_open=True).outcome == NO_RESET
    assert clock_step(STOCK, 90, watchdog_open=True).outcome == MEASURED  # a race
    big = clock_step(STOCK, 240, watchdog_open=True)
    assert big.outcome == RESET and edges(big.window) == pytest.approx((9.0, 12.0))
    assert clock_step(TENTH, 24, watchdog_open=True).outcome == RESET
    assert clock_step(STOCK, 240, watchdog_open=False).outcome == NO_RESET
