"""A chaos schedule on the real embedded lab, then its as-run file replayed: the same
faults, in the same order, on the same nodes, as the timeline shows them; both judged
green (recoveries inside PVE's windows, no invariant broken, the cluster whole)."""

from __future__ import annotations

import itertools

from harness.chaos.generate import generate
from harness.chaos.schedule import loads
from harness.events import FaultBegin, NodeFault
from harness.timeline import EventKind
from tests.integration.chaos_lab import chaos_lab

FAULTS = (EventKind.FAULT_POWER_CUT, EventKind.FAULT_BEGIN)


def faults_seen(timeline, record) -> list[tuple[str, str]]:
    """(fault, node) of every fault one run began, in timeline order."""
    seen = []
    for e in timeline.events(FAULTS, after=record.start_t):
        if e.t > record.end_t:
            break
        p = e.payload
        if isinstance(p, FaultBegin):
            seen.append((p.fault, p.node))
        elif isinstance(p, NodeFault):
            seen.append((e.kind.value, p.node))
    return seen


def test_a_schedule_replayed_from_its_file_repeats_its_faults_on_the_same_nodes():
    with chaos_lab("chrep", "198.18.164.0/24") as lab:
        # seed 13 plans a clock step, a power cut and a degradation (60 s: the CI's time)
        schedule = generate(13, lab.cluster.names, lab.constants, duration_s=60,
                            mix={"power_cut": 1, "degrade": 1, "clock_step": 1},
                            roles=["guest-node", "any", "non-master"])
        assert len(schedule.items) >= 3 and "power_cut" in {i.kind for i in schedule.items}
        first = lab.session.run(schedule)
        assert first.verdict.ok, first.verdict.findings
        replay = loads(first.record.as_run().dumps())
        assert all(i.nodes for i in replay.items)
        second = lab.session.run(replay)
        assert second.verdict.ok, second.verdict.findings
        once, again = (faults_seen(lab.timeline, o.record) for o in (first, second))
        assert once and once == again, "\n".join(
            f"{a!s:45} {b!s}" for a, b in itertools.zip_longest(once, again))
        assert [r.item.nodes for r in second.record.ran] == \
            [r.item.nodes for r in first.record.ran]
        assert not first.left and not second.left
        assert lab.faults.leftovers() == {}  # every fault of both runs was undone
