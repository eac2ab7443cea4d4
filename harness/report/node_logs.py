"""Node logs around a fault, as evidence: `journalctl` on every node that answers, for the
cluster's and HA's units and the guest's, over a window of wall-clock time, redacted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from harness.cluster import Cluster
from harness.errors import PvechaosError
from harness.report.redact import redact

UNITS = ("corosync", "pve-cluster", "pve-ha-crm", "pve-ha-lrm", "watchdog-mux")
LEAD_S = 10.0  # node logs from this long before a fault
MAX_CHARS = 200_000  # per node: the tail is kept (the fault's aftermath matters most)


def journal_argv(since: float, until: float, units: tuple[str, ...]) -> list[str]:
    argv = ["journalctl", "--no-pager", "-o", "short-iso", "--since", f"@{since:.0f}",
            "--until", f"@{until:.0f}"]
    for unit in units:
        argv += ["-u", unit]
    return argv


def collect(cluster: Cluster, since: float, until: float, *, guest_vmids: Iterable[int] = (),
            names: tuple[str, ...] | None = None, timeout_s: float = 20.0) -> dict[str, str]:
    """node -> its redacted log lines between the wall-clock times ``since`` and ``until``
    (epoch seconds), for every node that answers; a node that does not says why. The
    guests' own units (``pve-container@<vmid>``) are read too."""
    units = UNITS + tuple(f"pve-container@{vmid}" for vmid in guest_vmids)
    argv = journal_argv(since, until, units)
    out: dict[str, str] = {}
    for name in names or cluster.names:
        if not cluster.lab.is_powered(name):
            out[name] = "(powered off: no logs to read)"
            continue
        try:
            result = cluster.node(name).run(*argv, timeout_s=timeout_s)
        except PvechaosError as exc:
            out[name] = f"(logs unavailable: {str(exc).splitlines()[0]})"
            continue
        text = result.stdout if result.rc == 0 else f"(journalctl: {result.stderr.strip()})"
        if len(text) > MAX_CHARS:
            text = "[... earlier lines cut ...]\n" + text[-MAX_CHARS:]
        out[name] = redact(text)
    return out


WATCHDOG_WORDS = ("watchdog", "lock", "quorum", "status change")


def watchdog_trail(cluster: Cluster, name: str, since: float, *, lines: int = 12) -> str:
    """Why ``name`` may have reset since the wall-clock time ``since``: its HA daemons' and
    watchdog-mux's lines about the watchdog, locks, quorum and state changes, the last
    ``lines`` of them (for an assertion message, where the full logs do not fit)."""
    text = collect(cluster, since, time.time(), names=(name,))[name]
    kept = [line for line in text.splitlines()
            if any(word in line for word in WATCHDOG_WORDS)]
    return "\n".join(kept[-lines:]) or text.strip()[-2000:] or "(no log lines)"
