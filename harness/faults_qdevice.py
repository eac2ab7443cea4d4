"""The QDevice arbiter lost and back (pve-operations.md §1.5): a lab verb under
Capability.QDEVICE, recorded on the timeline as a fault of the arbiter's address (a band
in the timeline picture), and undone at teardown like every fault.

What PVE's design says follows, on two nodes with ffsplit: both nodes stay quorate on 2
of 3 votes (the device votes NACK once disconnected); with a node lost as well, the
survivor holds 1 of 3 and loses quorum (its active LRM self-fences).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.events import FaultBegin, FaultEnd
from harness.lab_api import Capability, unsupported
from harness.steps import step
from harness.timeline import EventKind

if TYPE_CHECKING:
    from harness.faults import Fault

FAULT = "qnetd.lost"
DETAIL = "corosync-qnetd unreachable (TCP 5403)"


class QdeviceFaults:
    """Mixin of FaultInjector (harness/faults.py): the QDevice arbiter's verbs."""

    def _qnetd(self, verb: str) -> str:
        lab = self.lab  # type: ignore[attr-defined]
        if Capability.QDEVICE not in lab.capabilities:
            raise unsupported(lab.kind, verb, Capability.QDEVICE)
        address = lab.qnetd_address()
        assert address is not None, f"the {lab.kind} lab claims QDEVICE but has no qnetd"
        return address

    def qnetd_lost(self) -> Fault:
        """Every node loses the arbiter; undone at teardown or by qnetd_back()."""
        from harness.faults import Effect, Fault, Undo

        address = self._qnetd("qnetd_lost")
        with step(f"qnetd lost: {address}"):
            self.lab.qnetd_lost()  # type: ignore[attr-defined]
            event = self.timeline.record(  # type: ignore[attr-defined]
                EventKind.FAULT_BEGIN, "harness", FaultBegin(FAULT, address, DETAIL))
        self._said(f"fault begin: {FAULT} {address}")  # type: ignore[attr-defined]
        self._undo.append(Undo(Effect.QNETD, address))  # type: ignore[attr-defined]
        return Fault(FAULT, address, event)

    def qnetd_back(self) -> Fault:
        from harness.faults import Effect, Fault

        address = self._qnetd("qnetd_back")
        event = self._qnetd_restored(address)
        self._ended(Effect.QNETD, address)  # type: ignore[attr-defined]
        return Fault("qnetd.back", address, event)

    def _qnetd_restored(self, address: str):
        """The arbiter back, recorded (also FaultInjector's heal of Effect.QNETD)."""
        with step(f"qnetd back: {address}"):
            self.lab.qnetd_back()  # type: ignore[attr-defined]
            event = self.timeline.record(  # type: ignore[attr-defined]
                EventKind.FAULT_END, "harness", FaultEnd(FAULT, address, DETAIL))
        self._said(f"fault end: {FAULT} {address}")  # type: ignore[attr-defined]
        return event
