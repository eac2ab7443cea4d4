"""pmxcfs locks (pve-model.md §14.4): directories under priv/lock/ in the cluster store.

- `mkdir priv/lock/<name>` is atomic and fails with EEXIST while the lock exists;
- `utime(lock, 0, t)` renews it: only the node that created it may, and only with a
  newer mtime; every renewal is a new version (pmxcfs: a new checksum);
- `utime(lock, 0, 0)` is an unlock request, broadcast to every member: the member with
  the lowest node id deletes the lock if it has expired, asynchronously;
- a lock has expired when more than the lifetime (120 s, scaled) has passed since *this*
  node first saw its current version, on this node's own clock (the mtime stored in the
  filesystem is ignored, to tolerate clock drift).

The shared facts (owner, version, pending unlock requests) live beside the store in
`<store>-locks/`, standing in for what pmxcfs replicates over CPG; what each node first
saw, and when, is its own (`LockWatch`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pvemu.etc_pve import atomic_write

LOCK_DIR = "priv/lock"


class LockStore:
    """The cluster-wide facts about locks, shared by every node's pmxcfs."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.meta = db.parent / f"{db.name}-locks"

    @staticmethod
    def lock_name(path: str) -> str | None:
        """`/priv/lock/<name>` -> name; None for any other path."""
        prefix = f"/{LOCK_DIR}/"
        if path.startswith(prefix) and "/" not in path[len(prefix):] and path != prefix:
            return path[len(prefix):]
        return None

    def _file(self, name: str, suffix: str = ".json") -> Path:
        return self.meta / f"{name}{suffix}"

    def created(self, name: str, owner: str) -> None:
        self.meta.mkdir(parents=True, exist_ok=True)
        self._write(name, {"owner": owner, "version": uuid.uuid4().hex})

    def renewed(self, name: str) -> None:
        info = self.info(name)
        if info:
            self._write(name, {**info, "version": uuid.uuid4().hex})

    def removed(self, name: str) -> None:
        for suffix in (".json", ".unlock"):
            self._file(name, suffix).unlink(missing_ok=True)

    def info(self, name: str) -> dict | None:
        try:
            return json.loads(self._file(name).read_text())
        except (OSError, ValueError):
            return None

    def owner(self, name: str) -> str | None:
        info = self.info(name)
        return info["owner"] if info else None

    def request_unlock(self, name: str) -> None:
        self.meta.mkdir(parents=True, exist_ok=True)
        self._file(name, ".unlock").touch()

    def unlock_requests(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.meta.glob("*.unlock"))
        except OSError:
            return []

    def versions(self) -> dict[str, str]:
        """name -> current version of every lock that exists."""
        out = {}
        lock_dir = self.db / LOCK_DIR
        try:
            names = os.listdir(lock_dir)
        except OSError:
            return out
        for name in names:
            info = self.info(name)
            out[name] = info["version"] if info else "unknown"
        return out

    def _write(self, name: str, data: dict) -> None:
        atomic_write(self._file(name), json.dumps(data))


class LockWatch:
    """One node's view of lock ages: when it first saw each lock's current version."""

    def __init__(self, store: LockStore, lifetime_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.lifetime_s, self.clock = store, lifetime_s, clock
        self.first_seen: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()  # the watch thread and FUSE handlers both observe

    def observe(self) -> None:
        """Take in the current versions (pmxcfs sees every change as it is replicated)."""
        with self._mutex:
            now = self.clock()
            versions = self.store.versions()
            for name, version in versions.items():
                seen = self.first_seen.get(name)
                if seen is None or seen[0] != version:
                    self.first_seen[name] = (version, now)
            for name in set(self.first_seen) - set(versions):
                del self.first_seen[name]

    def expired(self, name: str) -> bool:
        seen = self.first_seen.get(name)
        return seen is not None and self.clock() - seen[1] > self.lifetime_s

    def process_unlock_requests(self) -> list[str]:
        """Delete the requested locks that have expired here; drop every request.
        Only the lowest-id member calls this. Returns the names deleted."""
        deleted = []
        for name in self.store.unlock_requests():
            if self.expired(name):
                try:
                    os.rmdir(self.store.db / LOCK_DIR / name)
                except FileNotFoundError:
                    pass
                except OSError:
                    continue  # not empty: leave it, as pmxcfs cannot delete it either
                self.store.removed(name)
                self.first_seen.pop(name, None)
                deleted.append(name)
            else:
                self.store._file(name, ".unlock").unlink(missing_ok=True)
        return deleted
