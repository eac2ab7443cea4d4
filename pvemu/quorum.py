"""The node's quorum and membership, tracked through libquorum's notifications as pmxcfs's
`quorum.c` does: the flag changes only when a callback arrives, so a paused (SIGSTOPped)
corosync leaves it as it was (pmxcfs "keeps believing it is quorate", pve-faults.md §4.2),
and a corosync that is gone makes the dispatch fail: inquorate, reconnect every RETRY_S
(CL `src/pmxcfs/loop.c`, >5 s; §4.1). Nobody blocks on corosync to read the flag."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

CS_OK = 1
RETRY_S = 5.0  # loop.c: a failed service is restarted after >5 s


class _Callbacks(ctypes.Structure):
    _fields_ = [("quorum_notify_fn", ctypes.c_void_p)]


CS_TRACK_CURRENT, CS_TRACK_CHANGES = 0x01, 0x02
CS_DISPATCH_ALL = 2
_NOTIFY = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint64,
                           ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))


class Membership:
    """The current corosync membership (node ids) and quorum, tracked through libquorum's
    notifications, as pmxcfs learns it. Empty while corosync is down."""

    def __init__(self, lib: object | None = None) -> None:
        self._lib = lib or ctypes.CDLL(ctypes.util.find_library("quorum") or "libquorum.so.5")
        self._lock = threading.Lock()
        self._members: tuple[int, ...] = ()
        self._quorate = False
        self._notify = _NOTIFY(self._on_change)  # kept alive as long as self
        self._trip = threading.Condition()
        self._asked = self._answered = 0
        self._tripper: threading.Thread | None = None

    def _on_change(self, handle, quorate, ring_seq, entries, view) -> None:
        with self._lock:
            self._members = tuple(sorted(view[i] for i in range(entries)))
            self._quorate = bool(quorate)

    def snapshot(self) -> tuple[bool, tuple[int, ...]]:
        with self._lock:
            return self._quorate, self._members

    def quorate(self) -> bool:
        with self._lock:
            return self._quorate

    def answering(self, timeout_s: float) -> bool:
        """One request to the local corosync and its answer (``quorum_getquorate``), within
        ``timeout_s``; False when none came. The shared pmxcfs model sends every write
        through this: real pmxcfs's writes wait for corosync to deliver them back (CPG), so
        a paused corosync holds them (pve-faults.md §4.2). A corosync that is gone answers
        at once (the call fails), as CPG does. Requests made while one is in flight share
        its answer."""
        with self._trip:
            if self._tripper is None:
                self._tripper = threading.Thread(target=self._trips, daemon=True,
                                                 name="corosync-round-trip")
                self._tripper.start()
            self._asked += 1
            ticket = self._asked
            self._trip.notify_all()
            deadline = time.monotonic() + timeout_s
            while self._answered < ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._trip.wait(left)
            return True

    def _trips(self) -> None:
        handle: ctypes.c_uint64 | None = None
        while True:
            with self._trip:
                while self._answered >= self._asked:
                    self._trip.wait()
                target = self._asked
            if handle is None:
                handle, qtype = ctypes.c_uint64(0), ctypes.c_uint32(0)
                callbacks = _Callbacks(None)
                if self._lib.quorum_initialize(ctypes.byref(handle), ctypes.byref(callbacks),
                                               ctypes.byref(qtype)) != CS_OK:
                    handle = None
            if handle is not None:
                quorate = ctypes.c_int(0)
                if self._lib.quorum_getquorate(handle, ctypes.byref(quorate)) != CS_OK:
                    self._lib.quorum_finalize(handle)  # gone: a fresh handle next time
                    handle = None
            with self._trip:
                self._answered = target
                self._trip.notify_all()

    def run(self, stop: threading.Event, retry_s: float = RETRY_S) -> None:
        """Track changes until ``stop`` is set (reconnecting while corosync is down)."""
        import select

        while not stop.is_set():
            handle, qtype = ctypes.c_uint64(0), ctypes.c_uint32(0)
            callbacks = _Callbacks(ctypes.cast(self._notify, ctypes.c_void_p))
            if self._lib.quorum_initialize(ctypes.byref(handle), ctypes.byref(callbacks),
                                           ctypes.byref(qtype)) != CS_OK:
                self._on_change(None, 0, 0, 0, None)
                stop.wait(retry_s)
                continue
            fd = ctypes.c_int(-1)
            try:
                if (self._lib.quorum_trackstart(handle, CS_TRACK_CURRENT | CS_TRACK_CHANGES)
                        != CS_OK or self._lib.quorum_fd_get(handle, ctypes.byref(fd)) != CS_OK):
                    stop.wait(retry_s)
                    continue
                while not stop.is_set():
                    readable, _, _ = select.select([fd.value], [], [], 0.5)
                    if readable and self._lib.quorum_dispatch(handle, CS_DISPATCH_ALL) != CS_OK:
                        break  # corosync went away
            finally:
                self._lib.quorum_finalize(handle)
            self._on_change(None, 0, 0, 0, None)
            stop.wait(retry_s)
