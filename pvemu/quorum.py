"""The node's quorum and membership, tracked through libquorum's notifications as pmxcfs's
`quorum.c` does: the flag changes only when a callback arrives, so a paused (SIGSTOPped)
corosync leaves it as it was (pmxcfs "keeps believing it is quorate", pve-faults.md §4.2),
and a corosync that is gone makes the dispatch fail: inquorate, reconnect every RETRY_S
(CL `src/pmxcfs/loop.c`, >5 s; §4.1). Nobody blocks on corosync to read the flag."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

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

    def __init__(self) -> None:
        name = ctypes.util.find_library("quorum") or "libquorum.so.5"
        self._lib = ctypes.CDLL(name)
        self._lock = threading.Lock()
        self._members: tuple[int, ...] = ()
        self._quorate = False
        self._notify = _NOTIFY(self._on_change)  # kept alive as long as self

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
