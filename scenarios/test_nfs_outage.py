"""The shared NFS storage goes away under a running HA guest (pve-faults §8).

HA does not watch storage (§8.1: no storage reference in CRM, LRM or the resource
agents; health is "the guest's process exists"), so a storage stall triggers nothing:
no fence, no recovery, no reset; the service stays `started` where it is. The node's
`pvesm status` shows the storage inactive (§8.2). The guest's writes stall like an NFS
hard mount and carry on when the server is back: the write log goes on with no sequence
number lost or doubled, and no acknowledged write is missing (the invariants).

1. setup: a container under HA on the first node;
2. the guest's node cut from the storage server (``storage_cut``, every lab) for three
   CRM rounds and one LRM loop;
3. (extended) the storage server itself stops answering for every node
   (``storage_outage``, labs with Capability.STORAGE).

What the probe sees (the guest's service answering or not while its disk stalls) is
measured, not judged: PVE's design says nothing about it.
"""

from __future__ import annotations

import allure
import pytest

from harness.events import HaServiceState
from harness.expectations import first_start_bound
from harness.shared_storage import storage_state
from harness.timeline import EventKind
from harness.waits import NotYet, hold_for, wait_until

pytestmark = [pytest.mark.story, allure.epic("Faults"), allure.feature("Storage outage"),
              allure.severity(allure.severity_level.NORMAL),
              pytest.mark.extended,  # the main job keeps to ~5 min: .ci/faults runs it
              pytest.mark.needs_verbs("storage_cut"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

INACTIVE_BOUND_S = 60.0  # a bound for the wait, not a prediction (pvestatd's cycle + check)


@allure.story("Setup")
def test_setup_guest_under_ha(guest, story_nodes, constants, meter):
    guest.set_up(story_nodes.first, timeout_s=first_start_bound(constants))
    meter.wait_serving(f"{guest.sid} to answer", node=story_nodes.first, timeout_s=30)
    wait_until("the guest's first writes", guest.log_exists, timeout_s=30)


def last_seq(guest) -> int:
    report = guest.read_log()
    return max((b.last_seq for b in report.boots), default=0) if report else 0


def stall(name: str, cut, end, *, nodes, cluster, guest, resets, constants, timeline,
          metrics, probe, where: str) -> None:
    """Cut the storage (``cut()``), hold, judge HA's indifference, restore (``end()``),
    and check the guest's writes carry on; ``cut`` and ``end`` return when they acted,
    on the timeline's clock."""
    c = constants
    storage_id = cluster.lab.shared_storage().storage_id
    boots = {n: resets.boot(n) for n in nodes}
    before = last_seq(guest)
    t0 = cut()
    try:
        with allure.step(f"`pvesm status` on {nodes[0]}: {storage_id} not active"):
            node = cluster.node(nodes[0])
            wait_until(f"{storage_id} inactive on {nodes[0]}", lambda: (
                s := storage_state(node, storage_id)) != "active" or NotYet(s),
                timeout_s=INACTIVE_BOUND_S)
            metrics.record(f"{name}.time_to_storage_inactive", timeline.clock.now() - t0,
                           node=nodes[0])
        hold = 3 * c.crm_loop + c.lrm_loop
        with allure.step(f"HA does nothing for {hold:.1f} s: {guest.sid} stays started on "
                         f"{where}, no node resets"):
            def broke() -> str | None:
                for n, boot in boots.items():
                    if seen := resets.changed(n, boot):
                        return f"{n} reset: {seen}"
                for e in timeline.events(EventKind.HA_SERVICE_STATE, after=t0):
                    p = e.payload_of(HaServiceState)
                    if p.sid == guest.sid and (p.node, p.state) != (where, "started"):
                        return f"{e.source}'s view: {guest.sid} {p.state} on {p.node}"
                return None
            outcome = hold_for(timeline, t0 + hold, broke, "the storage cut")
            assert outcome is None, f"HA reacted to a storage outage: {outcome} (§8.1)"
        metrics.record(f"{name}.probe_downtime", probe.downtime(t0, timeline.clock.now()),
                       node=where, probe_up_at_end=bool(probe.up))
    finally:
        with allure.step("storage back"):
            restored = end()
    with allure.step("the guest's writes carry on, none lost or doubled"):
        wait_until("new records in the guest's write log", lambda: (
            s := last_seq(guest)) > before or NotYet(s), timeout_s=60)
        report = guest.read_log()
        assert report is not None and not report.forked and not report.gaps, report
        metrics.record(f"{name}.writes_resumed_after", timeline.clock.now() - restored,
                       node=where)
    assert probe.current is not None and probe.current.node == where, probe.current


@allure.story("The guest's node cut from the storage")
def test_storage_cut_of_the_guest_node(cluster, guest, faults, resets, constants,
                                      timeline, metrics, probe, settle):
    where = settle()
    faulted = []

    def cut() -> float:
        faulted.append(faults.storage_cut(where))
        return faulted[0].started.t

    def end() -> float:
        faults.end(faulted[0])
        return timeline.clock.now()
    stall("storage_cut", cut, end, nodes=[where], cluster=cluster, guest=guest,
          resets=resets, constants=constants, timeline=timeline, metrics=metrics,
          probe=probe, where=where)


@pytest.mark.extended
@allure.story("The storage server goes away")
def test_storage_server_outage(cluster, guest, faults, resets, constants, timeline,
                               metrics, probe, settle, require):
    require("STORAGE")
    where = settle()
    stall("storage_outage", lambda: faults.storage_outage().started.t,
          lambda: faults.storage_restore().started.t,
          nodes=list(cluster.names), cluster=cluster, guest=guest, resets=resets,
          constants=constants, timeline=timeline, metrics=metrics, probe=probe,
          where=where)
