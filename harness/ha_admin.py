"""What an administrator does to HA nodes, with PVE's own commands over SSH: manual
maintenance, the cluster's shutdown policy, a clean poweroff or reboot of a node.

Lab-agnostic: commands go to the nodes over SSH (harness/cluster.py); only whether a node
is powered comes from the lab (``lab.is_powered``). Sources:

* maintenance: `ha-manager crm-command node-maintenance enable|disable <node>`, which has
  no REST endpoint (pve-operations.md §4.1, §4.2; pve-model.md §8.2). The node is empty
  when no HA service located on it is started/migrate/relocate and its LRM shows
  `maintenance mode` (pve-operations §4.1 "Done when"; LRM line text: pve-model §12.2);
* the shutdown policy: `pvesh set /cluster/options --ha shutdown_policy=<p>`, removed
  with `--delete ha`; read back with `pvesh get /cluster/options` (pve-operations §4.4);
  no `ha` key means `conditional` (pve-model §8.1);
* poweroff and reboot: `systemctl poweroff|reboot`. The LRM reads the policy at shutdown
  time and tells reboot from poweroff by systemd's jobs (pve-operations §4.3), so the
  command must be a real system shutdown, not a power cut. The SSH session may be cut by
  the shutdown itself: that is not an error.
"""

from __future__ import annotations

import json

from harness.cluster import Cluster, Node
from harness.errors import ConfigError, PvechaosError
from harness.pve.ha_status import HaStatus, parse_ha_status_current
from harness.waits import NotYet, wait_until

COMMAND_TIMEOUT_S = 30.0
POLICIES = ("conditional", "freeze", "failover", "migrate")  # pve-model §8.1
DEFAULT_POLICY = "conditional"
# CRM states of a service that still occupies its node during maintenance (pve-ops §4.1)
OCCUPYING = frozenset({"started", "migrate", "relocate"})
MAINTENANCE_MODE = "maintenance mode"  # the LRM line while its mode is maintenance (§12.2)


# -- where a command runs -------------------------------------------------------------------
def powered_nodes(cluster: Cluster) -> list[Node]:
    """The cluster's nodes the lab says are powered, in name order."""
    return [n for n in cluster.nodes() if cluster.lab.is_powered(n.name)]


def _runner(where: Cluster | Node, avoid: str | None = None) -> Node:
    """``where`` itself when it is a node; else the first powered node of the cluster,
    preferring one other than ``avoid`` (the node being acted on)."""
    if isinstance(where, Node):
        return where
    nodes = powered_nodes(where)
    others = [n for n in nodes if n.name != avoid]
    if not nodes:
        raise PvechaosError("no node of the cluster is powered",
                            hint="power a node on before running HA commands")
    return (others or nodes)[0]


# -- HA status -----------------------------------------------------------------------------
def ha_current(where: Cluster | Node) -> HaStatus:
    """`pvesh get /cluster/ha/status/current --output-format json`, parsed (it gives each
    service's CRM state, which `ha-manager status` hides behind e.g. `starting`)."""
    node = _runner(where)
    return parse_ha_status_current(node.check(
        "pvesh", "get", "/cluster/ha/status/current", "--output-format", "json",
        timeout_s=COMMAND_TIMEOUT_S))


def master_node(where: Cluster | Node) -> str | None:
    """The node HA's status names as CRM master (None while none is)."""
    master = ha_current(where).master
    return None if master is None else master.node


# -- maintenance ---------------------------------------------------------------------------
def _maintenance(where: Cluster | Node, action: str, target: str) -> None:
    _runner(where, avoid=target).check(
        "ha-manager", "crm-command", "node-maintenance", action, target,
        timeout_s=COMMAND_TIMEOUT_S)


def maintenance_on(where: Cluster | Node, target: str) -> None:
    """`ha-manager crm-command node-maintenance enable <target>`, run on ``where`` (a
    node, or any powered node of a cluster, another than ``target`` if there is one).
    It only queues the request: the CRM acts in its next rounds (wait_node_empty)."""
    _maintenance(where, "enable", target)


def maintenance_off(where: Cluster | Node, target: str) -> None:
    """`ha-manager crm-command node-maintenance disable <target>` (see maintenance_on).
    Services whose maintenance node it was move back if it is in their top priority
    class (pve-operations §4.2)."""
    _maintenance(where, "disable", target)


def node_occupancy(status: HaStatus, target: str) -> str | None:
    """None when ``target`` is empty as pve-operations §4.1 defines it (no service on it
    started/migrate/relocate, its LRM in `maintenance mode`); else what is still there."""
    busy = sorted(f"{s.sid} {s.crm_state or s.state}" for s in status.services.values()
                  if s.node == target and (s.crm_state or s.state) in OCCUPYING)
    lrm = status.lrms.get(target)
    problems = []
    if busy:
        problems.append("still on it: " + ", ".join(busy))
    if lrm is None or lrm.status != MAINTENANCE_MODE:
        problems.append(f"lrm {target}: {lrm.status if lrm else 'not listed'}")
    return "; ".join(problems) or None


def wait_node_empty(cluster: Cluster, target: str, *, timeout_s: float) -> HaStatus:
    """Wait (bounded) until ``target`` is empty after maintenance_on (node_occupancy),
    reading HA's status on a powered node other than ``target``. Returns that status."""
    def empty() -> HaStatus | NotYet:
        status = ha_current(_runner(cluster, avoid=target))
        seen = node_occupancy(status, target)
        return status if seen is None else NotYet(seen)
    return wait_until(f"{target} empty in maintenance", empty, timeout_s=timeout_s,
                      interval_s=1.0)


# -- shutdown policy -----------------------------------------------------------------------
def shutdown_policy(where: Cluster | Node) -> str:
    """The cluster's shutdown policy as `pvesh get /cluster/options` gives it back;
    `conditional` when none is set (PVE's default)."""
    out = _runner(where).check("pvesh", "get", "/cluster/options", "--output-format",
                               "json", timeout_s=COMMAND_TIMEOUT_S)
    try:
        options = json.loads(out)
    except ValueError:
        options = None
    ha = options.get("ha", {}) if isinstance(options, dict) else None
    if not isinstance(ha, dict):  # GET gives the property string parsed (pve-ops §4.4)
        raise PvechaosError(f"`pvesh get /cluster/options` gave no JSON object with a "
                            f"parsed `ha` option: {out!r}")
    return ha.get("shutdown_policy") or DEFAULT_POLICY


def set_shutdown_policy(where: Cluster | Node, policy: str | None) -> str:
    """Set the cluster's shutdown policy (`pvesh set /cluster/options --ha
    shutdown_policy=<policy>`), or remove the `ha` option when ``policy`` is None
    (`--delete ha`: back to the default, conditional). Reads it back and returns it;
    raises when what PVE gives back is not what was set."""
    if policy is not None and policy not in POLICIES:
        raise ConfigError(f"unknown shutdown policy {policy!r}",
                          hint=f"use one of {', '.join(POLICIES)} (pve-model.md §8.1)")
    node = _runner(where)
    if policy is None:
        node.check("pvesh", "set", "/cluster/options", "--delete", "ha",
                   timeout_s=COMMAND_TIMEOUT_S)
    else:
        node.check("pvesh", "set", "/cluster/options", "--ha",
                   f"shutdown_policy={policy}", timeout_s=COMMAND_TIMEOUT_S)
    seen = shutdown_policy(node)
    wanted = policy or DEFAULT_POLICY
    if seen != wanted:
        raise PvechaosError(f"the shutdown policy reads back as {seen!r} after setting "
                            f"{wanted!r} on {node.name}")
    return seen


def clear_shutdown_policy(where: Cluster | Node) -> str:
    """`pvesh set /cluster/options --delete ha`: PVE's default policy again."""
    return set_shutdown_policy(where, None)


# -- clean poweroff and reboot ---------------------------------------------------------------
def _system(node: Node, verb: str) -> str:
    """`systemctl <verb>` on the node; the shutdown may cut the session, which is the
    expected outcome, not an error. Returns what came of the command."""
    try:
        result = node.run("systemctl", verb, timeout_s=COMMAND_TIMEOUT_S)
    except PvechaosError as exc:
        return f"session cut ({str(exc).splitlines()[0]})"
    if result.rc != 0:
        raise PvechaosError(f"`systemctl {verb}` on {node.name} exited {result.rc}: "
                            f"{(result.stderr or result.stdout).strip()}")
    return "accepted"


def poweroff(cluster: Cluster, name: str, *, timeout_s: float) -> None:
    """A clean poweroff (`systemctl poweroff`), then wait (bounded) until the lab says
    the node is off. The shutdown policy decides what HA does meanwhile (pve-model
    §8.1): under `migrate`, or in maintenance, the node waits for its services to move."""
    node = cluster.node(name)
    said = _system(node, "poweroff")
    wait_until(f"{name} off after `systemctl poweroff` ({said})",
               lambda: not cluster.lab.is_powered(name) or NotYet("still powered"),
               timeout_s=timeout_s, interval_s=0.5)
    node.close()


def reboot(cluster: Cluster, name: str, *, timeout_s: float) -> str:
    """A clean reboot (`systemctl reboot`), then wait (bounded, ``timeout_s`` in all)
    until the node answers over SSH on a new boot. Returns the new boot id."""
    node = cluster.node(name)
    boot = node.boot_id()
    said = _system(node, "reboot")
    return wait_new_boot(cluster, name, boot, timeout_s=timeout_s,
                         what=f"after `systemctl reboot` ({said})")


def wait_new_boot(cluster: Cluster, name: str, boot: str, *, timeout_s: float,
                  what: str = "") -> str:
    """Wait (bounded) until ``name``, which was on ``boot``, answers over SSH on a new
    boot (a reboot or an upgrade's reboot under way). Returns the new boot id."""
    node = cluster.node(name)

    def new_boot() -> str | NotYet:
        seen = node.boot_changed(boot)
        return seen.removeprefix("new boot ") if seen and seen.startswith("new boot ") \
            else NotYet(seen or f"still on boot {boot}")
    return wait_until(f"{name} back on a new boot {what}".rstrip(), new_boot,
                      timeout_s=timeout_s, interval_s=1.0)


def power_on(cluster: Cluster, name: str, *, timeout_s: float) -> str:
    """The lab's power_on, then wait (bounded) until the node answers over SSH. Returns
    its boot id."""
    cluster.lab.power_on(name)
    node = cluster.node(name)
    node.wait_reachable(timeout_s=timeout_s)
    return node.boot_id()
