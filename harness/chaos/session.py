"""Chaos schedules on one lab, each with HA guests of its own.

Every schedule gets fresh guests (new VMIDs, so fresh write logs and invariants: a
finding of one run never shows in the next), one per node by default, placed round the
nodes, probed and checked all the time; after the run they are removed again. The
verdict is judged from the timeline once the guests' last invariant check is in.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from harness.chaos.judge import Verdict, judge
from harness.chaos.runner import CALM_TIMEOUT_S, ChaosRunner, RunRecord
from harness.chaos.schedule import Schedule
from harness.errors import ConfigError
from harness.expectations import ClusterConstants
from harness.faults import FaultInjector
from harness.guest_fleet import GuestFleet
from harness.timeline import Timeline

log = logging.getLogger("pvechaos.chaos")


@dataclass
class Outcome:
    schedule: Schedule
    record: RunRecord
    verdict: Verdict
    left: list[str]  # guests the cleanup could not remove, with the commands to do it


class ChaosSession:
    def __init__(self, faults: FaultInjector, timeline: Timeline, constants: ClusterConstants,
                 *, first_vmid: int = 100, invariant_slack_s: float = 3.0,
                 set_up_timeout_s: float = 180.0, calm_timeout_s: float = CALM_TIMEOUT_S
                 ) -> None:
        self.faults, self.timeline, self.c = faults, timeline, constants
        self.lab, self.cluster = faults.lab, faults.cluster
        self.slack_s, self.set_up_timeout_s = invariant_slack_s, set_up_timeout_s
        self.calm_timeout_s = calm_timeout_s
        self._vmids = itertools.count(first_vmid)  # fresh VMIDs for every schedule
        self.outcomes: list[Outcome] = []

    def run(self, schedule: Schedule) -> Outcome:
        names = sorted(self.cluster.names)
        vmids = [next(self._vmids) for _ in range(schedule.guests)]
        try:
            fleet = GuestFleet(self.lab, self.cluster, self.timeline, vmids,
                               slack_s=self.slack_s)
        except ConfigError as exc:
            raise ConfigError(f"no room for {schedule.guests} more guests: {exc}",
                              hint="run fewer schedules on one lab, or a larger "
                                   "--lab-subnet") from None
        placement = {m.sid: names[n % len(names)] for n, m in enumerate(fleet.members)}
        log.info("chaos: guests %s", ", ".join(f"{s} on {n}" for s, n in placement.items()))
        with fleet:
            fleet.set_up(placement, timeout_s=self.set_up_timeout_s)
            runner = ChaosRunner(self.faults, fleet, self.timeline, self.c,
                                 calm_timeout_s=self.calm_timeout_s)
            record = runner.run(schedule)
        record.end_t = self.timeline.clock.now()  # the guests' last check included
        verdict = judge(self.timeline.events(), record)
        left = [x for x in (m.guest.remove() for m in fleet.members) if x]
        outcome = Outcome(schedule, record, verdict, left)
        self.outcomes.append(outcome)
        return outcome
