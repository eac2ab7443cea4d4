"""GuestFleet: one HA guest per node, read from `ha-manager status`, each with its own
safety invariants (the probes are not started here: no guest answers in a unit test)."""

from __future__ import annotations

import pytest

from harness.clock import Clock
from harness.errors import PvechaosError, WaitTimeout
from harness.guest_fleet import GuestFleet
from harness.invariants import Violation
from harness.timeline import Timeline
from tests.twins import FakeCluster, FakeLab, FakeNode

STATUS = ("quorum OK\n"
          "master node1 (active, Wed Nov 23 11:07:23 2016)\n"
          "lrm node1 (active, Wed Nov 23 11:07:19 2016)\n"
          "lrm node2 (maintenance mode, Wed Nov 23 11:07:21 2016)\n"
          "lrm node3 (active, Wed Nov 23 11:07:21 2016)\n"
          "service ct:100 (node1, started)\n"
          "service ct:101 (node1, started)\n"
          "service ct:102 (node3, relocate)\n")


def fleet(status: str = STATUS) -> GuestFleet:
    names = ("node1", "node2", "node3")
    lab = FakeLab(names=names)
    cluster = FakeCluster(*(FakeNode(n, lambda call: status) for n in names), lab=lab)
    return GuestFleet(lab, cluster, Timeline(Clock()), range(100, 103), slack_s=1.0)


def test_each_guest_has_its_own_recipe_probe_and_invariants():
    f = fleet()
    assert f.sids == ("ct:100", "ct:101", "ct:102")
    assert [m.probe.address for m in f.members] == ["198.18.0.20", "198.18.0.21",
                                                    "198.18.0.22"]
    assert len({id(m.invariants) for m in f.members}) == 3
    assert f.member("ct:101").guest.recipe.vmid == 101
    with pytest.raises(KeyError, match="ct:200"):
        f.member("ct:200")


def test_placements_and_what_a_node_holds_come_from_one_status():
    f = fleet()
    assert f.placements() == {"ct:100": ("node1", "started"), "ct:101": ("node1", "started"),
                              "ct:102": ("node3", "relocate")}
    assert f.on("node1") == ("ct:100", "ct:101")
    assert f.on("node2") == ()


def test_a_guest_missing_from_the_status_has_no_placement():
    f = fleet(STATUS.replace("service ct:102 (node3, relocate)\n", ""))
    assert f.placements()["ct:102"] is None


def test_waiting_for_placements_names_the_guests_not_there_yet():
    f = fleet()
    assert f.wait_placements({"ct:100": ("node1", "started")}, timeout_s=1)["ct:100"] == \
        ("node1", "started")
    with pytest.raises(WaitTimeout, match="ct:102"):
        f.wait_placements({"ct:102": ("node3", "started")}, timeout_s=0.3)


def test_violations_of_every_guest_are_handed_out_once():
    f = fleet()
    first = Violation("doubled_guest", "ct:100", "two boots at once")
    second = Violation("lost_write", "ct:102", "seq 7 acknowledged, not on disk")
    f.member("ct:100").invariants.violations.append(first)
    f.member("ct:102").invariants.violations.append(second)
    assert f.take_unreported() == [first, second]
    assert f.take_unreported() == []


def test_an_empty_fleet_is_refused():
    lab = FakeLab(names=("node1",))
    with pytest.raises(PvechaosError, match="at least one VMID"):
        GuestFleet(lab, FakeCluster(FakeNode("node1"), lab=lab), Timeline(Clock()), [],
                   slack_s=1.0)
