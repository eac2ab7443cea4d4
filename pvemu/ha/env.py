"""The seam between the HA state machines and the world (PVE's `PVE::HA::Env`).

Every daemon is a generator: it does one step and yields how many real seconds it wants
to sleep before the next one. The node's daemon runner sleeps that long; the simulator
advances its fake clock. So the same code runs in the lab and in fake time.

All PVE durations go through `Timing` (pvemu/timing.py), which multiplies them by the
timescale (1 means PVE's real timings, pve-model.md §2). Timestamps written to status
files are `env.now()`, epoch seconds on the node's own clock.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Protocol

from pvemu.timing import Timing

Daemon = Generator[float, None, None]  # yields seconds to sleep; returns when it exits


class SleepUntil(float):
    """What PVE's `sleep_until($end)` yields: the seconds left now, carrying ``end``, a
    time on the daemon's own wall clock (PVE2.pm `sleep_until`: sleep 1 s at a time until
    `time() >= $end`). The node's runner (pvemu/ha/daemon.py) sleeps until its wall clock
    passes ``end``, so a clock step moves the wake-up (pve-faults.md §7.2, §7.3); the
    simulator, whose clock nobody steps, reads it as the plain delay it also is. A plain
    float is PVE's `sleep($n)`, which no clock step shortens or stretches."""

    end: float

    def __new__(cls, end: float, now: float) -> SleepUntil:
        self = super().__new__(cls, max(0.0, end - now))
        self.end = end
        return self

# Exit codes of the resource agents (src/PVE/HA/Tools.pm, pve-model.md §7.5).
SUCCESS, ERROR, ETRY_AGAIN, EWRONG_NODE = 0, 1, 2, 3
EUNKNOWN_SERVICE_TYPE, EUNKNOWN_COMMAND, EINVALID_PARAMETER, EUNKNOWN_SERVICE, IGNORED = \
    4, 5, 6, 7, 8


class HaEnv(Protocol):
    """What a CRM or LRM may ask of its node. One instance per daemon."""

    nodename: str
    timing: Timing
    flavour: int  # 8 (groups.cfg) or 9 (rules.cfg)
    # emulation bugs switched on (node.json "bugs"; node_status.EMULATION_BUGS): the HA
    # stack made unsafe on purpose for a self-test; empty on every real run
    bugs: frozenset[str]

    # -- time and logs ---------------------------------------------------------------
    def now(self) -> float:
        """Epoch seconds on this node's clock."""

    def log(self, level: str, message: str) -> None:
        """level: info, warn, err, crit (PVE's syslog levels as the daemons use them)."""

    def send_notification(self, subject: str, text: str) -> None: ...

    # -- cluster state (pmxcfs) ------------------------------------------------------
    def quorate(self) -> bool: ...

    def cluster_state_update(self) -> bool:
        """Refresh the view of pmxcfs; False when pmxcfs is not usable."""

    def node_info(self) -> dict[str, bool]:
        """Every node of the cluster (corosync nodelist) -> online (a current member);
        this node is always online (PVE's get_node_info forces it)."""

    def read_manager_status(self) -> dict:
        """ha/manager_status as a dict ({} when missing)."""

    def write_manager_status(self, status: dict) -> None: ...

    def read_lrm_status(self, node: str) -> dict | None:
        """nodes/<node>/lrm_status; None when it cannot be read."""

    def write_lrm_status(self, status: dict) -> bool:
        """This node's lrm_status; False when refused (no quorum)."""

    def read_crm_commands(self) -> list[str]:
        """ha/crm_commands lines, and truncate the file (under the domain-ha lock)."""

    def read_service_config(self) -> dict[str, dict]:
        """resources.cfg with defaults filled in and `node` from the guest's config
        location: sid -> {type, state, node, max_restart, max_relocate, group?,
        failback?, comment?}. Guests whose config is nowhere are left out."""

    def read_group_config(self) -> dict[str, dict]:
        """PVE 8 groups.cfg: name -> {nodes: {node: prio}, restricted, nofailback}."""

    def read_rules_config(self) -> dict[str, dict]:
        """PVE 9 rules.cfg: name -> {type, resources: [sid], nodes: {node: prio},
        strict, ...}."""

    def write_rules_config(self, rules: dict[str, dict]) -> None:
        """Replace rules.cfg (PVE 9's groups migration)."""

    def update_service_config(self, sid: str, params: dict, delete: str) -> None:
        """Set ``params`` in the resource's resources.cfg entry and drop key ``delete``."""

    def delete_group_config(self) -> None:
        """Unlink groups.cfg."""

    def get_node_version(self, node: str) -> str | None:
        """The pve-manager version ``node`` publishes (PVE2.pm get_node_version: the
        node's `version-info` key-value); None when it published none."""

    def read_datacenter(self) -> dict:
        """datacenter.cfg: {"ha": {"shutdown_policy": ...}, "crs": {"ha": ...,
        "ha-rebalance-on-start": 0|1}, "max_workers": n}."""

    def set_service_state(self, sid: str, state: str) -> None:
        """Write a requested state into resources.cfg (the `stop` CRM command)."""

    def steal_service(self, sid: str, current_node: str, new_node: str) -> None:
        """Move the guest's config to new_node's directory (HA recovery), dropping the
        leftover locks PVE removes (backup, mounted, migrate, ...)."""

    # -- locks (priv/lock/, single attempt each; the caller retries) ----------------
    def get_ha_manager_lock(self) -> bool: ...

    def release_ha_manager_lock(self) -> None: ...

    def get_ha_agent_lock(self, node: str | None = None) -> bool:
        """This node's agent lock, or (the CRM fencing) another node's."""

    def release_ha_agent_lock(self) -> None: ...

    # -- watchdog-mux ----------------------------------------------------------------
    def watchdog_open(self) -> None: ...

    def watchdog_update(self) -> None: ...

    def watchdog_close(self) -> None:
        """Graceful close (the magic 'V'): the mux forgets this client."""

    # -- resources (the LRM's workers) --------------------------------------------
    def is_node_shutdown(self) -> tuple[bool, bool]:
        """(a system shutdown is in progress, it is a reboot)."""

    def max_workers(self) -> int: ...

    def start_worker(self, uid: str, sid: str, command: str, params: dict) -> None:
        """Run the resource agent for (sid, command) in the background."""

    def finished_workers(self) -> dict[str, int]:
        """uid -> exit code of the workers that finished since the last call."""

    def running_workers(self) -> int: ...


class Guests(Protocol):
    """What a resource agent (PVE::HA::Resources::PVECT / PVEVM) does to one node's guests.
    Called from the LRM's workers, so calls may block (a VM shutdown waits up to its
    timeout). sid is `ct:<id>` or `vm:<id>`."""

    def exists(self, sid: str) -> bool:
        """The guest's config exists somewhere in the cluster."""

    def config_node(self, sid: str) -> str | None:
        """The node whose directory holds the guest's config."""

    def running(self, sid: str) -> bool:
        """Running on this node."""

    def start(self, sid: str) -> bool:
        """Start on this node; True once it runs (check_running), False if it failed."""

    def shutdown(self, sid: str, timeout_s: float) -> bool:
        """Clean shutdown, forced stop after timeout_s (0: hard stop at once)."""

    def migrate(self, sid: str, target: str, online: bool) -> bool:
        """Move to target (offline: move the config; online: live-migrate a VM)."""
