"""The node's quorum, asked of the real corosync through libquorum (as pmxcfs does)."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

CS_OK = 1


class _Callbacks(ctypes.Structure):
    _fields_ = [("quorum_notify_fn", ctypes.c_void_p)]


class CorosyncQuorum:
    """Cached answer to "is this node quorate?"; not quorate while corosync is down."""

    def __init__(self, max_age_s: float = 0.1) -> None:
        name = ctypes.util.find_library("quorum") or "libquorum.so.5"
        self._lib = ctypes.CDLL(name)
        self._handle: ctypes.c_uint64 | None = None
        self._max_age_s = max_age_s
        self._cached: tuple[float, bool] = (0.0, False)
        self._lock = threading.Lock()

    def _ask(self) -> bool:
        if self._handle is None:
            handle, qtype = ctypes.c_uint64(0), ctypes.c_uint32(0)
            callbacks = _Callbacks(None)
            if self._lib.quorum_initialize(ctypes.byref(handle), ctypes.byref(callbacks),
                                           ctypes.byref(qtype)) != CS_OK:
                return False
            self._handle = handle
        quorate = ctypes.c_int(0)
        if self._lib.quorum_getquorate(self._handle, ctypes.byref(quorate)) != CS_OK:
            self._lib.quorum_finalize(self._handle)
            self._handle = None  # corosync restarted or stopped: reconnect next time
            return False
        return bool(quorate.value)

    def quorate(self) -> bool:
        with self._lock:
            at, value = self._cached
            now = time.monotonic()
            if now - at > self._max_age_s:
                value = self._ask()
                self._cached = (now, value)
            return value
