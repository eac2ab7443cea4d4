"""Shared helpers for the HA state machine tests (fake time only)."""

from __future__ import annotations

import pytest

from pvemu.ha.sim import SimCluster
from pvemu.timing import Timing


class FakeEnv:
    """Just enough of HaEnv for NodeStatus, select and the resource agent."""

    def __init__(self, nodename: str = "node1") -> None:
        self.nodename = nodename
        self.timing = Timing(1.0)
        self.flavour = 8
        self.bugs: frozenset[str] = frozenset()
        self.t = 1000.0
        self.logs: list[str] = []
        self.notes: list[str] = []
        self.agent_locks: dict[str, bool] = {}

    def now(self) -> float:
        return self.t

    def log(self, level: str, message: str) -> None:
        self.logs.append(message)

    def send_notification(self, subject: str, text: str) -> None:
        self.notes.append(subject)

    def get_ha_agent_lock(self, node: str | None = None) -> bool:
        return self.agent_locks.get(node or self.nodename, False)


@pytest.fixture
def fake_env() -> FakeEnv:
    return FakeEnv()


def settled(**kw) -> SimCluster:
    """A cluster that has run 300 s: master elected, every service started."""
    cluster = SimCluster(**kw)
    cluster.run_until(300)
    return cluster


def transitions(cluster: SimCluster, sid: str, after: float = 0.0) -> list[tuple[str, str]]:
    return [(a, b) for t, a, b in cluster.service_transitions(sid) if t >= after]
