"""The node's wall clock (pvemu/wallclock.py), the node's `date` (pvemu/cli/date.py) and the
HA daemons following it: env_node's get_time and lock bookkeeping, the runner's
sleep_until. Every offset file here is a temporary one: nothing steps the host's clock
(`date -s` is never passed to the real date)."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from pvemu import wallclock
from pvemu.cli import date
from pvemu.ha import daemon
from pvemu.ha.env import SleepUntil


@pytest.fixture(autouse=True)
def offset_file(tmp_path, monkeypatch):
    path = tmp_path / "run/pvechaos/clock_offset"
    monkeypatch.setattr(wallclock, "OFFSET_FILE", str(path))
    return path


def real_date_calls(monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = subprocess.run

    def run(argv, *args, **kwargs):
        calls.append(list(argv))
        assert not any(a in ("-s", "--set") or a.startswith("--set") for a in argv[1:])
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(date.subprocess, "run", run)
    return calls


# -- the clock ---------------------------------------------------------------------------
def test_without_a_step_the_node_runs_on_the_hosts_time(offset_file):
    assert not offset_file.exists() and wallclock.offset() == 0.0
    assert abs(wallclock.now() - time.time()) < 0.01


def test_a_step_moves_now_and_each_new_step_is_seen_at_once(offset_file):
    wallclock.set_offset(120.5)
    assert offset_file.read_text() == "120.500000\n"
    assert abs(wallclock.now() - time.time() - 120.5) < 0.01
    for value in (-3.0, 7.0, 0.0):  # quick successive steps: no stale cached offset
        wallclock.set_offset(value)
        assert wallclock.offset() == value
    assert abs(wallclock.set_time(time.time() + 60) - 60) < 0.01


def test_a_torn_offset_file_keeps_the_last_offset(offset_file):
    wallclock.set_offset(30)
    assert wallclock.offset() == 30
    offset_file.write_text("garbage")
    assert wallclock.offset() == 30


# -- date --------------------------------------------------------------------------------
def test_date_shows_the_nodes_time_with_the_users_format(monkeypatch, capfd):
    calls = real_date_calls(monkeypatch)
    wallclock.set_offset(3600)
    assert date.main(["-u", "+%s"]) == 0
    shown = int(capfd.readouterr().out)
    assert abs(shown - (time.time() + 3600)) <= 2
    assert calls[-1][1] == "-d" and calls[-1][3:] == ["-u", "+%s"]


def test_date_s_steps_the_node_and_prints_the_new_time(monkeypatch, capfd):
    real_date_calls(monkeypatch)
    assert date.main(["-s", "@1000000000", "+%s"]) == 0
    assert capfd.readouterr().out.strip() == "1000000000"
    assert abs(wallclock.now() - 1000000000) < 2
    assert date.main(["--set=@2000000000.5", "+%s.%N"]) == 0
    assert capfd.readouterr().out.startswith("2000000000.5")


def test_a_relative_spec_is_relative_to_the_nodes_clock(monkeypatch, capfd):
    real_date_calls(monkeypatch)
    wallclock.set_offset(500)
    # (tolerances: the time a loaded machine takes to run the real date, not precision)
    assert date.main(["-s", "now + 90 seconds", "+%s"]) == 0
    assert abs(wallclock.offset() - 590) < 2  # the node's now + 90, not the host's
    assert date.main(["-d", "now - 90 seconds", "+%s.%N"]) == 0
    shown = float(capfd.readouterr().out.splitlines()[-1])
    assert abs(shown - (time.time() + wallclock.offset() - 90)) < 2
    assert date.main(["-us", "now - 590 seconds"]) == 0  # a cluster of short options
    assert abs(wallclock.offset()) < 4


def test_an_absolute_spec_ignores_the_offset(monkeypatch, capfd):
    real_date_calls(monkeypatch)
    wallclock.set_offset(-500)
    assert date.main(["-u", "-d", "2024-01-01 00:00", "+%s"]) == 0
    assert capfd.readouterr().out.strip() == "1704067200"


def test_bad_uses_are_refused_in_dates_words(monkeypatch, capfd):
    real_date_calls(monkeypatch)
    assert date.main(["-d", "no such date"]) == 1
    assert capfd.readouterr().err.strip() == "date: invalid date ‘no such date’"
    assert date.main(["-d", "now", "-s", "now"]) == 1
    assert "may not be used together" in capfd.readouterr().err
    assert date.main(["-s"]) == 1
    assert wallclock.offset() == 0.0


def test_a_file_time_goes_to_the_real_date_unchanged(monkeypatch, tmp_path, capfd):
    calls = real_date_calls(monkeypatch)
    (tmp_path / "f").write_text("")
    assert date.main(["-r", str(tmp_path / "f"), "+%s"]) == 0
    assert calls == [[date.REAL_DATE, "-r", str(tmp_path / "f"), "+%s"]]


# -- sleep_until on the node's clock -----------------------------------------------------
class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_a_plain_sleep_is_not_moved_by_the_clock():
    clock, wake = Clock(), threading.Event()
    started = time.monotonic()
    assert daemon.pause(0.05, wake, 0.01, clock=clock)
    assert 0.04 < time.monotonic() - started < 3


def test_sleep_until_ends_within_a_tick_of_a_forward_step():
    clock, wake = Clock(), threading.Event()
    threading.Timer(0.05, lambda: setattr(clock, "t", 2000.0)).start()
    started = time.monotonic()
    assert daemon.pause(SleepUntil(1010.0, clock.t), wake, 0.02, clock=clock)
    assert time.monotonic() - started < 3  # not the 10 s it asked for (its clock stood still)


def test_sleep_until_stalls_by_a_backward_step_and_a_term_does_not_end_it():
    """PVE2.pm's sleep_until sleeps on after a signal (its loop of sleep(1)); the
    handler (shutdown_request) runs at once."""
    clock, wake, handled = Clock(), threading.Event(), []
    clock.t = 900.0  # stepped back 100 s right after it asked for 1010
    threading.Timer(0.1, wake.set).start()
    threading.Timer(0.4, lambda: setattr(clock, "t", 1010.0)).start()
    started = time.monotonic()
    assert daemon.pause(SleepUntil(1010.0, 1000.0), wake, 0.02, clock=clock,
                        on_signal=lambda: handled.append(time.monotonic() - started))
    assert 0.35 < time.monotonic() - started < 3  # slept on until the clock got there
    assert len(handled) == 1 and 0.08 < handled[0] < 0.35  # the handler ran at the TERM


def test_a_term_ends_a_plain_sleep_after_its_handler():
    clock, wake, handled = Clock(), threading.Event(), []
    threading.Timer(0.05, wake.set).start()
    started = time.monotonic()
    assert daemon.pause(5.0, wake, 0.01, on_signal=lambda: handled.append(True), clock=clock)
    assert time.monotonic() - started < 3 and handled == [True]
    assert not wake.is_set()  # the next sleep sleeps
