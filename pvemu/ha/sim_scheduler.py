"""The simulator's fake clock: daemon generators and callbacks on one queue of wake times.

Takes the place of the run loop of PVE's simulator (PVE::HA::Sim::TestHardware `run`,
pve-model.md §13.4) but not its rounds: there every daemon iteration costs one simulated
second and each daemon runs once per 20 s round; here each daemon sleeps exactly what it
yields, so PVE's real loop intervals (10 s CRM, 10/5 s LRM, 1 s lock retries, 1 s
watchdog-mux tick, through `Timing`) hold.

Order at one instant: plumbing callbacks (`call_at`: membership changes, unlock requests,
finished workers) first, in the order they were queued; then daemons by node name, then
daemon (crm, lrm, watchdog). A daemon that yields 0 more than 1000 times in a row is a
bug, not a busy node, and stops the run.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from .env import Daemon

DAEMON_RANK = {"crm": 0, "lrm": 1, "watchdog": 2}
MAX_ZERO_SLEEPS = 1000
CALLBACK, DAEMON = 0, 1  # what a queue entry holds; callbacks sort first


@dataclass
class Task:
    """One daemon generator. `token` invalidates queue entries made before a wake."""

    node: str
    daemon: str
    gen: Daemon
    on_exit: Callable[[], None] | None = None
    alive: bool = True
    token: int = 0
    zero_yields: int = 0


class Scheduler:
    """Fake time `t`; `run_until` runs everything due up to a time, in order."""

    def __init__(self) -> None:
        self.t = 0.0
        self._heap: list[tuple] = []
        self._seq = itertools.count()

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, CALLBACK, "", 0, next(self._seq), fn, None))

    def spawn(self, node: str, daemon: str, gen: Daemon,
              on_exit: Callable[[], None] | None = None) -> Task:
        """Start a daemon now; `on_exit` runs when its generator returns (not when
        killed: a dead task is dropped without a word)."""
        task = Task(node, daemon, gen, on_exit)
        self._schedule(task, self.t)
        return task

    def wake(self, task: Task) -> None:
        """Interrupt a daemon's sleep (a signal does that to PVE's sleep)."""
        if task.alive:
            task.token += 1
            self._schedule(task, self.t)

    def _schedule(self, task: Task, when: float) -> None:
        heapq.heappush(self._heap, (when, DAEMON, task.node, DAEMON_RANK.get(task.daemon, 9),
                                    next(self._seq), task, task.token))

    def run_until(self, until: float) -> None:
        while self._heap and self._heap[0][0] <= until:
            when, kind, _, _, _, item, token = heapq.heappop(self._heap)
            self.t = max(self.t, when)
            if kind == CALLBACK:
                item()
                continue
            task: Task = item
            if not task.alive or token != task.token:
                continue
            try:
                sleep = next(task.gen)
            except StopIteration:
                if task.alive:
                    task.alive = False
                    if task.on_exit is not None:
                        task.on_exit()
                continue
            if not task.alive:
                continue
            sleep = max(0.0, float(sleep))
            task.zero_yields = task.zero_yields + 1 if sleep == 0 else 0
            if task.zero_yields > MAX_ZERO_SLEEPS:
                raise RuntimeError(f"{task.node}/{task.daemon} loops without sleeping")
            self._schedule(task, self.t + sleep)
        self.t = max(self.t, until)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.t + seconds)
