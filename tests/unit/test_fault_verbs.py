"""Fault verbs beyond power: refused on labs without the capability, recorded on the
timeline, undone at teardown, and never aimed outside the lab."""

from __future__ import annotations

import pytest

from harness.clock import Clock
from harness.errors import InterlockError, UnsupportedFault
from harness.faults import Effect, FaultInjector
from harness.lab_api import Capability
from harness.timeline import EventKind, Timeline
from tests.twins import FakeLab


def injector(capabilities: Capability) -> tuple[FaultInjector, FakeLab, Timeline]:
    lab, timeline = FakeLab(capabilities), Timeline(Clock())
    return FaultInjector(lab, timeline), lab, timeline


def test_a_lab_without_the_capability_refuses_the_verb_before_anything_happens():
    faults, lab, timeline = injector(Capability.POWER)
    with pytest.raises(UnsupportedFault, match="the fake lab cannot freeze"):
        faults.freeze("node1")
    assert lab.calls == [] and timeline.events() == []


def test_verbs_are_recorded_and_their_effects_undone_newest_first():
    faults, lab, timeline = injector(Capability.POWER | Capability.FREEZE
                                     | Capability.PARTITION | Capability.SHUTDOWN
                                     | Capability.RESET)
    faults.freeze("node1")
    faults.link_down("node2")
    faults.shutdown("node3")
    faults.reset("node1")
    assert [e.kind for e in timeline.events()] == [
        EventKind.FAULT_FREEZE, EventKind.FAULT_LINK_DOWN, EventKind.FAULT_SHUTDOWN,
        EventKind.FAULT_RESET]
    assert faults.undo_all() == []
    assert lab.calls[4:] == [("power_on", "node3"), ("link_up", "node2"), ("thaw", "node1")]


def test_a_thaw_or_link_up_by_the_scenario_leaves_nothing_to_undo():
    faults, lab, _ = injector(Capability.FREEZE | Capability.PARTITION)
    faults.freeze("node1")
    faults.thaw("node1")
    faults.link_down("node2")
    faults.link_up("node2")
    lab.calls.clear()
    assert faults.undo_all() == [] and lab.calls == []


def test_a_node_outside_the_lab_is_refused():
    faults, lab, _ = injector(Capability.FREEZE)
    with pytest.raises(InterlockError, match="not a node of this lab"):
        faults.freeze("pve7")
    assert lab.calls == []


def test_a_power_cut_is_undone_by_power_on_and_a_power_on_by_the_scenario_ends_it():
    faults, lab, _ = injector(Capability.POWER | Capability.PARTITION)
    faults.power_cut("node1")
    faults.link_down("node2")
    faults.power_cut("node3")
    faults.power_on("node3")
    assert faults.undo_all() == []
    assert lab.calls[4:] == [("link_up", "node2"), ("power_on", "node1")]
    assert faults.undo_all() == [] and len(lab.calls) == 6  # nothing left the second time


def test_every_effect_a_fault_leaves_has_a_verb_that_ends_it():
    faults, _, _ = injector(Capability.POWER)
    assert {effect: faults._heal(effect).__name__ for effect in Effect} == {
        Effect.POWER: "power_on", Effect.FREEZE: "thaw", Effect.LINK: "link_up",
        Effect.IN_NODE: "in_node",  # an in-node fault carries its own undo command
        Effect.STORAGE: "_storage_restored", Effect.QNETD: "_qnetd_restored"}
