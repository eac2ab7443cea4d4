"""harness.expectations.windows: the predicted windows of pve-model.md §10, at timescale 1
and below, with the observers' slack."""

from __future__ import annotations

import pytest

from harness.expectations import (
    ClusterConstants,
    Slack,
    Window,
    clean_shutdown_window,
    detect_window,
    expected_one_window,
    fence_ack_window,
    fence_window,
    recovery_window,
    self_fence_window,
    windows,
)
from harness.timescale import REAL_TIME, Timescale

STOCK = ClusterConstants.stock(3, REAL_TIME)
TENTH = ClusterConstants.stock(3, Timescale(0.1))


# -- windows at timescale 1 (pve-model.md §10) -----------------------------------------


def test_detection_is_token_plus_consensus_with_polling_slack():
    w = detect_window(STOCK)
    # the survivor's token timer may have started a token hold (685 ms: corosync's
    # default for a 3650 ms token) before the cut, and a poll is stamped at its start:
    # up to one slow `pvecm status` (1 s) early
    assert STOCK.token_hold == pytest.approx(0.685)
    assert w.low_s == pytest.approx(8.03 - 0.685 - 1.0)
    assert w.high_s == pytest.approx(10.03)
    assert 8.03 in w
    assert detect_window(TENTH) == w  # never scaled


def test_a_slow_poll_measured_behind_the_figure_widens_detection_by_what_it_took():
    w = detect_window(STOCK)
    assert detect_window(STOCK, command_latency_s=0.3) == w  # a fast poll: no narrower
    slow = detect_window(STOCK, command_latency_s=1.5)  # a loaded host's `pvecm status`
    assert (slow.low_s, slow.high_s) == pytest.approx((8.03 - 0.685 - 1.5, 10.53))
    assert "1.5 s command (the longest poll, measured)" in slow.basis
    assert "-0.685 s token hold" in slow.basis


def test_the_token_hold_read_from_corosync_is_the_one_used():
    import dataclasses

    read = dataclasses.replace(STOCK, hold_ms=180)  # corosync.conf(5)'s documented default
    assert read.token_hold == 0.18
    assert detect_window(read).low_s == pytest.approx(8.03 - 0.18 - 1.0)


def test_non_master_power_cut_matches_the_model():
    w = recovery_window(STOCK, master_died=False)
    assert w.low_s == pytest.approx(121, abs=1.5)  # §10.1: "t0 + 121 s at best"
    assert w.high_s == pytest.approx(150, abs=1.5)  # "about 150 s at worst"
    assert (w.low_s, w.high_s) == pytest.approx((120.0, 151.0))
    assert "lock" in w.basis
    # the lab's measured restarts (README: 130.1 s and 139.9 s) lie inside
    assert 130.1 in w and 139.9 in w


def test_master_power_cut_matches_the_model():
    w = recovery_window(STOCK, master_died=True)
    assert w.low_s == pytest.approx(170, abs=3)  # §10.2: "t0 + 170…210 s"
    assert w.high_s == pytest.approx(210, abs=4)
    assert (w.low_s, w.high_s) == pytest.approx((171.0, 207.0))
    assert 191.8 in w  # README's measured figure


def test_without_the_lrm_pickup_the_window_ends_at_the_lock_acquisition():
    w = recovery_window(STOCK, master_died=False, lrm_pickup=False)
    assert (w.low_s, w.high_s) == pytest.approx((120.0, 141.0))
    late = Slack(0.0, 2.0, "late observer")
    assert recovery_window(STOCK, master_died=False, slack=late).high_s == pytest.approx(153)


def test_clean_shutdown_and_self_fence_at_timescale_1():
    clean = clean_shutdown_window(STOCK)
    assert (clean.low_s, clean.high_s) == pytest.approx((50.0, 70.0))  # §10.3
    fence = self_fence_window(STOCK)
    # §10.4: 61…80; pve-faults §6.1: 61…81 (PVE 9's mux exit); from the last write §3.2's
    # 70..73 s (the device counts from the last keepalive, a tick before the expiry)
    assert (fence.low_s, fence.high_s) == pytest.approx((60.0, 81.03))
    # safety: the node has reset before anyone may take its lock
    assert fence.high_s < recovery_window(STOCK, master_died=False).low_s


# -- windows at timescale 0.1: unscaled detection meets scaled HA terms -----------------
def test_non_master_at_tenth_scale_waits_for_the_fence_round_not_the_lock():
    w = recovery_window(TENTH, master_died=False)
    # last_online in (7.03 - 0.685 token hold, 8.03], fence round 6 s later; the lock
    # (11.0..12.1) has expired
    assert (w.low_s, w.high_s) == pytest.approx((13.03 - 0.685, 16.03))
    # not the timescale-1 window scaled: the fence round sets the pace, not the lock
    assert w.low_s == pytest.approx(fence_window(TENTH, master_died=False).low_s)
    assert "lock expired before the fence round" in w.basis


def test_master_at_tenth_scale():
    w = recovery_window(TENTH, master_died=True)
    # manager lock 11.0..12.1, new master 11.1..12.7, fence round +6, lock +0..1, LRM +1
    assert (w.low_s, w.high_s) == pytest.approx((17.1, 20.7))


def test_clean_shutdown_and_self_fence_at_tenth_scale():
    clean = clean_shutdown_window(TENTH)
    assert (clean.low_s, clean.high_s) == pytest.approx((5.0, 7.0))
    fence = self_fence_window(TENTH)
    # the last renewal may come up to the unscaled detection (8.03 s) after the cut
    assert (fence.low_s, fence.high_s) == pytest.approx((6.0, 15.33))


def test_a_faster_coefficient_moves_the_scaled_window_with_detection():
    fast = ClusterConstants.stock(3, Timescale(0.1), token_coefficient_ms=125)  # detection 6.875 s
    w = recovery_window(fast, master_died=False)
    assert fast.token_hold == pytest.approx(0.585)  # totemconfig.c's default for 3125 ms
    assert w.low_s == pytest.approx(6.875 - 0.585 - 1 + 6)
    # at timescale 1 detection is not on the critical path: the same window as with 650
    slow = recovery_window(STOCK, master_died=False)
    same = recovery_window(ClusterConstants.stock(3, REAL_TIME, 125), master_died=False)
    assert (same.low_s, same.high_s) == pytest.approx((slow.low_s, slow.high_s))


def test_a_new_master_faster_than_detection_counts_from_its_last_round_before_it():
    tiny = ClusterConstants.stock(3, Timescale(0.05))  # manager lock expires 5.5..6.05 s < 8.03 s
    w = recovery_window(tiny, master_died=True)
    # fence delay counted from the last round before detection: (7.53 - 0.685 token
    # hold, 8.03] + 3 s
    assert w.low_s == pytest.approx(8.03 - 0.685 - 0.5 + 3.0)


def test_a_lock_expiring_after_the_fence_round_costs_two_rounds():
    # fence delay 40 s at timescale 0.1: fence round in (11.03 - 0.685 token hold,
    # 12.03], lock 11.0..12.1; at best the fence round comes just after the lock
    # expired, at worst the lock expires after it
    c = ClusterConstants(3, 3650, 650, 4380, Timescale(0.1), fence_delay_s=40.0)
    w = recovery_window(c, master_died=False, lrm_pickup=False)
    assert (w.low_s, w.high_s) == pytest.approx((11.0, 12.1 + 2 * 1.0))
    assert "lock expired before the fence round" in w.basis
    assert "expiry + two rounds" in w.basis


def test_an_acquisition_counts_both_cases_where_the_ranges_overlap():
    # fence round 20..30 s, lock deletable 25..26 s: a fence round at 25.5 finds the lock
    # expired (acquired at once), one at 24 waits for the expiry (26 + two rounds at
    # worst): both cases are possible, and the window covers both
    c = ClusterConstants(3, 3650, 650, 4380, REAL_TIME)
    low, high, how = windows._acquisition(c, (20.0, 30.0), (25.0, 26.0))
    assert (low, high) == pytest.approx((25.0, max(30.0 + 10, 26.0 + 2 * 10)))
    assert "lock expired before the fence round" in how and "expiry + two rounds" in how


# -- the stages of a recovery: fence, fence acknowledgement (pve-model.md §10) ----------
def edges(w: Window) -> tuple[float, float]:
    return w.low_s, w.high_s


def test_fence_of_a_non_master_is_the_fence_delay_after_its_last_online_round():
    w = fence_window(STOCK, master_died=False)
    # last_online in (8.03 - 0.685 token hold - 10, 8.03], then six whole CRM rounds of
    # 10 s
    assert edges(w) == pytest.approx((58.03 - 0.685, 68.03))
    assert w.low_s == pytest.approx(STOCK.earliest_detection - STOCK.crm_loop
                                    + STOCK.fence_countdown)
    # one round of uncertainty, and the token hold's in when corosync drops the node
    assert w.high_s - w.low_s == pytest.approx(STOCK.crm_loop + STOCK.token_hold)
    assert "non-master" in w.basis and "fence round 57.3..68.0 s" in w.basis
    assert "detection 7.34..8.03 s" in w.basis


def test_fence_of_the_master_waits_for_a_new_master_first():
    w = fence_window(STOCK, master_died=True)
    # manager lock expires 110..121 s, a slave's tries catch it 111..127 s, + 60 s
    assert edges(w) == pytest.approx((171.0, 187.0))
    assert "new master 111.0..127.0 s" in w.basis


def test_fence_ack_of_a_non_master_waits_for_the_agent_lock():
    w = fence_ack_window(STOCK, master_died=False)
    # the lock (deletable 110..121 s) outlasts the fence round (58..68 s): the first round
    # after expiry sends the unlock, the next one takes the lock
    assert edges(w) == pytest.approx((120.0, 141.0))
    assert "first round after expiry + one round" in w.basis
    assert "expiry + two rounds" in w.basis
    # the restart is issued in the round that acknowledges the fence
    assert edges(w) == pytest.approx(
        edges(recovery_window(STOCK, master_died=False, lrm_pickup=False)))


def test_fence_ack_of_the_master_is_the_fence_round_or_the_next():
    w = fence_ack_window(STOCK, master_died=True)
    # the agent lock expired long before the new master's fence round (171..187 s)
    assert edges(w) == pytest.approx((171.0, 197.0))
    assert "lock expired before the fence round" in w.basis
    full = recovery_window(STOCK, master_died=True)
    assert full.high_s == pytest.approx(w.high_s + STOCK.lrm_loop)


def test_at_tenth_scale_the_fence_round_sets_the_pace_of_the_acknowledgement():
    fence, ack = (fence_window(TENTH, master_died=False),
                  fence_ack_window(TENTH, master_died=False))
    # last_online (7.03 - 0.685 token hold, 8.03] (unscaled detection) + 6 s; the lock
    # went at 11.0..12.1 s
    assert edges(fence) == pytest.approx((12.345, 14.03))
    assert edges(ack) == pytest.approx((12.345, 15.03))  # in the fence round at best


@pytest.mark.parametrize("master_died", [False, True])
@pytest.mark.parametrize("timescale", [0.02, 0.05, 0.1, 0.3, 1.0, 2.0])
@pytest.mark.parametrize("fence_delay_s", [20.0, 40.0, 60.0, 200.0])
def test_the_fence_is_never_acknowledged_before_it_is_declared(master_died, timescale,
                                                               fence_delay_s):
    c = ClusterConstants(3, 3650, 650, 4380, Timescale(timescale),
                         fence_delay_s=fence_delay_s)
    fence = fence_window(c, master_died=master_died)
    ack = fence_ack_window(c, master_died=master_died)
    restart = recovery_window(c, master_died=master_died)
    assert fence.low_s <= ack.low_s and fence.high_s <= ack.high_s
    assert ack.low_s == pytest.approx(restart.low_s)
    assert ack.high_s + c.lrm_loop == pytest.approx(restart.high_s)


TIMESCALES = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
WINDOWS = {
    "fence non-master": lambda c: fence_window(c, master_died=False),
    "fence master": lambda c: fence_window(c, master_died=True),
    "ack non-master": lambda c: fence_ack_window(c, master_died=False),
    "ack master": lambda c: fence_ack_window(c, master_died=True),
    "expected one": expected_one_window,
    "expected one, no pickup": lambda c: expected_one_window(c, lrm_pickup=False),
}


@pytest.mark.parametrize("name", WINDOWS)
def test_windows_grow_with_the_timescale(name):
    windows = [WINDOWS[name](ClusterConstants.stock(3, Timescale(k))) for k in TIMESCALES]
    for slower, faster in zip(windows, windows[1:], strict=False):
        assert slower.low_s <= faster.low_s and slower.high_s <= faster.high_s


def test_expected_one_counts_the_fence_delay_from_the_survivors_new_mastership():
    w = expected_one_window(STOCK)
    # master 0..11 s (5 s wait_for_quorum sleep + 6 lock tries), fence round 60..81 s
    # (from its first or second round), lock that round or the next, LRM pickup 10 s
    assert edges(w) == pytest.approx((60.0, 101.0))
    assert "LRM pickup" in w.basis
    bare = expected_one_window(STOCK, lrm_pickup=False)
    assert edges(bare) == pytest.approx((60.0, 91.0))
    assert "LRM pickup" not in bare.basis


def test_expected_one_is_all_on_pves_clock():
    tenth = expected_one_window(TENTH)
    assert edges(tenth) == pytest.approx((6.0, 10.1))
    # no corosync term: exactly the timescale-1 window scaled, whatever the token
    one = expected_one_window(STOCK)
    assert edges(tenth) == pytest.approx((0.1 * one.low_s, 0.1 * one.high_s))
    fast = ClusterConstants.stock(5, REAL_TIME, token_coefficient_ms=125)
    assert edges(expected_one_window(fast)) == pytest.approx(edges(one))


# -- slack: how far an observation lags what it observes -------------------------------
WATCHER = Slack(1.0, 2.5, "HA watcher poll")


def test_slack_widens_both_edges_and_says_why():
    bare = fence_window(STOCK, master_died=False)
    w = fence_window(STOCK, master_died=False, slack=WATCHER)
    assert edges(w) == pytest.approx((bare.low_s - 1.0, bare.high_s + 2.5))
    assert w.basis.startswith(bare.basis)
    assert "observed: -1 s .. +2.5 s (HA watcher poll)" in w.basis
    assert "observed" not in bare.basis
    ack = fence_ack_window(STOCK, master_died=True, slack=WATCHER)
    assert edges(ack) == pytest.approx((170.0, 199.5))


def test_slack_never_takes_the_low_edge_below_the_fault():
    w = expected_one_window(TENTH, slack=Slack(10.0, 1.0, "slow probe"))
    assert edges(w) == pytest.approx((0.0, 11.1))
    assert "slow probe" in w.basis


def test_recovery_window_takes_a_slack_on_both_edges():
    w = recovery_window(STOCK, master_died=False, slack=WATCHER)
    assert edges(w) == pytest.approx((119.0, 153.5))
    assert "(HA watcher poll)" in w.basis
    assert recovery_window(STOCK, master_died=False, slack=None) == recovery_window(
        STOCK, master_died=False)




def test_window_edges():
    with pytest.raises(ValueError):
        Window(2.0, 1.0, "backwards")
    w = Window(1.0, 2.0, "x")
    assert 1.0 in w and 2.0 in w and 2.01 not in w and 0.99 not in w
    assert str(w) == "[1.0, 2.0] s"
