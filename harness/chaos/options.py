"""The chaos options of the pytest plugin (scenarios/test_chaos.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.chaos.generate import DEFAULT_MIX, parse_mix
from harness.chaos.schedule import ROLES, ScheduleError
from harness.errors import ConfigError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos chaos", "chaos schedules and soaks (marker `chaos`)")
    group.addoption("--chaos-seed", type=int, default=None, metavar="N",
                    help="plan the schedule from this seed (default: one from the clock, "
                         "printed and written to the schedule file)")
    group.addoption("--chaos-duration", type=float, default=600.0, metavar="S",
                    help="length of one schedule, real seconds (default: %(default)s)")
    group.addoption("--chaos-mix", default=None, metavar="KIND=W,...",
                    help="fault kinds and weights (default: " + ",".join(
                        f"{k}={w:g}" for k, w in DEFAULT_MIX.items()) + ")")
    group.addoption("--chaos-roles", default=None, metavar="ROLE,...",
                    help=f"aim faults only at these roles ({', '.join(ROLES)})")
    group.addoption("--chaos-concurrency", type=int, default=None, metavar="N",
                    help="faults at once (default: as many nodes as the cluster can lose "
                         "and stay quorate, at least 1)")
    group.addoption("--chaos-allow-quorum-loss", action="store_true", default=False,
                    help="let node-losing faults overlap past what keeps quorum")
    group.addoption("--chaos-guests", type=int, default=None, metavar="N",
                    help="HA guests per schedule (default: one per node)")
    group.addoption("--chaos-schedule", type=Path, default=None, metavar="FILE",
                    help="replay this schedule file (a plan, or a run's as-run or shrunk "
                         "file) instead of planning one")
    group.addoption("--chaos-soak", type=float, default=None, metavar="S",
                    help="soak: schedules of --chaos-duration back to back for S real "
                         "seconds, with a summary table")
    group.addoption("--chaos-go-on", action="store_true", default=False,
                    help="soak on after a safety finding (default: stop at the first)")
    group.addoption("--chaos-shrink", type=int, default=0, metavar="N",
                    help="after a finding, try up to N shorter schedules and write the "
                         "shortest that still fails as a replay file (default: off)")
    group.addoption("--chaos-out", type=Path, default=Path("reports/chaos"), metavar="DIR",
                    help="schedule, as-run, verdict, summary and replay files "
                         "(default: %(default)s)")


@dataclass(frozen=True)
class ChaosOptions:
    seed: int | None
    duration_s: float
    mix: dict[str, float] | None
    roles: tuple[str, ...] | None
    concurrency: int | None
    allow_quorum_loss: bool
    guests: int | None
    schedule: Path | None
    soak_s: float | None
    go_on: bool
    shrink: int
    out: Path


def chaos_options(config: pytest.Config) -> ChaosOptions:
    """The options, checked (a bad one is a ConfigError naming the fix)."""
    get = config.getoption
    roles = get("chaos_roles")
    role_list = tuple(r.strip() for r in roles.split(",") if r.strip()) if roles else None
    if role_list and any(r not in ROLES for r in role_list):
        raise ScheduleError(f"--chaos-roles {roles!r}: unknown role",
                            hint=f"roles are {', '.join(ROLES)}")
    for name in ("chaos_duration", "chaos_soak"):
        value = get(name)
        if value is not None and value <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} {value:g} must be > 0")
    for name in ("chaos_concurrency", "chaos_guests"):
        value = get(name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} {value} must be at least 1")
    return ChaosOptions(
        seed=get("chaos_seed"), duration_s=get("chaos_duration"),
        mix=parse_mix(get("chaos_mix")) if get("chaos_mix") else None, roles=role_list,
        concurrency=get("chaos_concurrency"),
        allow_quorum_loss=get("chaos_allow_quorum_loss"), guests=get("chaos_guests"),
        schedule=get("chaos_schedule"), soak_s=get("chaos_soak"), go_on=get("chaos_go_on"),
        shrink=get("chaos_shrink"), out=get("chaos_out"))


SUMMARY = pytest.StashKey[list]()  # the chaos runs' summaries, printed at the end


def remember(config: pytest.Config, text: str) -> None:
    """A summary for the terminal (and CI's log): printed after the test results."""
    config.stash.setdefault(SUMMARY, []).append(text)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    for text in config.stash.get(SUMMARY, []):
        terminalreporter.section("pvechaos chaos")
        terminalreporter.write_line(text)
