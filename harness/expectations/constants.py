"""The timing constants behind every prediction, read from a running cluster.

Corosync's effective token and consensus come from `corosync-cmapctl` on a node (never
scaled: real time at any timescale); PVE's HA timers are its own numbers (pve-model.md
§2) times the timescale on labs that can scale them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.errors import PvechaosError
from harness.pve.cmap import CMAP_LINE
from harness.timescale import Timescale

COROSYNC_TOKEN_MS = 3000  # corosync exec/totemconfig.c default token (pve-model.md §2)
COROSYNC_TOKEN_COEFFICIENT_MS = 650  # corosync default; pve-cluster >= 9.1 writes 125
COROSYNC_CONSENSUS_FACTOR = 1.2  # consensus = 1.2 x the effective token
COROSYNC_RETRANSMITS_BEFORE_LOSS = 4  # corosync default token_retransmits_before_loss_const
HZ_MS = 10  # corosync's 1000 / HZ (HZ 100) in its derived timeouts


class ConstantsUnavailable(PvechaosError):
    """The cluster's timing constants could not be read from corosync."""


@dataclass(frozen=True)
class ClusterConstants:
    """The timing constants behind every prediction.

    Corosync values are the effective ones, in milliseconds, never scaled. The HA fields
    (``*_s``) are PVE's own numbers at timescale 1 (pve-model.md §2); the properties of
    the same names without ``_s`` (``crm_loop``, ``lock_lifetime``, ...) give them in real
    seconds at ``timescale``. The two resolutions are scaled too: only the embedded lab
    scales, and its pmxcfs compares lock ages as floats, so there they are mere margins.
    """

    nodes: int
    token_ms: int  # effective: runtime.config.totem.token
    token_coefficient_ms: int
    consensus_ms: int  # effective: runtime.config.totem.consensus
    timescale: Timescale
    # PVE HA constants at timescale 1 (pve-model.md §2)
    crm_loop_s: float = 10.0  # CRM master round (CRM.pm $max_time)
    lrm_loop_s: float = 10.0  # LRM active round (LRM.pm $max_time)
    crm_wait_loop_s: float = 5.0  # CRM sleep in wait_for_quorum (CRM.pm)
    lock_lifetime_s: float = 120.0  # pmxcfs lock, expired when age > 120 (memdb.c)
    fence_delay_s: float = 60.0  # NodeStatus.pm $fence_delay
    watchdog_s: float = 60.0  # watchdog-mux client timeout
    watchdog_device_s: float = 10.0  # watchdog-mux sets the device timeout to 10 s
    lock_retry_s: float = 1.0  # get_protected_*_lock: tries 1 s apart
    lock_tries: int = 6  # ... at most 6 of them
    # Resolutions (at timescale 1): pmxcfs compares whole seconds (time(NULL)), so a lock
    # is deletable between age 120 and 121; watchdog-mux checks its clients once a second.
    lock_tick_s: float = 1.0
    watchdog_tick_s: float = 1.0
    # effective: runtime.config.totem.hold; None: corosync's default for this token
    hold_ms: int | None = None

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"nodes must be >= 1, got {self.nodes}")
        if self.token_ms <= 0 or self.consensus_ms <= 0:
            raise ValueError(f"token and consensus must be > 0, got {self.token_ms} ms "
                             f"and {self.consensus_ms} ms")

    @classmethod
    def stock(cls, nodes: int, timescale: Timescale,
              token_coefficient_ms: int = COROSYNC_TOKEN_COEFFICIENT_MS) -> ClusterConstants:
        """Corosync's defaults for ``nodes`` nodes (no explicit token or consensus)."""
        token = COROSYNC_TOKEN_MS + max(0, nodes - 2) * token_coefficient_ms
        return cls(nodes, token, token_coefficient_ms,
                   round(COROSYNC_CONSENSUS_FACTOR * token), timescale)

    def s(self, seconds_at_1: float) -> float:
        """A PVE HA duration in real seconds at this timescale."""
        return self.timescale.scaled(seconds_at_1)

    # scaled HA terms, real seconds
    @property
    def crm_loop(self) -> float:
        return self.s(self.crm_loop_s)

    @property
    def lrm_loop(self) -> float:
        return self.s(self.lrm_loop_s)

    @property
    def crm_wait_loop(self) -> float:
        return self.s(self.crm_wait_loop_s)

    @property
    def lock_lifetime(self) -> float:
        return self.s(self.lock_lifetime_s)

    @property
    def lock_tick(self) -> float:
        return self.s(self.lock_tick_s)

    @property
    def fence_delay(self) -> float:
        return self.s(self.fence_delay_s)

    @property
    def watchdog(self) -> float:
        return self.s(self.watchdog_s)

    @property
    def watchdog_device(self) -> float:
        return self.s(self.watchdog_device_s)

    @property
    def watchdog_tick(self) -> float:
        return self.s(self.watchdog_tick_s)

    @property
    def lock_retry(self) -> float:
        return self.s(self.lock_retry_s)

    # unscaled corosync terms, real seconds
    @property
    def token(self) -> float:
        return self.token_ms / 1000

    @property
    def consensus(self) -> float:
        return self.consensus_ms / 1000

    @property
    def token_hold(self) -> float:
        """How long the ring's representative may hold the token while the ring is idle
        (corosync.conf(5) ``hold``), in seconds: a survivor may have last seen the token
        that long before a cut, and declares it lost ``token`` after *that*. Without a
        value read from corosync, its default for this token as totemconfig.c derives it:
        token_retransmit = token / (retransmits_before_loss + 0.2), hold = 0.8 x
        token_retransmit - 1000/HZ ms: 685 ms for a 3650 ms token, which the embedded
        lab's corosync 3 reports as runtime.config.totem.hold."""
        if self.hold_ms is not None:
            return self.hold_ms / 1000
        retransmit = int(self.token_ms / (COROSYNC_RETRANSMITS_BEFORE_LOSS + 0.2))
        return int(retransmit * 0.8 - HZ_MS) / 1000

    @property
    def detection(self) -> float:
        """Power cut -> corosync drops the node: token loss, then the consensus timeout."""
        return self.token + self.consensus

    @property
    def earliest_detection(self) -> float:
        """The soonest corosync may drop a node after its cut: ``detection`` less the
        token hold (the survivors' token timers may have started that long before)."""
        return self.detection - self.token_hold

    @property
    def fence_countdown(self) -> float:
        """From last_online to the first CRM round with now - last_online >= fence delay.

        Rounds come every CRM loop starting at last_online, so this is the fence delay
        rounded up to whole rounds (60 s at timescale 1: exactly six rounds).
        """
        rounds = math.ceil(self.fence_delay / self.crm_loop - 1e-9)
        return rounds * self.crm_loop


# -- reading the constants from a cluster --------------------------------------------
# corosync-cmapctl -g KEY prints one line "KEY (TYPE) = VALUE" (tools/corosync-cmapctl.c,
# print_key: printf("%s (", key) then "u32) = %u"); a missing key prints "Can't get key
# KEY. Error CS_ERR_NOT_EXIST" on stderr (exit code 1 on corosync 3, 0 on old versions).
_INTEGER_TYPES = {"u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "str"}


def parse_cmap_value(text: str, key: str) -> int | None:
    """The integer value of ``key`` in corosync-cmapctl output; None when it is absent."""
    for line in text.splitlines():
        m = CMAP_LINE.match(line.strip())
        if not m or m["key"] != key:
            continue
        value = m["value"].strip()
        if m["type"] not in _INTEGER_TYPES or not value.isdigit():
            raise ConstantsUnavailable(
                f"corosync-cmapctl gave {key} as {m['type']} {value!r}, not an integer",
                hint="check `corosync-cmapctl -g " + key + "` on the node")
        return int(value)
    return None


def _cmap_get(node, key: str) -> int | None:
    try:
        result = node.run("corosync-cmapctl", "-g", key, timeout_s=10.0)
    except PvechaosError as exc:
        raise ConstantsUnavailable(
            f"cannot read corosync's {key} from {getattr(node, 'name', node)}: "
            f"{str(exc).splitlines()[0]}",
            hint="the node must answer over SSH with corosync running") from exc
    value = parse_cmap_value(result.stdout, key)
    if value is None and result.rc != 0 and "CS_ERR_NOT_EXIST" not in result.stderr:
        raise ConstantsUnavailable(
            f"{getattr(node, 'name', node)}: `corosync-cmapctl -g {key}` exited with "
            f"{result.rc}: {(result.stderr or result.stdout).strip() or '(no output)'}",
            hint="is corosync running on the node? (`systemctl status corosync`)")
    return value


def read_constants(node, timescale: Timescale, nodes: int) -> ClusterConstants:
    """The effective corosync constants of the running cluster, as seen from ``node``.

    Reads ``runtime.config.totem.token`` and ``runtime.config.totem.consensus`` (the
    values corosync computed and uses). The coefficient is not among the runtime keys of
    corosync 3 (a recorded `corosync-cmapctl` listing shows none), so it comes from
    ``runtime.config.totem.token_coefficient`` if present, else from the configured
    ``totem.token_coefficient`` (pve-cluster >= 9.1 writes 125), else corosync's 650.
    ``node`` is anything with ``run(*argv, timeout_s=...)`` returning rc/stdout/stderr
    (harness.cluster.Node).
    """
    name = getattr(node, "name", str(node))
    token = _cmap_get(node, "runtime.config.totem.token")
    consensus = _cmap_get(node, "runtime.config.totem.consensus")
    missing = [k for k, v in (("runtime.config.totem.token", token),
                              ("runtime.config.totem.consensus", consensus)) if v is None]
    if missing:
        raise ConstantsUnavailable(
            f"{name}: corosync has no {' and '.join(missing)}",
            hint="corosync must be running and part of a cluster on the node "
                 "(`corosync-cmapctl runtime.config.totem` lists the effective values)")
    coefficient = _cmap_get(node, "runtime.config.totem.token_coefficient")
    if coefficient is None:
        coefficient = _cmap_get(node, "totem.token_coefficient")
    if coefficient is None:
        coefficient = COROSYNC_TOKEN_COEFFICIENT_MS
    assert token is not None and consensus is not None
    return ClusterConstants(nodes, token, coefficient, consensus, timescale,
                            hold_ms=_cmap_get(node, "runtime.config.totem.hold"))
