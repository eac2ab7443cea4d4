"""The replication of /etc/pve between nodes, as pmxcfs's dfsm/dcdb do it over CPG.

Pure logic, driven by three inputs (so that the unit tests drive it with a fake bus):
`connected(nodeid)` / `disconnected()` when the CPG handle comes and goes, `confchg(members)`
and `deliver(nodeid, payload)` as CPG calls them; it sends through the ``send`` callable
(pvemu/cpg.py's `mcast_joined`, agreed order). What it models (CL `src/pmxcfs/dfsm.c`,
`dcdb.c`; pve-faults.md §4.2, §4.4, §4.5):

- a change (`submit`) is multicast and applied by EVERY member, the sender included, when
  it is delivered; the writer waits for its own message to come back and returns the
  result of applying it (`dfsm_send_message_sync`). PVE waits without limit. Guess: we
  give up after ``wait_s`` with EIO (the change still applies everywhere when it is
  delivered, in the same order). pmxcfs passes PVE's 5 s (HA's own lock-retry window,
  pve-faults.md §2.2) at the lab's timescale: corosync's timers are not scaled, so while
  it re-forms its ring after a node loss (about 8 s, no delivery meanwhile) an unbounded
  wait would stall the scaled HA daemons past their scaled watchdog, which real PVE's
  60 s watchdog never sees. A CPG finalize aborts the wait
  (`dfsm_send_sync_message_abort`): EIO (Guess: the errno).
- a change delivered while this node is not quorate is not applied: EACCES to the writer
  ("received write while not quorate - trigger resync", `dcdb_deliver`). Guess: we do not
  leave and rejoin the group; the next membership change resyncs.
- on every membership change: a state exchange. Changes stop being applied (they queue,
  so writers block), every member multicasts its version and checksum, the highest
  version leads (ties: the lowest node id, as `dcdb_select_leader`; pmxcfs first compares
  last-write mtimes, which we skip: Guess), the leader multicasts its whole tree unless all
  checksums already agree, every member whose copy differs from the leader's replaces it
  wholesale and restarts its lock ages (memdb_update_locks runs in the commit, database.c
  `bdb_backend_commit_update`; the leader and up-to-date members do not commit), then
  every member applies the queued changes in delivery order. Guess: changes queued when
  yet another membership change interrupts a sync are dropped on every member alike
  (their writers get EIO).
- unlock requests: the lowest-id member deletes an expired lock by multicasting an rmdir.
"""

from __future__ import annotations

import base64
import errno
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from pvemu.dcdb import Database, lock_name
from pvemu.pmxcfs_locks import LockTable

WAIT_S = 600.0  # Guess: PVE waits for its own message without limit (see above)
WAIT_PVE_S = 5.0  # what pmxcfs.main passes, at the lab's timescale (see above)
log = logging.getLogger("pmxcfs.dcdb")


class Replica:
    """One node's pmxcfs replication state. ``send=None``: standalone, changes apply at
    once (a node without corosync.conf has no CPG)."""

    def __init__(self, db: Database, node: str, send: Callable[[bytes], None] | None,
                 quorate: Callable[[], bool], locks: LockTable, *,
                 clock: Callable[[], float], on_change: Callable[[str], None] | None = None,
                 wait_s: float = WAIT_S) -> None:
        self.db, self.node, self.send = db, node, send
        self.quorate, self.locks, self.clock = quorate, locks, clock
        self.on_change = on_change or (lambda path: None)
        self.wait_s = wait_s
        self.nodeid: int | None = None
        self.members: tuple[int, ...] = ()
        self.mode = "down" if send else "local"  # down | sync | synced | local
        self._cond = threading.Condition()
        self._results: dict[str, int | None] = {}
        self._queue: list[tuple[int, dict]] = []
        self._states: dict[int, tuple[int, str]] = {}
        self._ids = itertools.count(1)
        self._instance = uuid.uuid4().hex[:8]
        self.locks.restart_all(self._lock_names())  # memdb_update_locks at start-up

    # -- the CPG side ------------------------------------------------------------------
    def connected(self, nodeid: int) -> None:
        with self._cond:
            self.nodeid = nodeid

    def disconnected(self) -> None:
        with self._cond:
            self.mode, self.members, self._queue, self._states = "down", (), [], {}
            self._abort_waiters()

    def confchg(self, members: tuple[int, ...]) -> None:
        with self._cond:
            self.members = tuple(sorted(set(members)))
            log.info("members: %s", ", ".join(map(str, self.members)))
            if self.nodeid not in self.members:
                return  # our own leave
            self._queue, self._states = [], {}
            self._abort_waiters()
            self.mode = "sync"
            log.info("starting data syncronisation")
            state = {"t": "state", "members": list(self.members), "version": self.db.version,
                     "digest": self.db.digest()}
        self._send(state)

    def deliver(self, nodeid: int, payload: bytes) -> None:
        msg = json.loads(payload)
        kind = msg["t"]
        with self._cond:
            if kind == "op":
                if self.mode == "synced":
                    self._apply(nodeid, msg)
                elif self.mode == "sync":
                    self._queue.append((nodeid, msg))
            elif kind == "state" and msg["members"] == list(self.members) \
                    and self.mode == "sync":
                self._states[nodeid] = (msg["version"], msg["digest"])
                self._maybe_lead()
            elif kind == "tree" and msg["members"] == list(self.members) \
                    and self.mode == "sync" and msg.get("leader") == self._leader():
                mine, leaders = self._states[self.nodeid][1], self._states[nodeid][1]
                if mine == leaders:
                    log.info("all data is up to date")
                    self._finish_sync(commit=False)
                else:
                    self.db.replace(msg["tree"], msg["version"], msg["owners"])
                    log.info("update complete - trying to commit (got %d inode updates)",
                             len(msg["tree"]))
                    self._finish_sync(commit=True)
            elif kind == "unlock" and self.mode == "synced":
                self._unlock_request(msg["path"])
            self._cond.notify_all()

    # -- state exchange ----------------------------------------------------------------
    def _leader(self) -> int | None:
        if set(self._states) != set(self.members):
            return None
        return max(self._states, key=lambda n: (self._states[n][0], -n))

    def _maybe_lead(self) -> None:
        leader = self._leader()
        if leader is None:
            return
        log.info("received all states; leader is %d", leader)
        digests = {d for _, d in self._states.values()}
        if len(digests) == 1:
            log.info("all data is up to date")
            self._finish_sync(commit=False)
        elif leader == self.nodeid:
            self._send({"t": "tree", "members": list(self.members), "leader": leader,
                        "version": self.db.version, "owners": self.db.owners,
                        "tree": self.db.tree()})

    def _finish_sync(self, commit: bool) -> None:
        """``commit``: this copy was replaced by the leader's; only then memdb_update_locks
        runs (database.c `bdb_backend_commit_update`), restarting every lock's age here."""
        self.mode = "synced"
        if commit:
            self.locks.restart_all(self._lock_names())
        queued, self._queue = self._queue, []
        for nodeid, msg in queued:
            self._apply(nodeid, msg)

    def _lock_names(self) -> list[str]:
        try:
            return os.listdir(self.db.real("/priv/lock"))
        except OSError:
            return []

    # -- changes -----------------------------------------------------------------------
    def _apply(self, nodeid: int, msg: dict) -> None:
        op = msg["op"]
        if not self.quorate():
            log.critical("received write while not quorate - trigger resync")
            result = errno.EACCES
        else:
            result = self.db.apply(op)
            if result == 0:
                self._track(op)
        if msg["id"] in self._results:
            self._results[msg["id"]] = result

    def _track(self, op: dict) -> None:
        for path in (op["path"], op.get("new")):
            if path is None:
                continue
            name = lock_name(path)
            if name and op["op"] in ("mkdir", "mtime"):
                self.locks.seen(name)
            elif name and op["op"] == "rmdir":
                self.locks.gone(name)
            self.on_change(path)

    def _unlock_request(self, path: str) -> None:
        name = lock_name(path)
        if name and self.nodeid == min(self.members) and self.locks.expired(name):
            log.info("lock %s expired: deleting it on request", name)
            self._send(self._op_msg({"op": "rmdir", "path": path}))

    def _abort_waiters(self) -> None:
        for key, value in self._results.items():
            if value is None:
                self._results[key] = errno.EIO

    def _op_msg(self, op: dict) -> dict:
        op = {**op, "writer": self.node, "time": self.clock()}
        return {"t": "op", "id": f"{self._instance}-{next(self._ids)}", "op": op}

    def _send(self, msg: dict) -> None:
        try:
            self.send(json.dumps(msg).encode())
        except OSError as exc:
            log.error("send failed: %s", exc)

    def submit(self, op: dict) -> int:
        """Make a change cluster-wide; 0 or an errno, once applied here."""
        if self.send is None:
            with self._cond:
                msg = self._op_msg(op)
                result = self.db.apply(msg["op"])
                if result == 0:
                    self._track(msg["op"])
                return result
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while self.mode == "down":  # not in the group yet: wait to join
                if not self._cond.wait(max(0.0, min(1.0, deadline - time.monotonic()))) \
                        and time.monotonic() > deadline:
                    return errno.EIO
            msg = self._op_msg(op)
            self._results[msg["id"]] = None
        try:
            self.send(json.dumps(msg).encode())
        except OSError as exc:
            log.error("cpg send failed: %s", exc)
            with self._cond:
                self._results.pop(msg["id"], None)
            return errno.EIO
        with self._cond:
            while self._results[msg["id"]] is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._results.pop(msg["id"])
                    return errno.EIO
                self._cond.wait(min(left, 1.0))
            return self._results.pop(msg["id"])

    def request_unlock(self, path: str) -> None:
        """utime(lock, 0, 0): sent, not waited for (dcdb_send_unlock)."""
        if self.send is None:
            name = lock_name(path)
            if name and self.locks.expired(name):
                self.submit({"op": "rmdir", "path": path})
            return
        if self.mode != "down":
            self._send({"t": "unlock", "path": path})

    def write_op(self, path: str, data: bytes, offset: int) -> dict:
        return {"op": "write", "path": path, "offset": offset,
                "data": base64.b64encode(data).decode()}

    def online(self) -> tuple[int, ...]:
        return self.members if self.mode != "local" else ()
