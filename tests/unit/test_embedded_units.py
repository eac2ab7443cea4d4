"""Units of the embedded node (lab/embedded/units.py): what a unit does when pid1 reaps
its main process, per PVE's shipped restart policies (pve-faults.md §2.1)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from lab.embedded.units import Service


def unit(tmp_path, *, restart: bool, argv=("sleep", "30"), **kw) -> Service:
    return Service("pve-cluster", list(argv), str(tmp_path / "unit.log"),
                   restart_on_failure=restart, **kw)


def die(service: Service, signo: int | None) -> None:
    """Kill (or, with None, wait for) the main process and report it as pid1 does."""
    assert service.proc is not None
    if signo is not None:
        os.kill(service.proc.pid, signo)
    _, status = os.waitpid(service.proc.pid, 0)
    service.reaped(status)


@pytest.mark.parametrize("signo", [signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT])
def test_on_failure_restarts_after_a_killing_signal_after_restart_sec(tmp_path, signo):
    service = unit(tmp_path, restart=True, restart_s=0.1)
    assert service.start() == "ok"
    pid = service.proc.pid
    die(service, signo)
    assert service.state() == "activating" and service.main_pid() is None
    due = service.restart_due(time.monotonic())
    assert due is not None and 0 < due <= 0.1
    assert service.auto_restart() == "ok"
    assert service.state() == "active" and service.main_pid() not in (None, pid)
    log = (tmp_path / "unit.log").read_text()
    assert f"Main process exited, code=killed, status={int(signo)}/" \
        f"{signo.name.removeprefix('SIG')}" in log
    assert "Scheduled restart job, restart counter is at 1." in log
    service.stop()


@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                   signal.SIGPIPE])
def test_on_failure_does_not_restart_after_a_clean_signal(tmp_path, signo):
    service = unit(tmp_path, restart=True)
    service.start()
    die(service, signo)
    assert service.restart_due(time.monotonic()) is None
    assert service.state() == "inactive"


def test_on_failure_restarts_after_a_non_zero_exit_but_not_after_exit_0(tmp_path):
    failing = unit(tmp_path, restart=True, argv=("sh", "-c", "exit 3"))
    failing.start()
    die(failing, None)
    assert failing.state() == "activating" and failing.result == "exit-code"
    clean = unit(tmp_path, restart=True, argv=("true",))
    clean.start()
    die(clean, None)
    assert clean.state() == "inactive"


def test_a_unit_without_restart_stays_failed_after_sigkill(tmp_path):
    service = unit(tmp_path, restart=False)
    service.start()
    die(service, signal.SIGKILL)
    assert service.restart_due(time.monotonic()) is None
    assert service.state() == "failed"
    assert "Active: failed (Result: signal)" in service.status()


def test_stop_is_never_followed_by_a_restart_and_resumes_a_paused_process(tmp_path):
    service = unit(tmp_path, restart=True)
    service.start()
    assert service.kill(signal.SIGSTOP) == "ok"
    assert service.stop() == "ok"  # SIGCONT first, so the TERM is seen at once
    assert service.state() == "inactive" and service.restart_due(time.monotonic()) is None


def test_the_sixth_start_within_the_interval_hits_the_start_limit(tmp_path):
    service = unit(tmp_path, restart=True, start_limit_s=60.0)
    for _ in range(5):
        assert service.start() == "ok"
        die(service, signal.SIGKILL)
    assert service.auto_restart().startswith("error:")
    assert service.state() == "failed" and service.result == "start-limit-hit"
    assert "Start request repeated too quickly." in (tmp_path / "unit.log").read_text()


def test_kill_of_a_unit_without_a_main_process_is_an_error(tmp_path):
    assert unit(tmp_path, restart=False).kill(signal.SIGKILL).startswith("error:")
