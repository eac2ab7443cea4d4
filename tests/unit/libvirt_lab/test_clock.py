"""Stepping a reverted guest's clock (lab/libvirt/clock.py), against a guest stood in
for: its clock is this host's plus an offset, and each command's way there and back
takes the time the test says (lopsided round trips are what a loaded TCG guest gives)."""

from __future__ import annotations

import re

import pytest

from harness.errors import LabError
from harness.ssh import CommandResult
from lab.libvirt import clock


class FakeGuest:
    """A guest clock ``offset`` s from a host clock that only moves when a command
    travels: ``trips`` gives (there, back) for each command in turn, then (0.01, 0.01)."""

    def __init__(self, offset: float, trips: list[tuple[float, float]]) -> None:
        self.host_now = 1_000_000.0
        self.offset = offset
        self.trips = list(trips)
        self.commands: list[str] = []

    def now(self) -> float:
        return self.host_now

    def run(self, command: str, *, timeout_s: float) -> CommandResult:
        self.commands.append(command)
        there, back = self.trips.pop(0) if self.trips else (0.01, 0.01)
        self.host_now += there
        stdout = ""
        if command.startswith("date +%s.%N"):
            stdout = f"{self.host_now + self.offset:.6f}\n"
        elif match := re.match(r"date -u -s @([0-9.]+)", command):
            self.offset = float(match.group(1)) - self.host_now
        self.host_now += back
        return CommandResult(node="n", command=command, rc=0, stdout=stdout, stderr="",
                             duration_s=there + back)


def test_the_offset_comes_from_the_shortest_round_trip():
    # a lopsided 2 s round trip puts its midpoint 0.9 s off; the 0.02 s ones do not
    guest = FakeGuest(offset=-8.0, trips=[(0.1, 1.9), (0.01, 0.01), (0.5, 0.5)])
    offset = clock.measure(guest, "node1", now=guest.now)
    assert offset.seconds == pytest.approx(-8.0, abs=0.011)
    assert offset.error_s == pytest.approx(0.01)


def test_a_step_that_missed_is_made_again_until_it_holds():
    # the first step's command waits 1.5 s on its way there (the host was busy): it lands
    # 1.5 s behind; the check sees it and the second step lands
    guest = FakeGuest(offset=-9.0, trips=[(0.01, 0.01)] * 3 + [(1.5, 0.01)])
    offset = clock.step(guest, "node3", now=guest.now)
    assert abs(offset.seconds) <= clock.TOLERANCE_S
    assert abs(guest.offset) <= clock.TOLERANCE_S
    assert sum(c.startswith("date -u -s") for c in guest.commands) == 2


def test_a_guest_already_on_time_is_not_stepped():
    guest = FakeGuest(offset=0.05, trips=[])
    clock.step(guest, "node2", now=guest.now)
    assert not any(c.startswith("date -u -s") for c in guest.commands)


def test_a_guest_that_never_holds_is_stepped_a_bounded_number_of_times(capsys):
    # every step command is delayed 2 s on its way: every step misses
    guest = FakeGuest(offset=-9.0, trips=[(0.01, 0.01)] * 3 + [(2.0, 0.01)] + [(0.01, 0.01)] * 3
                      + [(2.0, 0.01)] + [(0.01, 0.01)] * 3 + [(2.0, 0.01)])
    offset = clock.step(guest, "node1", now=guest.now)
    assert sum(c.startswith("date -u -s") for c in guest.commands) == clock.STEPS
    assert offset.seconds == pytest.approx(-2.0, abs=0.05)
    assert "node1's clock is -1.99 s" in capsys.readouterr().out


def test_a_clock_that_cannot_be_read_is_an_error_naming_the_node():
    class Broken:
        def run(self, command, *, timeout_s):
            return CommandResult(node="node2", command=command, rc=127, stdout="",
                                 stderr="date: not found", duration_s=0.01)

    with pytest.raises(LabError, match="node2: reading the clock failed: date: not found"):
        clock.measure(Broken(), "node2")


@pytest.mark.parametrize("chrony", ["answers", "fails", "missing"])
def test_the_clock_script_sets_the_hosts_time_whatever_chrony_does(tmp_path, chrony):
    """Run for real with `date` and `chronyc` stood in for: the date is set from the
    host's time first, chrony is asked afterwards and may fail or be absent."""
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "date").write_text(f'#!/bin/sh\necho "date $*" >> {calls}\n')
    if chrony != "missing":
        rc = 0 if chrony == "answers" else 1
        (bin_dir / "chronyc").write_text(f'#!/bin/sh\necho "chronyc $*" >> {calls}\nexit {rc}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    result = subprocess.run(["/bin/sh", "-c", clock.clock_script(1764115200.25)],
                            env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    lines = calls.read_text().splitlines()
    assert lines[0] == "date -u -s @1764115200.250"
    assert lines[1:] == ([] if chrony == "missing" else ["chronyc -a makestep"])
