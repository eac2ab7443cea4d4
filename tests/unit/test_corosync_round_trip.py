"""Membership.answering (pvemu/quorum.py): the shared pmxcfs model's stand-in for CPG
delivery. A write waits for the local corosync to answer one request; a paused corosync
(here a fake libquorum whose call blocks) holds it, a gone one answers at once."""

from __future__ import annotations

import threading

from pvemu.quorum import CS_OK, Membership

CS_ERR_LIBRARY = 2


class FakeQuorumLib:
    def __init__(self) -> None:
        self.running = threading.Event()
        self.running.set()
        self.gone = False
        self.calls = 0
        self.finalized = 0

    def quorum_initialize(self, handle, callbacks, qtype) -> int:
        return CS_ERR_LIBRARY if self.gone else CS_OK

    def quorum_getquorate(self, handle, quorate) -> int:
        self.calls += 1
        self.running.wait(10)  # SIGSTOPped corosync: the IPC answer waits for SIGCONT
        return CS_ERR_LIBRARY if self.gone else CS_OK

    def quorum_finalize(self, handle) -> int:
        self.finalized += 1
        return CS_OK


def test_a_running_corosync_answers():
    lib = FakeQuorumLib()
    membership = Membership(lib)
    assert membership.answering(2.0)
    assert membership.answering(2.0)
    assert lib.calls == 2


def test_a_paused_corosync_holds_writers_until_the_bound_then_answers_them_on_resume():
    lib = FakeQuorumLib()
    membership = Membership(lib)
    assert membership.answering(2.0)
    lib.running.clear()  # SIGSTOP
    assert not membership.answering(0.2)
    assert not membership.answering(0.2)  # shares the call in flight
    held = []
    writer = threading.Thread(target=lambda: held.append(membership.answering(5.0)))
    writer.start()
    lib.running.set()  # SIGCONT
    writer.join(5)
    assert held == [True]
    assert membership.answering(2.0)


def test_a_gone_corosync_answers_at_once_and_is_reconnected_to():
    lib = FakeQuorumLib()
    membership = Membership(lib)
    assert membership.answering(2.0)
    lib.gone = True
    assert membership.answering(2.0)  # the call fails fast: no wait
    assert lib.finalized == 1
    lib.gone = False
    assert membership.answering(2.0)
