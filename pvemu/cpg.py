"""A ctypes binding of corosync's closed process groups (libcpg.so.4), as pmxcfs uses them.

pmxcfs replicates /etc/pve over CPG (pve-faults.md §4.5; CL `src/pmxcfs/dfsm.c`):
`cpg_initialize` with a deliver and a confchg callback, `cpg_join` of a named group,
`cpg_mcast_joined(CPG_TYPE_AGREED, ...)` for every change, `cpg_fd_get` + `cpg_dispatch`
in its main loop, `cpg_finalize` when corosync goes away. `CpgLoop.run` is that loop:
while corosync is gone every call fails, the handle is finalized and the whole thing is
retried every `RETRY_S` (CL `src/pmxcfs/loop.c` `service_start_job`: every >5 s,
pve-faults.md §4.1). Struct layouts are those of corosync's `include/corosync/cpg.h`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import select
import threading
import time
from collections.abc import Callable

CS_OK, CS_ERR_TRY_AGAIN = 1, 6
CPG_TYPE_AGREED = 2  # enum cpg_guarantee_t { UNORDERED, FIFO, AGREED, SAFE }
CS_DISPATCH_ALL = 2
CPG_MAX_NAME_LENGTH = 128
RETRY_S = 5.0  # loop.c: services are restarted after >5 s of failure
SEND_TRIES, SEND_RETRY_S = 100, 0.1  # dfsm_send_message_full: CS_ERR_TRY_AGAIN 100 x 100 ms
log = logging.getLogger("pmxcfs.cpg")


class CpgName(ctypes.Structure):
    _fields_ = [("length", ctypes.c_uint32), ("value", ctypes.c_char * CPG_MAX_NAME_LENGTH)]


class CpgAddress(ctypes.Structure):
    _fields_ = [("nodeid", ctypes.c_uint32), ("pid", ctypes.c_uint32),
                ("reason", ctypes.c_uint32)]


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_DELIVER = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.POINTER(CpgName), ctypes.c_uint32,
                            ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
_ADDRS = ctypes.POINTER(CpgAddress)
_CONFCHG = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.POINTER(CpgName), _ADDRS,
                            ctypes.c_size_t, _ADDRS, ctypes.c_size_t, _ADDRS, ctypes.c_size_t)


class Callbacks(ctypes.Structure):
    _fields_ = [("deliver", _DELIVER), ("confchg", _CONFCHG)]


class CpgError(OSError):
    """A libcpg call failed (corosync gone, or its queue full)."""


class Cpg:
    """One CPG handle joined to one group. Callbacks run inside ``dispatch``:
    ``on_deliver(nodeid, pid, payload)`` and ``on_confchg(members)`` with members a sorted
    tuple of (nodeid, pid)."""

    def __init__(self, group: str, on_deliver: Callable[[int, int, bytes], None],
                 on_confchg: Callable[[tuple[tuple[int, int], ...]], None]) -> None:
        self._lib = ctypes.CDLL(ctypes.util.find_library("cpg") or "libcpg.so.4")
        self._lib.cpg_mcast_joined.argtypes = [ctypes.c_uint64, ctypes.c_int,
                                               ctypes.POINTER(IoVec), ctypes.c_uint]
        self.group = group.encode()
        self._on_deliver, self._on_confchg = on_deliver, on_confchg
        self._callbacks = Callbacks(_DELIVER(self._deliver), _CONFCHG(self._confchg))
        self.handle = ctypes.c_uint64(0)
        self._send_lock = threading.Lock()

    def _check(self, what: str, rc: int) -> None:
        if rc != CS_OK:
            raise CpgError(rc, f"{what} failed: error {rc}")

    def _name(self) -> CpgName:
        return CpgName(len(self.group), self.group)

    def _deliver(self, handle, name, nodeid, pid, msg, length) -> None:
        self._on_deliver(int(nodeid), int(pid), ctypes.string_at(msg, length))

    def _confchg(self, handle, name, members, n_members, left, n_left, joined, n_joined):
        self._on_confchg(tuple(sorted((members[i].nodeid, members[i].pid)
                                      for i in range(n_members))))

    def initialize(self) -> None:
        self._check("cpg_initialize", self._lib.cpg_initialize(
            ctypes.byref(self.handle), ctypes.byref(self._callbacks)))

    def join(self) -> None:
        name = self._name()
        self._check("cpg_join", self._lib.cpg_join(self.handle, ctypes.byref(name)))

    def local_get(self) -> int:
        nodeid = ctypes.c_uint(0)
        self._check("cpg_local_get", self._lib.cpg_local_get(self.handle, ctypes.byref(nodeid)))
        return nodeid.value

    def fd_get(self) -> int:
        fd = ctypes.c_int(-1)
        self._check("cpg_fd_get", self._lib.cpg_fd_get(self.handle, ctypes.byref(fd)))
        return fd.value

    def dispatch(self) -> None:
        self._check("cpg_dispatch", self._lib.cpg_dispatch(self.handle, CS_DISPATCH_ALL))

    def mcast_joined(self, payload: bytes) -> None:
        """Multicast in agreed order; CS_ERR_TRY_AGAIN (queue full, e.g. corosync paused)
        is retried as dfsm_send_message_full does, then given up."""
        buf = ctypes.create_string_buffer(payload, len(payload))
        iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(payload))
        with self._send_lock:
            for _ in range(SEND_TRIES):
                rc = self._lib.cpg_mcast_joined(self.handle, CPG_TYPE_AGREED,
                                                ctypes.byref(iov), 1)
                if rc != CS_ERR_TRY_AGAIN:
                    break
                time.sleep(SEND_RETRY_S)
        self._check("cpg_mcast_joined", rc)

    def finalize(self) -> None:
        self._lib.cpg_finalize(self.handle)
        self.handle = ctypes.c_uint64(0)


def run_loop(cpg: Cpg, stop: threading.Event, on_up: Callable[[int], None],
             on_down: Callable[[], None], retry_s: float = RETRY_S) -> None:
    """Connect, join and dispatch until ``stop``; on any failure finalize, call ``on_down``
    and retry after ``retry_s``. ``on_up(local_nodeid)`` runs once joined."""
    failed_before = False
    while not stop.is_set():
        try:
            cpg.initialize()
        except CpgError as exc:
            if not failed_before:
                log.error("cpg_initialize failed: %s (retrying every %.0f s)", exc, retry_s)
                failed_before = True
            stop.wait(retry_s)
            continue
        try:
            on_up(cpg.local_get())
            cpg.join()
            fd = cpg.fd_get()
            failed_before = False
            log.info("joined CPG group %s", cpg.group.decode())
            while not stop.is_set():
                readable, _, _ = select.select([fd], [], [], 0.5)
                if readable:
                    cpg.dispatch()
        except CpgError as exc:
            log.error("CPG: %s; leaving the group", exc)
        finally:
            cpg.finalize()
            on_down()
        stop.wait(retry_s)
