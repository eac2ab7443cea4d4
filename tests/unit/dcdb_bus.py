"""An in-process stand-in for corosync CPG that can partition, for the pmxcfs replication
tests: one pump thread delivers every message in one total order to the members of the
sender's component AT DELIVERY TIME (a message still queued when the sender is cut off
reaches only its own side), and each membership change as a confchg event."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

from pvemu.dcdb import Database
from pvemu.dcdb_sync import Replica
from pvemu.pmxcfs_locks import LockTable


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Bus:
    def __init__(self) -> None:
        self.replicas: dict[int, Replica] = {}
        self.components: list[set[int]] = []
        self.quorate_flag: dict[int, bool] = {}
        self.paused = False
        self._events: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def add(self, nodeid: int, root: Path, clock: Clock, lifetime: float = 120.0,
            db: Database | None = None) -> Replica:
        replica = Replica(db or Database(root), f"node{nodeid}",
                          lambda payload: self.send(nodeid, payload),
                          lambda: self.quorate_flag.get(nodeid, True),
                          LockTable(lifetime, clock), clock=clock, wait_s=5.0)
        replica.connected(nodeid)
        self.replicas[nodeid] = replica
        return replica

    def component(self, nodeid: int) -> set[int]:
        return next((c for c in self.components if nodeid in c), set())

    def send(self, nodeid: int, payload: bytes) -> None:
        with self._cond:
            self._events.append(("msg", nodeid, payload))
            self._cond.notify_all()

    def partition(self, *groups: set[int], quorate: bool | None = None) -> None:
        """New components; each gets a confchg. Quorum follows majority unless given."""
        with self._cond:
            self.components = [set(g) for g in groups]
            total = len(self.replicas)
            for group in groups:
                for n in group:
                    self.quorate_flag[n] = quorate if quorate is not None \
                        else 2 * len(group) > total
                self._events.append(("confchg", frozenset(group), None))
            self._cond.notify_all()

    def _pump(self) -> None:
        while True:
            with self._cond:
                while (not self._events or self.paused) and not self._stop:
                    self._busy = False
                    self._cond.wait(0.05)
                if self._stop:
                    return
                kind, who, payload = self._events.popleft()
                self._busy = True
                targets = sorted(self.component(who)) if kind == "msg" else sorted(who)
            for n in targets:
                if kind == "msg":
                    self.replicas[n].deliver(who, payload)
                else:
                    self.replicas[n].confchg(tuple(sorted(who)))

    def settle(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._events and not self._busy:
                    return
            time.sleep(0.01)
        raise AssertionError("the bus did not settle")

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(2)
