"""The simulator's /etc/pve: a replicated file store with pmxcfs's quorum and lock rules.

Stands in for pmxcfs (pve-model.md §10, §14.4) under the simulated daemons. PVE's own
simulator has nothing like it: PVE::HA::Sim::Hardware keeps one shared status directory
that every node reads, and PVE::HA::Sim::Env's `sim_get_lock` takes over an expired lock
in one step (§13.4). Here, as on a real cluster:

* every node keeps its own copy of each file, tagged with a cluster-wide version;
* a write needs quorum (a majority of all nodes in the writer's view) and reaches the
  powered members of the writer's view only;
* when a partition forms (`resync`), its members take the newest version of each file;
* locks (pmxcfs's lock directories, §14.4): mkdir fails while the lock exists and then
  sends an unlock request, which the lowest-nodeid member of the requester's partition
  runs `unlock_delay` later, deleting the lock if its age is more than the lock lifetime
  (120 s); that age counts from when that member first saw the lock's current version, on
  its own clock. Only the owner renews (utime) or removes a lock.

What a daemon does with these calls (PVE2.pm's get_pve_lock: renew within 120 s of the
last success, else mkdir) is the environment's job, in sim_env.py.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pvemu.timing import Timing

from .sim_scheduler import Scheduler

LogFn = Callable[[str, str, str, str], None]  # node, daemon, level, message


@dataclass
class Lock:
    owner: str
    version: int


@dataclass
class Replica:
    """One node's side of the store: what its pmxcfs holds and has seen."""

    name: str
    nodeid: int
    clock_offset: float = 0.0
    power: bool = False  # the node (and so its pmxcfs) is up
    view: frozenset[str] = frozenset()  # the corosync members this node sees
    files: dict[str, tuple[int, object]] = field(default_factory=dict)  # path -> version, value
    lock_seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # version, first seen
    cfs_ok: bool = True  # cluster_state_update() answer


class ReplicatedStore:
    """The files and locks of a simulated cluster, one `Replica` per node."""

    def __init__(self, members: Mapping[str, Replica], clock: Scheduler, timing: Timing,
                 *, unlock_delay: float, log: LogFn) -> None:
        self.members = members
        self.clock = clock
        self.timing = timing
        self.unlock_delay = unlock_delay
        self.log = log
        self.locks: dict[str, Lock] = {}
        self._version = itertools.count(1)

    def seed(self, files: Mapping[str, object]) -> None:
        """Every member starts with the same first version of `files`."""
        version = next(self._version)
        for member in self.members.values():
            member.files = {p: (version, copy.deepcopy(v)) for p, v in files.items()}

    # -- files -----------------------------------------------------------------------
    def quorate(self, node: Replica) -> bool:
        return node.power and len(node.view) * 2 > len(self.members)

    def read(self, node: Replica, path: str, default: object) -> object:
        entry = node.files.get(path)
        return copy.deepcopy(entry[1]) if entry is not None else copy.deepcopy(default)

    def write(self, node: Replica, path: str, value: object) -> bool:
        if not self.quorate(node):
            return False
        version = next(self._version)
        for name in node.view:
            member = self.members[name]
            if member.power:
                member.files[path] = (version, copy.deepcopy(value))
        return True

    def newest(self, path: str) -> object:
        """The newest version of `path` any member holds, up or down."""
        best = max((m.files[path] for m in self.members.values() if path in m.files),
                   key=lambda entry: entry[0])
        return copy.deepcopy(best[1])

    def resync(self, partition: frozenset[str]) -> None:
        """A partition formed: its powered members take the newest version of each file,
        and first see each lock's current version now."""
        members = [self.members[m] for m in partition if self.members[m].power]
        paths = set().union(*(m.files for m in members))
        for path in paths:
            newest = max((m.files[path] for m in members if path in m.files),
                         key=lambda e: e[0])
            for m in members:
                if m.files.get(path, (None,))[0] != newest[0]:
                    m.files[path] = (newest[0], copy.deepcopy(newest[1]))
        for name, lock in self.locks.items():
            for m in members:
                if m.lock_seen.get(name, (None,))[0] != lock.version:
                    m.lock_seen[name] = (lock.version, self.clock.t + m.clock_offset)

    # -- locks -------------------------------------------------------------------------
    def mkdir_lock(self, node: Replica, name: str) -> bool:
        """Create lock `name` for `node`. While it exists this fails and queues an
        unlock request on the node's behalf."""
        if not self.quorate(node):
            return False
        if name not in self.locks:
            lock = self.locks[name] = Lock(node.name, next(self._version))
            self._record_seen(node, name, lock.version)
            return True
        requester = node.name
        self.clock.call_at(self.clock.t + self.unlock_delay,
                           lambda: self._unlock_request(name, requester))
        return False

    def renew_lock(self, node: Replica, name: str) -> bool:
        """utime on the lock: only its owner succeeds, and the lock's age starts again."""
        if not self.quorate(node):
            return False
        lock = self.locks.get(name)
        if lock is None or lock.owner != node.name:
            return False
        lock.version = next(self._version)
        self._record_seen(node, name, lock.version)
        return True

    def remove_lock(self, node: Replica, name: str) -> None:
        """rmdir by the owner (needs quorum); anybody else's try is ignored."""
        lock = self.locks.get(name)
        if lock is not None and lock.owner == node.name and self.quorate(node):
            del self.locks[name]

    def _record_seen(self, writer: Replica, name: str, version: int) -> None:
        for member in writer.view:
            m = self.members[member]
            if m.power:
                m.lock_seen[name] = (version, self.clock.t + m.clock_offset)

    def _unlock_request(self, name: str, requester: str) -> None:
        req = self.members[requester]
        if not self.quorate(req):
            return
        executor = min((self.members[m] for m in req.view if self.members[m].power),
                       key=lambda n: n.nodeid)
        lock = self.locks.get(name)
        if lock is None:
            return
        now = self.clock.t + executor.clock_offset
        seen = executor.lock_seen.get(name)
        if seen is None or seen[0] != lock.version:
            executor.lock_seen[name] = (lock.version, now)
            return
        if now - seen[1] > self.timing.lock_lifetime:
            del self.locks[name]
            self.log(executor.name, "pmxcfs", "info",
                     f"lock '{name}' expired, removed on unlock request from '{requester}'")
