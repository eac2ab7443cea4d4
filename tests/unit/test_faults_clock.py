"""Clock faults: the exact commands sent to a node, and those commands run by a real shell
against a stand-in `date` (in a private /run, without CAP_SYS_TIME: nothing here can step
the host's clock)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from harness import faults_clock, node_command
from harness.clock import Clock
from harness.errors import PvechaosError
from harness.events import FaultBegin
from harness.faults import FaultInjector
from harness.faults_clock import (
    START_TIME_DAEMONS,
    STOP_TIME_DAEMONS,
    step_command,
    step_spec,
    strobe_command,
)
from harness.lab_api import Capability
from harness.timeline import EventKind, Timeline
from tests.twins import FakeCluster, FakeLab, FakeNode


def test_a_step_is_relative_to_the_nodes_now_in_both_directions():
    assert step_spec(90) == "now + 90 seconds"
    assert step_spec(-7.5) == "now - 7.5 seconds"
    assert step_spec(0.25) == "now + 0.25 seconds"


def test_the_step_command_exactly():
    cmd = step_command(90, "t1")
    marker = "/run/pvechaos-clock/step.t1"
    assert cmd.fault == "clock.step" and cmd.detail == "+90 s"
    assert cmd.apply == (f"{STOP_TIME_DAEMONS}; echo 'now - 90 seconds' > {marker} && "
                         f"date -s 'now + 90 seconds' >/dev/null || "
                         f"{{ rm -f {marker}; exit 1; }}")
    assert cmd.undo == (f"if [ -f {marker} ]; then date -s 'now - 90 seconds' >/dev/null "
                        f"&& rm -f {marker}; fi; {START_TIME_DAEMONS}")
    assert step_command(-30, "t2").detail == "-30 s"


def test_time_daemons_are_stopped_if_active_and_started_when_no_clock_fault_is_left():
    assert STOP_TIME_DAEMONS.startswith("mkdir -p /run/pvechaos-clock; for u in chrony ")
    assert 'systemctl is-active --quiet "$u"' in STOP_TIME_DAEMONS
    assert "echo \"$u\" >> /run/pvechaos-clock/stopped-time-daemons" in STOP_TIME_DAEMONS
    assert "-name 'step.*' -o -name 'strobe.*.pid'" in START_TIME_DAEMONS
    assert 'systemctl start "$u"' in START_TIME_DAEMONS


def test_the_strobe_command_is_a_bounded_background_loop():
    cmd = strobe_command(30, 2, 10, "s1")
    assert cmd.fault == "clock.strobe"
    assert cmd.detail == "±30 s every 2 s for 10 s (3 pairs)"
    assert "setsid -f sh -c" in cmd.apply and "while [ $i -lt 3 ]" in cmd.apply
    assert "date -s '\"'\"'now + 30 seconds'\"'\"'" in cmd.apply
    assert "/run/pvechaos-clock/strobe.s1.pid" in cmd.undo
    assert "kill -TERM" in cmd.undo and cmd.undo.endswith("[ $bad = 0 ]")


@pytest.mark.parametrize("bad", [0, float("nan"), True, "5"])
def test_a_meaningless_step_is_refused(bad):
    with pytest.raises(PvechaosError):
        step_command(bad, "x")


def test_a_strobe_beyond_its_bound_or_without_a_period_is_refused():
    with pytest.raises(PvechaosError, match="at most"):
        strobe_command(5, 0.001, 1e6, "x")
    with pytest.raises(PvechaosError, match="period_s"):
        strobe_command(5, 0, 10, "x")


def test_the_verbs_run_on_the_node_and_are_recorded_as_clock_faults():
    nodes = [FakeNode(n) for n in ("node1", "node2")]
    lab = FakeLab(names=("node1", "node2"), capabilities=Capability.POWER)
    timeline = Timeline(Clock())
    faults = FaultInjector(lab, timeline, FakeCluster(*nodes, lab=lab))
    step = faults.clock_step("node2", 60)
    strobe = faults.clock_strobe("node1", 5, 1, 4)
    assert [e.payload for e in timeline.events(EventKind.FAULT_BEGIN)] == [
        FaultBegin("clock.step", "node2", "+60 s"),
        FaultBegin("clock.strobe", "node1", "±5 s every 1 s for 4 s (2 pairs)")]
    assert "date -s 'now + 60 seconds'" in nodes[1].calls[0].argv[0]
    assert (step.kind, strobe.kind) == ("clock.step", "clock.strobe")
    assert faults.undo_all() == []
    assert "strobe." in nodes[0].calls[-1].argv[0]
    assert "date -s 'now - 60 seconds'" in nodes[1].calls[-1].argv[0]


def test_the_sweep_is_registered():
    assert "faults_clock" in node_command.SWEEPS
    assert node_command.SWEEPS["faults_clock"].endswith("; true")


# -- the commands in a real shell --------------------------------------------------------
FAKE_DATE = textwrap.dedent("""\
    #!/bin/sh
    # stand-in for `date -s "now +|- N seconds"`: the offset lives in $CLOCK
    [ "$1" = -s ] || exit 2
    echo "$2" >> "$CLOCK.log"
    set -- $2
    awk -v o="$(cat "$CLOCK" 2>/dev/null || echo 0)" -v s="$2" -v n="$3" \\
        'BEGIN { print (s == "+" ? o + n : o - n) }' > "$CLOCK.new" && mv "$CLOCK.new" "$CLOCK"
    """)
FAKE_SYSTEMCTL = textwrap.dedent("""\
    #!/bin/sh
    echo "$*" >> "$CLOCK.systemctl"
    [ "$1" = is-active ] && [ "$3" = chrony ] && exit 0
    exit 0
    """)


@pytest.fixture
def shell(tmp_path):
    """Run a command as a node would, with the stand-ins first on PATH, in a private /run
    and without CAP_SYS_TIME."""
    if not (shutil.which("unshare") and shutil.which("setpriv")):
        pytest.skip("needs unshare and setpriv")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("date", FAKE_DATE), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    clock = tmp_path / "clock"

    def run(*commands: str, between: float = 0.0) -> subprocess.CompletedProcess:
        script = f"mount -t tmpfs tmpfs /run && {commands[0]}"
        for more in commands[1:]:
            script += f"; echo rc=$?; sleep {between}; {more}"
        return subprocess.run(
            ["setpriv", "--bounding-set", "-sys_time", "unshare", "--mount", "sh", "-c",
             script], capture_output=True, text=True, timeout=30,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CLOCK": str(clock)}, check=False)

    run.clock = clock  # type: ignore[attr-defined]
    return run


def offset(clock: Path) -> float:
    return float(clock.read_text()) if clock.exists() else 0.0


def test_a_step_and_its_undo_in_a_shell_stop_and_restart_the_time_daemon(shell):
    cmd = step_command(90, "t1")
    result = shell(cmd.apply, "cat /run/pvechaos-clock/step.t1", cmd.undo,
                   "ls /run/pvechaos-clock")
    assert result.returncode == 0, result.stderr
    assert "now - 90 seconds" in result.stdout
    assert offset(shell.clock) == 0.0
    assert (shell.clock.parent / "clock.log").read_text().splitlines() == \
        ["now + 90 seconds", "now - 90 seconds"]
    calls = (shell.clock.parent / "clock.systemctl").read_text()
    assert "stop chrony" in calls and "start chrony" in calls


def test_an_undo_after_a_reboot_does_not_step_back(shell):
    cmd = step_command(90, "t1")  # each run has a fresh /run: as a node after a reboot
    assert shell(cmd.apply).returncode == 0
    assert shell(cmd.undo).returncode == 0
    assert offset(shell.clock) == 90.0


def test_a_strobe_flips_and_its_undo_leaves_the_clock_where_it_was(shell):
    cmd = strobe_command(30, 0.2, 60, "s1")
    started = time.monotonic()
    result = shell(cmd.apply, cmd.undo, "ls /run/pvechaos-clock", between=0.5)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    flips = (shell.clock.parent / "clock.log").read_text().splitlines()
    assert len(flips) >= 2 and len(flips) % 2 == 0  # ended after a whole pair
    assert flips[:2] == ["now + 30 seconds", "now - 30 seconds"]
    assert offset(shell.clock) == 0.0
    assert "strobe.s1.pid" not in result.stdout


def test_a_strobe_ends_by_itself_after_its_pairs(shell):
    cmd = strobe_command(5, 0.1, 0.4, "s2")  # 2 pairs
    result = shell(cmd.apply, "sleep 1.5; ls /run/pvechaos-clock", cmd.undo)
    assert result.returncode == 0, result.stderr
    assert (shell.clock.parent / "clock.log").read_text().count("now + 5 seconds") == 2
    assert offset(shell.clock) == 0.0


def test_the_sweep_undoes_what_a_killed_run_left(shell):
    step, strobe = step_command(-40, "t3"), strobe_command(10, 0.3, 60, "s3")
    result = shell(f"{step.apply}; {strobe.apply}", node_command.SWEEPS["faults_clock"],
                   "ls /run/pvechaos-clock", between=0.4)
    assert result.returncode == 0, result.stderr
    assert offset(shell.clock) == 0.0
    assert "step." not in result.stdout and "strobe." not in result.stdout
    assert "start chrony" in (shell.clock.parent / "clock.systemctl").read_text()


def test_the_sweep_succeeds_when_there_is_nothing(shell):
    assert shell(node_command.SWEEPS["faults_clock"]).returncode == 0
    assert faults_clock.STATE == "/run/pvechaos-clock"


def test_leftovers_name_a_clock_fault_in_force_and_nothing_once_ended(shell):
    step = step_command(-40, "t4")
    probe = node_command.LEFTOVERS["faults_clock"]
    result = shell(step.apply, probe, step.undo, probe)
    assert result.returncode == 0, result.stderr
    marker = "clock fault marker /run/pvechaos-clock/step.t4"
    assert result.stdout.count(marker) == 1, result.stdout
    assert result.stdout.rstrip().endswith("rc=0"), result.stdout  # nothing after the undo
