"""watchdog-mux logic (pve-model.md §2, §7.6)."""

from pvemu.ha.watchdog import WatchdogMux
from pvemu.timing import Timing


def run_ticks(mux: WatchdogMux, start: float, end: float) -> float | None:
    """Tick once a second; the time the device expires, or None."""
    t = start
    while t <= end:
        mux.tick(t)
        if mux.expired(t):
            return t
        t += 1
    return None


def test_no_clients_means_not_armed():
    mux = WatchdogMux(Timing(1.0))
    assert not mux.armed
    assert run_ticks(mux, 0, 500) is None


def test_stale_client_resets_60_plus_10_after_last_update():
    mux = WatchdogMux(Timing(1.0))
    cid = mux.open(0)
    for t in range(0, 101):
        if t % 10 == 0:
            mux.update(cid, t)
        mux.tick(t)
    reset = run_ticks(mux, 101, 300)
    assert reset is not None and 170 <= reset <= 171


def test_updates_keep_the_device_fed():
    mux = WatchdogMux(Timing(1.0))
    cid = mux.open(0)
    for t in range(0, 600):
        if t % 10 == 0:
            mux.update(cid, t)
        assert mux.tick(t)
        assert not mux.expired(t)


def test_graceful_close_disarms():
    mux = WatchdogMux(Timing(1.0))
    cid = mux.open(0)
    mux.close(cid)
    assert not mux.armed
    assert run_ticks(mux, 0, 300) is None


def test_disconnect_without_magic_close_resets_in_10s():
    mux = WatchdogMux(Timing(1.0))
    a, b = mux.open(0), mux.open(0)
    for t in range(0, 51):
        mux.update(a, t)
        mux.update(b, t)
        mux.tick(t)
    mux.disconnect(a)
    assert not mux.tick(51)
    assert run_ticks(mux, 51, 100) == 60


def test_one_stale_client_is_enough():
    mux = WatchdogMux(Timing(1.0))
    crm, lrm = mux.open(0), mux.open(0)
    for t in range(0, 200):
        mux.update(crm, t)  # the CRM stays fresh
        mux.tick(t)
        if mux.expired(t):
            break
    assert mux.expired(t) and t == 70
    assert lrm


def test_timescale_shrinks_the_timeouts():
    mux = WatchdogMux(Timing(0.1))
    mux.open(0)
    t = 0.0
    while not mux.expired(t):
        mux.tick(t)
        t = round(t + 0.1, 3)
    assert 6.9 <= t <= 7.2
