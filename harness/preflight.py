"""A read-only preflight of any cluster: does it meet what PVE requires of one?

Only SSH and PVE's own commands, nothing written anywhere, so it runs on the embedded
lab, the libvirt lab and an existing (inventory) cluster without --destructive:

    results = preflight.run(cluster)   # one Check per requirement
    print(preflight.render(results))   # the terminal table
    preflight.attach(results)          # the same table (and JSON) in the Allure report

The checks and the sources of their thresholds are in harness/preflight_checks.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from harness import preflight_checks as checks
from harness.cluster import Cluster, Node
from harness.errors import PvechaosError
from harness.preflight_checks import Check, ClockReading, Verdict
from harness.pve.cmap import CorosyncNode, parse_knet_links, parse_nodelist
from harness.pve.storage import (
    StorageDef,
    parse_ha_resources,
    parse_pvesm_status,
    parse_storage_cfg,
)

COMMAND_TIMEOUT_S = 20.0
GATHER_TIMEOUT_S = 120.0  # all nodes in parallel, each a dozen bounded commands
CLOCK_SAMPLES = 3  # the reading with the shortest round trip is kept
WATCHDOG = ("systemctl is-active watchdog-mux; "
            "sed -n 's/^WATCHDOG_MODULE=//p' /etc/default/pve-ha-manager 2>/dev/null; true")
GUEST_DIRS = {"vm": "qemu-server", "ct": "lxc"}
# no storage.cfg yet (a cluster nobody added storage to) is read by PVE as no storage but
# its default `local` (pve-storage Plugin.pm parse_config)
STORAGE_CFG = "[ ! -e /etc/pve/storage.cfg ] || cat /etc/pve/storage.cfg"
ASKED = ("version", "quorum", "links", "knet", "clock", "watchdog", "pvesm")
T = TypeVar("T")

__all__ = ["Check", "Verdict", "attach", "render", "run", "to_json"]


@dataclass
class NodeFacts:
    """What one node answered; each value a parsed answer or the exception it raised."""

    name: str
    answers: dict[str, object] = field(default_factory=dict)
    reached: bool = False  # it answered over SSH: ask it the cluster-wide questions

    def ask(self, what: str, fn: Callable[[], object]) -> None:
        self.answers[what] = _answer(fn)


def _clock(node: Node) -> ClockReading:
    best: ClockReading | None = None
    for _ in range(CLOCK_SAMPLES):
        before = time.time()
        shown = node.check("date", "+%s.%N", timeout_s=COMMAND_TIMEOUT_S)
        after = time.time()
        try:
            value = float(shown.strip())
        except ValueError:
            raise PvechaosError(f"{node.name}: `date +%s.%N` printed {shown.strip()!r}",
                                hint="the node needs GNU date") from None
        reading = ClockReading(value - (before + after) / 2, (after - before) / 2)
        if best is None or reading.error_s < best.error_s:
            best = reading
    assert best is not None
    return best


def _watchdog(node: Node) -> tuple[str, str]:
    lines = node.run(WATCHDOG, timeout_s=COMMAND_TIMEOUT_S).stdout.splitlines()
    return (lines[0].strip() if lines else "unknown",
            lines[1].strip().strip("\"'") if len(lines) > 1 else "")


def gather(node: Node) -> NodeFacts:
    """Ask one node everything the checks need; an unreachable node fails every ask."""
    t = COMMAND_TIMEOUT_S
    reach = _answer(lambda: node.check("true", timeout_s=t))
    if isinstance(reach, Exception):
        return NodeFacts(node.name, dict.fromkeys(ASKED, reach))
    facts = NodeFacts(node.name, reached=True)
    facts.ask("version", node.pve_version)
    facts.ask("quorum", lambda: node.quorum(timeout_s=t))
    facts.ask("links", node.links)
    facts.ask("knet", lambda: parse_knet_links(
        node.check("corosync-cmapctl", "-m", "stats", "stats.knet", timeout_s=t)))
    facts.ask("clock", lambda: _clock(node))
    facts.ask("watchdog", lambda: _watchdog(node))
    facts.ask("pvesm", lambda: parse_pvesm_status(node.check("pvesm", "status",
                                                             timeout_s=t)))
    return facts


def _guest_config(node: Node, kind: str, vmid: int) -> str | None:
    pattern = f"/etc/pve/nodes/*/{GUEST_DIRS[kind]}/{vmid}.conf"
    out = node.check(f'for f in {pattern}; do [ -f "$f" ] && cat "$f" && exit 0; done; '
                     "exit 3", timeout_s=COMMAND_TIMEOUT_S, ok_codes=(0, 3))
    return out or None


def _answer(fn: Callable[[], T]) -> T | Exception:
    try:
        return fn()
    except PvechaosError as exc:
        return exc


@dataclass
class ClusterFacts:
    """What any one node answers for the whole cluster: corosync's nodelist and the
    cluster-wide files in /etc/pve; each a parsed answer or the exception it raised."""

    nodelist: tuple[CorosyncNode, ...] | Exception
    storages: dict[str, StorageDef] | Exception
    resources: tuple[tuple[str, int], ...] | Exception
    configs: dict[str, str | None | Exception] = field(default_factory=dict)

    @classmethod
    def of(cls, node: Node) -> ClusterFacts:
        t = COMMAND_TIMEOUT_S
        facts = cls(
            _answer(lambda: parse_nodelist(
                node.check("corosync-cmapctl", "nodelist.node", timeout_s=t))),
            _answer(lambda: parse_storage_cfg(node.check(STORAGE_CFG, timeout_s=t))),
            _answer(lambda: parse_ha_resources(
                node.check("ha-manager", "config", timeout_s=t))))
        if not isinstance(facts.resources, Exception):
            for kind, vmid in facts.resources:
                facts.configs[f"{kind}:{vmid}"] = _answer(
                    lambda k=kind, v=vmid: _guest_config(node, k, v))
        return facts


def _pick(facts: dict[str, NodeFacts], what: str) -> dict[str, Any]:
    return {name: f.answers[what] for name, f in facts.items()}


def run(cluster: Cluster, *, timeout_s: float = GATHER_TIMEOUT_S) -> list[Check]:
    """Every check on ``cluster``; read-only. Never raises for what a node answers: a node
    that does not answer fails the checks that needed it."""
    gathered = cluster.each(gather, timeout_s=timeout_s)
    facts = {name: f if isinstance(f, NodeFacts) else NodeFacts(name, dict.fromkeys(ASKED, f))
             for name, f in gathered.items()}
    reachable = [n for n in cluster.nodes() if facts[n.name].reached]
    if reachable:
        whole = ClusterFacts.of(reachable[0])
    else:
        nobody = PvechaosError("no node answers over SSH")
        whole = ClusterFacts(nobody, nobody, nobody)
    ids: dict[str, int] = {}
    members: list[str] | Exception = whole.nodelist if isinstance(
        whole.nodelist, Exception) else []
    links, knet = _pick(facts, "links"), _pick(facts, "knet")
    if isinstance(whole.nodelist, Exception):  # no node ids: the link checks cannot judge
        links = knet = dict.fromkeys(cluster.names, whole.nodelist)
    else:
        ids = {cluster.name_of(n.ring0_addr) if n.ring0_addr else n.name: n.nodeid
               for n in whole.nodelist}
        members = list(ids)
    return [
        checks.node_count(cluster.names, members),
        checks.versions(_pick(facts, "version")),
        checks.quorum(_pick(facts, "quorum"), len(cluster.names)),
        checks.links(links, ids),
        checks.udp_pairs(links, ids),
        checks.latency(knet, ids),
        checks.clocks(_pick(facts, "clock")),
        checks.watchdog(_pick(facts, "watchdog")),
        checks.shared_storage(whole.storages, _pick(facts, "pvesm")),
        checks.ha_storage(whole.resources, whole.configs, whole.storages),
    ]


def render(results: list[Check]) -> str:
    """The terminal table: one line per check (name, verdict, found, fix), and a total."""
    width = max((len(r.name) for r in results), default=5)
    lines = [f"{'check':<{width}}  verdict  found / fix"]
    for r in results:
        line = f"{r.name:<{width}}  {r.verdict.value.upper():<7}  {r.found}"
        lines.append(line + (f"  -> fix: {r.fix}" if r.fix and r.verdict != Verdict.OK
                             else ""))
    counts = {v: sum(r.verdict == v for r in results) for v in Verdict}
    lines.append(f"preflight: {counts[Verdict.OK]} ok, {counts[Verdict.WARN]} warn, "
                 f"{counts[Verdict.FAIL]} fail")
    return "\n".join(lines)


def to_json(results: list[Check]) -> str:
    return json.dumps([r.to_json() for r in results], indent=1)


def failed(results: list[Check]) -> list[Check]:
    return [r for r in results if r.verdict == Verdict.FAIL]


def attach(results: list[Check], *, name: str = "preflight") -> None:
    """The table and the JSON as attachments of the running Allure test (or step)."""
    import allure

    allure.attach(render(results), name=name, attachment_type=allure.attachment_type.TEXT)
    allure.attach(to_json(results), name=f"{name}.json",
                  attachment_type=allure.attachment_type.JSON)
