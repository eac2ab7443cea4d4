"""The QDevice arbiter lost and back (harness/faults_qdevice.py): a lab verb under
Capability.QDEVICE, recorded as a fault of the arbiter's address, undone at teardown, and
refused on a lab without a QDevice."""

from __future__ import annotations

import pytest

from harness.clock import Clock
from harness.errors import UnsupportedFault
from harness.events import FaultBegin, FaultEnd
from harness.faults import FaultInjector
from harness.lab_api import Capability
from harness.timeline import EventKind, Timeline
from tests.twins import FakeLab

QNETD = "198.18.0.10"  # the twin's arbiter


def setup(capabilities=Capability.POWER | Capability.QDEVICE):
    lab = FakeLab(capabilities, names=("node1", "node2"))
    timeline = Timeline(Clock())
    return FaultInjector(lab, timeline), lab, timeline


def test_qnetd_lost_is_recorded_and_brought_back_at_teardown():
    faults, lab, timeline = setup()
    fault = faults.qnetd_lost()
    assert (fault.kind, fault.target) == ("qnetd.lost", QNETD)
    assert lab.calls == [("qnetd_lost", "")]
    [begin] = timeline.events(EventKind.FAULT_BEGIN)
    assert begin.payload == FaultBegin("qnetd.lost", QNETD, "corosync-qnetd unreachable "
                                                           "(TCP 5403)")
    assert faults.undo_all() == []
    assert lab.calls[-1] == ("qnetd_back", "")
    [end] = timeline.events(EventKind.FAULT_END)
    assert end.payload == FaultEnd("qnetd.lost", QNETD, begin.payload.detail)


def test_qnetd_back_by_the_scenario_leaves_nothing_to_undo():
    faults, lab, timeline = setup()
    faults.qnetd_lost()
    faults.qnetd_back()
    assert faults.undo_all() == []
    assert lab.calls == [("qnetd_lost", ""), ("qnetd_back", "")]
    assert len(timeline.events(EventKind.FAULT_END)) == 1


def test_a_lab_without_a_qdevice_refuses_before_acting():
    faults, lab, timeline = setup(Capability.POWER)
    with pytest.raises(UnsupportedFault, match="(?s)cannot qnetd lost.*QDEVICE"):
        faults.qnetd_lost()
    with pytest.raises(UnsupportedFault, match="QDEVICE"):
        faults.qnetd_back()
    assert lab.calls == [] and timeline.events() == []
