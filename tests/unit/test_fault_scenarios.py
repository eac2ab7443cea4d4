"""The fault scenarios' own rules, without a lab: the daemon-fault table covers every
daemon and fault once with PVE's outcome, and the collection hook skips a story whose
FaultInjector verbs are missing, and the extended items without --all-faults."""

from __future__ import annotations

import itertools

import pytest

from harness import fixtures
from harness.expectations import NO_RESET, RESET
from scenarios.test_daemon_faults import CASES, STALLED, WATCHDOG

UNITS = ("corosync", "pve-cluster", "pve-ha-crm", "pve-ha-lrm", "watchdog-mux")


def test_every_daemon_and_fault_has_one_case_with_a_pve_outcome():
    assert sorted((c.unit, c.fault) for c in CASES) == sorted(
        itertools.product(UNITS, ("kill", "stop", "pause")))
    for case in CASES:
        assert case.outcome in (RESET, NO_RESET), case
        assert (case.window in (WATCHDOG, STALLED)) == (case.outcome == RESET), case
        assert case.target in ("guest", "master", "idle"), case
        assert case.source.startswith("§"), case  # every outcome cites pve-faults
    assert any(c.default for c in CASES) and not all(c.default for c in CASES)


class FakeMark:
    def __init__(self, name: str, *args: object) -> None:
        self.name, self.args = name, args


class FakeItem:
    def __init__(self, *marks: FakeMark) -> None:
        self.marks, self.added = list(marks), []

    def iter_markers(self, name: str):
        return (m for m in self.marks if m.name == name)

    def get_closest_marker(self, name: str):
        return next(self.iter_markers(name), None)

    def add_marker(self, mark) -> None:
        self.added.append(mark)


class FakeConfig:
    def __init__(self, all_faults: bool) -> None:
        self.all_faults = all_faults

    def getoption(self, name: str) -> object:
        assert name == "all_faults"
        return self.all_faults


def skips(item: FakeItem) -> list[str]:
    return [m.kwargs["reason"] for m in item.added if m.name == "skip"]


@pytest.mark.parametrize("all_faults", [False, True])
def test_a_missing_verb_skips_always_and_extended_items_only_without_all_faults(all_faults):
    missing = FakeItem(FakeMark("needs_verbs", "power_cut", "no_such_verb"))
    present = FakeItem(FakeMark("needs_verbs", "power_cut"))
    extended = FakeItem(FakeMark("needs_verbs", "power_cut"), FakeMark("extended"))
    fixtures.pytest_collection_modifyitems(FakeConfig(all_faults),
                                           [missing, present, extended])
    assert skips(missing) == ["FaultInjector has no no_such_verb: the fault family's "
                              "harness/faults_*.py mixin is not in this checkout"]
    assert skips(present) == []
    assert skips(extended) == ([] if all_faults else
                               ["an extended fault story: run it with --all-faults"])
