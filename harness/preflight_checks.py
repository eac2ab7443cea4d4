"""The preflight's checks, as pure functions of what the nodes answered (harness/preflight.py
gathers it). Each returns one Check: its verdict, what it found and the fix.

The requirements and where they come from:
- node count: "clusters can consist of up to 32 physical nodes (probably more, dependent
  on network latency)" and "at least three nodes for reliable quorum" for HA (pve-docs
  pvecm.adoc, intro and Requirements);
- one PVE version: "All nodes should have the same version" (pvecm.adoc, Requirements);
- latency: "latencies under 2 milliseconds (LAN performance)" (pvecm.adoc, PVE 5 era, and
  this project's requirement) is the warning line; "under 5 milliseconds ... to operate
  stably" (pvecm.adoc today, pve-faults.md §5.3) the failing one. The figure is knet's own
  running average round trip per peer and link (harness/pve/cmap.py);
- UDP 5405-5412: a knet link to a peer is "connected" only while its pings and pongs
  cross the link's port (5405 + link number), so corosync's own link state is the proof;
- clocks: "Date and time have to be synchronized" (pvecm.adoc); ha-manager flags a node's
  status "detected time drift!" when it is more than 2 s ahead (pve-faults.md §7.4), the
  failing line; 50 ms, Ceph's default mon_clock_drift_allowed, the warning line;
- watchdog: HA fencing needs watchdog-mux, which exits when it cannot open /dev/watchdog
  (HA src/watchdog-mux.c), so an active watchdog-mux is a watchdog in use; its device is
  softdog unless WATCHDOG_MODULE is set in /etc/default/pve-ha-manager;
- shared storage: an HA guest can only be recovered on another node from storage that
  node sees: every volume of every HA resource on shared storage (harness/pve/storage.py)
  active on every node.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from harness.pve import PveVersion, QuorumStatus
from harness.pve.cmap import KnetLink
from harness.pve.corosync_cfgtool import LinkPeer
from harness.pve.storage import StorageDef, guest_volumes, volume_storage

MAX_NODES = 32
HA_MIN_NODES = 3
LATENCY_WARN_US = 2000
LATENCY_FAIL_US = 5000
CLOCK_WARN_S = 0.05
CLOCK_FAIL_S = 2.0


class Verdict(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    found: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "verdict": self.verdict.value, "found": self.found,
                "fix": self.fix}


@dataclass(frozen=True)
class ClockReading:
    offset_s: float  # the node's `date` minus the harness clock at mid round trip
    error_s: float  # half the SSH round trip: the offset is known to within this


T = TypeVar("T")


def _answered(name: str, answers: Mapping[str, T | Exception]) -> dict[str, T] | Check:
    """The answers, or a failing Check naming the nodes whose command raised."""
    bad = {n: a for n, a in answers.items() if isinstance(a, Exception)}
    if not bad:
        return {n: a for n, a in answers.items() if not isinstance(a, Exception)}
    found = "; ".join(f"{n}: {str(e).splitlines()[0]}" for n, e in sorted(bad.items()))
    return Check(name, Verdict.FAIL, f"no answer: {found}",
                 "make every node answer over SSH with corosync and pve-cluster running "
                 "(systemctl status corosync pve-cluster)")


def node_count(lab_names: Sequence[str], members: Sequence[str] | Exception) -> Check:
    """``members``: the lab's names of the nodes in corosync's nodelist."""
    got = _answered("node count", {"nodelist": members})
    if isinstance(got, Check):
        return got
    names = sorted(got["nodelist"])
    found = f"{len(names)} nodes in corosync's nodelist ({', '.join(names)})"
    unknown = sorted(set(lab_names) - set(names))
    if unknown:
        return Check("node count", Verdict.FAIL, f"{found}; the lab also lists "
                     f"{', '.join(unknown)}", "list only the cluster's own nodes in the lab "
                     "(inventory), or join them: pvecm add")
    if len(names) > MAX_NODES:
        return Check("node count", Verdict.FAIL, f"{found}, above PVE's {MAX_NODES}",
                     f"split the cluster: PVE documents clusters of up to {MAX_NODES} nodes")
    unlisted = sorted(set(names) - set(lab_names))
    if unlisted:
        return Check("node count", Verdict.WARN, f"{found}; the lab does not list "
                     f"{', '.join(unlisted)}, so no check reaches it",
                     "list every cluster node in the lab (inventory)")
    if len(names) < HA_MIN_NODES:
        return Check("node count", Verdict.WARN, f"{found}, below {HA_MIN_NODES}",
                     "HA needs three votes for reliable quorum: add a node or a QDevice")
    return Check("node count", Verdict.OK, f"{found}, within PVE's {MAX_NODES}")


def versions(answers: Mapping[str, PveVersion | Exception]) -> Check:
    got = _answered("pve version", answers)
    if isinstance(got, Check):
        return got
    by_version: dict[str, list[str]] = {}
    for node, version in sorted(got.items()):
        by_version.setdefault(version.manager, []).append(node)
    if len(by_version) == 1:
        return Check("pve version", Verdict.OK, f"pve-manager {next(iter(by_version))} on "
                     f"all {len(got)} nodes")
    found = "; ".join(f"{v} on {', '.join(ns)}" for v, ns in sorted(by_version.items()))
    return Check("pve version", Verdict.FAIL, f"mixed: {found}",
                 "upgrade every node to the same version (apt update && apt full-upgrade, "
                 "one node at a time)")


def quorum(answers: Mapping[str, QuorumStatus | Exception], lab_size: int) -> Check:
    got = _answered("quorum", answers)
    if isinstance(got, Check):
        return got
    problems = []
    for node, status in sorted(got.items()):
        if not status.quorate:
            problems.append(f"{node} not quorate")
        if len(status.members) != lab_size:
            problems.append(f"{node} sees {len(status.members)} of {lab_size} members")
        if status.total_votes != status.expected_votes:
            problems.append(f"{node} has {status.total_votes} of {status.expected_votes} "
                            "expected votes")
    if problems:
        return Check("quorum", Verdict.FAIL, "; ".join(problems),
                     "bring every node's corosync into the membership (corosync-cfgtool -n, "
                     "journalctl -u corosync); check quorum_votes in corosync.conf")
    any_status = next(iter(got.values()))
    return Check("quorum", Verdict.OK, f"quorate on all {len(got)} nodes, votes "
                 f"{any_status.total_votes}/{any_status.expected_votes}, quorum "
                 f"{any_status.quorum}")


Links = Mapping[str, "Sequence[LinkPeer] | Exception"]


def _connected(views: Mapping[str, Sequence[LinkPeer]], node: str, peer_id: int
               ) -> list[int]:
    return [p.link for p in views[node] if p.nodeid == peer_id and p.state == "connected"]


def links(answers: Links, ids: Mapping[str, int]) -> Check:
    """Every configured knet link of every node, to every peer, connected: a link down
    while the pair talks over another one is a warning, a pair left without any a failure."""
    views = _answered("corosync links", answers)
    if isinstance(views, Check):
        return views
    name_of = {i: n for n, i in ids.items()}
    down, cut = [], False
    for node, peers in sorted(views.items()):
        link_ids = sorted({p.link for p in peers})
        for peer, peer_id in sorted(ids.items()):
            if peer == node:
                continue
            up = _connected(views, node, peer_id)
            for link in link_ids:
                if link not in up:
                    state = next((p.state for p in peers if p.link == link
                                  and p.nodeid == peer_id), "absent")
                    down.append(f"{node}->{name_of.get(peer_id, peer_id)} link {link} {state}")
            cut = cut or not up
    if down:
        return Check("corosync links", Verdict.FAIL if cut else Verdict.WARN,
                     "; ".join(down), "check the link's interface, address and MTU on both "
                     "ends (corosync-cfgtool -n; ip -br addr); see 'udp 5405' for the pairs")
    count = len({p.link for peers in views.values() for p in peers})
    return Check("corosync links", Verdict.OK, f"{count} link(s) connected from every node "
                 "to every peer")


def udp_pairs(answers: Links, ids: Mapping[str, int]) -> Check:
    """Each pair of nodes talks over knet (UDP 5405 + link) in both directions."""
    views = _answered("udp 5405", answers)
    if isinstance(views, Check):
        return views
    names = sorted(n for n in ids if n in views)
    silent, pairs = [], 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pairs += 1
            ab, ba = _connected(views, a, ids[b]), _connected(views, b, ids[a])
            if not ab or not ba:
                silent.append(f"{a}<->{b} ({a} sees {b} {'up' if ab else 'down'}, "
                              f"{b} sees {a} {'up' if ba else 'down'})")
    if silent:
        return Check("udp 5405", Verdict.FAIL, "no knet link: " + "; ".join(silent),
                     "open UDP 5405-5412 both ways between the nodes' cluster addresses "
                     "(firewall, nftables, switch ACLs)")
    return Check("udp 5405", Verdict.OK, f"all {pairs} pairs exchange knet pings and pongs")


def latency(answers: Mapping[str, Sequence[KnetLink] | Exception],
            ids: Mapping[str, int]) -> Check:
    """The worst pair's knet average round trip, over both ends and every live link."""
    got = _answered("latency", answers)
    if isinstance(got, Check):
        return got
    name_of = {i: n for n, i in ids.items()}
    worst: dict[tuple[str, str], int] = {}
    for node, knet in sorted(got.items()):
        for link in knet:
            if link.nodeid == ids.get(node) or not link.connected or not link.latency_samples:
                continue
            a, b = sorted((node, name_of.get(link.nodeid, str(link.nodeid))))
            worst[a, b] = max(worst.get((a, b), 0), link.latency_ave_us)
    if not worst:
        return Check("latency", Verdict.WARN, "knet has no round-trip samples yet",
                     "run the preflight again once corosync has run a few seconds")
    (a, b), us = max(worst.items(), key=lambda kv: kv[1])
    found = f"worst knet average round trip {us / 1000:.2f} ms ({a}<->{b}) over " \
            f"{len(worst)} pairs"
    fix = "give corosync its own low-latency network (a dedicated NIC or VLAN, pvecm.adoc " \
          "'Cluster Network'); a second link (ring1_addr) adds redundancy"
    if us > LATENCY_FAIL_US:
        return Check("latency", Verdict.FAIL, f"{found}, above {LATENCY_FAIL_US / 1000:g} ms",
                     fix)
    if us > LATENCY_WARN_US:
        return Check("latency", Verdict.WARN, f"{found}, above {LATENCY_WARN_US / 1000:g} ms",
                     fix)
    return Check("latency", Verdict.OK, f"{found}, under {LATENCY_WARN_US / 1000:g} ms")


def clocks(answers: Mapping[str, ClockReading | Exception]) -> Check:
    """The nodes' clocks against each other; the harness clock is only the yardstick."""
    readings = _answered("clock sync", answers)
    if isinstance(readings, Check):
        return readings
    # the least spread the readings allow: each offset is known only to within its error
    high = max(r.offset_s - r.error_s for r in readings.values())
    low = min(r.offset_s + r.error_s for r in readings.values())
    spread = max(0.0, high - low)
    shown = ", ".join(f"{n} {r.offset_s:+.3f}±{r.error_s:.3f}"
                      for n, r in sorted(readings.items()))
    found = f"spread at least {spread:.3f} s (offsets to the harness clock: {shown} s)"
    fix = "run chrony on every node against the same time source (pve-docs " \
          "'Time Synchronization'); chronyc makestep steps a clock at once"
    if spread > CLOCK_FAIL_S:
        return Check("clock sync", Verdict.FAIL, f"{found}, above {CLOCK_FAIL_S:g} s", fix)
    if spread > CLOCK_WARN_S:
        return Check("clock sync", Verdict.WARN, f"{found}, above {CLOCK_WARN_S:g} s", fix)
    return Check("clock sync", Verdict.OK, found)


def watchdog(answers: Mapping[str, tuple[str, str] | Exception]) -> Check:
    """``answers``: node -> (watchdog-mux's `systemctl is-active` word, WATCHDOG_MODULE or
    "")."""
    got = _answered("watchdog", answers)
    if isinstance(got, Check):
        return got
    inactive = [f"{n} {state}" for n, (state, _) in sorted(got.items()) if state != "active"]
    modules = sorted({module or "softdog" for _, module in got.values()})
    if inactive:
        return Check("watchdog", Verdict.FAIL, f"watchdog-mux {', '.join(inactive)}",
                     "systemctl start watchdog-mux (pve-ha-lrm and pve-ha-crm want it); for "
                     "a hardware watchdog set WATCHDOG_MODULE in /etc/default/pve-ha-manager")
    return Check("watchdog", Verdict.OK, f"watchdog-mux active on all {len(got)} nodes, "
                 f"device {', '.join(modules)}")


Storages = Mapping[str, StorageDef]


def shared_storage(storages: Storages | Exception,
                   status: Mapping[str, Mapping[str, str] | Exception]) -> Check:
    """Every shared, enabled storage active on every node it is meant for."""
    cfg = _answered("shared storage", {"storage.cfg": storages})
    states = _answered("shared storage", status)
    if isinstance(cfg, Check):
        return cfg
    if isinstance(states, Check):
        return states
    shared = [s for s in cfg["storage.cfg"].values() if s.shared and not s.disabled]
    if not shared:
        return Check("shared storage", Verdict.WARN, "no shared storage configured",
                     "add one every node reaches (pvesm add nfs|cephfs|rbd ...): HA can only "
                     "recover a guest whose disks another node sees")
    problems = []
    for storage in shared:
        for node, listed in sorted(states.items()):
            if storage.on(node) and listed.get(storage.storage_id) != "active":
                state = listed.get(storage.storage_id, "not listed")
                problems.append(f"{storage.storage_id} {state} on {node}")
    if problems:
        return Check("shared storage", Verdict.FAIL, "; ".join(problems),
                     "make the storage reachable from that node (pvesm status; mount, "
                     "network, credentials), or limit it with `pvesm set ID --nodes ...`")
    names = ", ".join(f"{s.storage_id} ({s.type})" for s in shared)
    return Check("shared storage", Verdict.OK, f"{names} active on every node")


def ha_storage(resources: Sequence[tuple[str, int]] | Exception,
               configs: Mapping[str, str | None | Exception],
               storages: Storages | Exception) -> Check:
    """``configs``: sid -> the guest's config text (None: not found anywhere)."""
    listed = _answered("ha on shared", {"ha-manager config": resources})
    if isinstance(listed, Check):
        return listed
    known = _answered("ha on shared", {"storage.cfg": storages})
    if isinstance(known, Check):
        return known
    texts = _answered("ha on shared", configs)
    if isinstance(texts, Check):
        return texts
    if not listed["ha-manager config"]:
        return Check("ha on shared", Verdict.OK, "no HA resources configured")
    cfg = known["storage.cfg"]
    problems = []
    for sid, text in sorted(texts.items()):
        if text is None:
            problems.append(f"{sid}: no guest config in /etc/pve/nodes/*")
            continue
        for key, volume in guest_volumes(text):
            storage = volume_storage(volume)
            if storage is None:
                problems.append(f"{sid} {key} is the path {volume}")
            elif storage not in cfg:
                problems.append(f"{sid} {key} on unknown storage {storage}")
            elif not cfg[storage].shared:
                problems.append(f"{sid} {key} on local storage {storage} "
                                f"({cfg[storage].type})")
    if problems:
        return Check("ha on shared", Verdict.FAIL, "; ".join(problems),
                     "move those volumes to shared storage (qm disk move / pct move-volume), "
                     "or set `shared 1` on a storage every node really sees")
    return Check("ha on shared", Verdict.OK, f"all volumes of {len(texts)} HA resource(s) "
                 "on shared storage")
