"""PVE's timers on an emulated node, in real seconds at the node's timescale.

The one place in pvemu where a PVE duration meets the timescale: the node's timescale
is read from its node.json (pvemu/nodeinfo.py builds a Timing from it once) and every
emulated timer (the HA daemons' loops and locks, watchdog-mux, pmxcfs's lock lifetime, the
stop timeouts of the node's units) is one of these properties. The harness keeps its own
copy of these numbers on purpose (harness/expectations/): the oracle stays independent
of the emulation it judges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """PVE's HA constants (pve-model.md §2), in real seconds at this timescale."""

    scale: float

    def __post_init__(self) -> None:
        scale = self.scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not math.isfinite(scale) or not scale > 0:
            raise ValueError(f"timescale {scale!r} must be a finite number > 0")

    def s(self, pve_seconds: float) -> float:
        return pve_seconds * self.scale

    @property
    def crm_loop(self) -> float: return self.s(10)            # master round
    @property
    def crm_wait_for_quorum(self) -> float: return self.s(5)
    @property
    def lrm_loop(self) -> float: return self.s(10)            # active round
    @property
    def lrm_wait(self) -> float: return self.s(5)             # wait_for_agent_lock, lost
    @property
    def lrm_maintenance_loop(self) -> float: return self.s(5)
    @property
    def lock_retry(self) -> float: return self.s(1)           # 6 tries, 1 s apart
    lock_tries: int = 6
    @property
    def worker_budget(self) -> float: return self.s(8)
    @property
    def lock_lifetime(self) -> float: return self.s(120)      # expired when age > this
    @property
    def cfs_lock_timeout(self) -> float: return self.s(10)    # PVE::Cluster cfs_lock
    @property
    def cfs_lock_retry(self) -> float: return self.s(1)       # its sleep between tries
    @property
    def fence_delay(self) -> float: return self.s(60)
    @property
    def gone_delete(self) -> float: return self.s(3600)
    @property
    def watchdog_client_timeout(self) -> float: return self.s(60)
    @property
    def watchdog_device_timeout(self) -> float: return self.s(10)
    @property
    def watchdog_tick(self) -> float: return self.s(1)
    lrm_idle_rounds: int = 60
    crm_idle_rounds: int = 90
    @property
    def lrm_restart_give_up(self) -> float: return self.s(90)
    @property
    def status_stale(self) -> float: return self.s(30)        # "old timestamp - dead?"
    @property
    def status_future(self) -> float: return self.s(2)        # "detected time drift!"
    @property
    def vm_shutdown_timeout(self) -> float: return self.s(60)
