"""A formed embedded lab with the chaos pieces around it (the watchers, the fault verbs,
a chaos session), for the chaos self-tests; closed afterwards, leaving nothing behind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from harness.chaos.session import ChaosSession
from harness.clock import Clock
from harness.cluster import Cluster
from harness.expectations import ClusterConstants, read_constants
from harness.faults import FaultInjector
from harness.formation import bring_up
from harness.ha_watcher import HaWatcher
from harness.timeline import Timeline
from harness.timescale import Timescale
from harness.watchers import QuorumWatcher
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import running


@dataclass
class ChaosLab:
    cluster: Cluster
    timeline: Timeline
    faults: FaultInjector
    constants: ClusterConstants
    session: ChaosSession


@contextlib.contextmanager
def chaos_lab(name: str, subnet: str, *, timescale: float = 0.1,
              **options: object) -> Iterator[ChaosLab]:
    scale = Timescale(timescale)
    lab = EmbeddedLab(EmbeddedConfig(name=name, subnet=subnet, timescale=scale, **options))
    with running(lab) as cluster:
        bring_up(cluster, name)
        timeline = Timeline(Clock(scale))
        faults = FaultInjector(lab, timeline, cluster)
        constants = read_constants(cluster.nodes()[0], scale, len(cluster.names))
        with QuorumWatcher(cluster, timeline), HaWatcher(cluster, timeline):
            try:
                yield ChaosLab(cluster, timeline, faults, constants,
                               ChaosSession(faults, timeline, constants))
            finally:
                assert faults.undo_all() == []
