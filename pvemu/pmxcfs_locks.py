"""pmxcfs lock ages (pve-model.md §14.4, pve-faults.md §4.6): one node's own lock table.

Locks are directories under `priv/lock/` of the replicated database (pvemu/dcdb.py keeps
each lock's writer): `mkdir` is atomic and fails with EEXIST while the lock exists;
`utime(lock, 0, t)` renews it (only its writer may, with a newer mtime); `utime(lock, 0, 0)`
is an unlock request, multicast to every member, upon which the member with the lowest
node id deletes the lock if it has expired (CL `src/pmxcfs/dcdb.c` `dcdb_deliver`,
DCDB_MESSAGE_CFS_UNLOCK_REQUEST).

What this module keeps is what every node keeps for itself (memdb.c `memdb_lock_expired`,
`memdb_update_locks`): when it first saw each lock's current version, on its OWN wall
clock (`time()`; here pvemu/wallclock.now()), never the mtime stored in the tree. A lock
has expired when more than the lifetime (120 s, scaled) has passed since then.
`restart_all` is memdb_update_locks after a sync commit and at start-up: it builds a new
table, so every lock's age restarts on that node (pve-faults.md §4.6).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from pvemu import wallclock


class LockTable:
    """name -> the time this node first saw the lock's current version."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = wallclock.now) -> None:
        self.lifetime_s, self.clock = lifetime_s, clock
        self._seen: dict[str, float] = {}
        self._mutex = threading.Lock()

    def seen(self, name: str) -> None:
        """A new version of the lock was delivered here (created or renewed)."""
        with self._mutex:
            self._seen[name] = self.clock()

    def gone(self, name: str) -> None:
        with self._mutex:
            self._seen.pop(name, None)

    def restart_all(self, names: Iterable[str]) -> None:
        with self._mutex:
            now = self.clock()
            self._seen = {name: now for name in names}

    def expired(self, name: str) -> bool:
        with self._mutex:
            at = self._seen.get(name)
        return at is not None and self.clock() - at > self.lifetime_s

    def age(self, name: str) -> float | None:
        with self._mutex:
            at = self._seen.get(name)
        return None if at is None else self.clock() - at
