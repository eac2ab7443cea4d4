"""A rolling PVE 8 -> 9 upgrade on the embedded lab through the Lab verb `upgrade`, node
by node with manual maintenance around each (pve-operations.md §3.2), and what PVE 9 does
with the HA groups on the way (§3.3, §3.4): a PVE 8 master reads groups.cfg; a PVE 9
master places the groups as rules in memory and keeps retrying the persistent migration,
saying in its log why it aborts, until every node runs 9, is online and out of
maintenance; then rules.cfg holds `ha-group-<group>`, resources.cfg lost `group`, and
groups.cfg is gone. Timescale 0.1: a CRM round is 1 s, a retry every 6 s.

The master is steered once, with PVE's own command: after the two other nodes run 9, the
PVE 8 master's `pve-ha-crm` is stopped until a PVE 9 node holds the lock (as a package
upgrade's restart of it would move it), so a PVE 9 master meets a PVE 8 node online and
logs the version it needs.
"""

from __future__ import annotations

import time

from harness.errors import PvechaosError
from harness.waits import NotYet, wait_until

K = 0.1
VMID = 100
SID = f"ct:{VMID}"
NODES = ("node1", "node2", "node3")
GROUP = "grp"
OLD, NEW = "8.4.1", "9.1.1"  # the flavour-8 lab's version and --upgrade-to's default


def note(what: str, seconds: float) -> None:
    print(f"  {what}: {seconds:.1f} s")


def wait_node_state(h, node: str, state: str, timeout_s: float) -> None:
    def seen() -> bool | NotYet:
        try:
            now = h.node_state(node)
        except PvechaosError as exc:
            return NotYet(str(exc))
        return now == state or NotYet(f"{node} is {now}")

    with h.diagnosed():
        wait_until(f"{node} to be {state}", seen, timeout_s=timeout_s, interval_s=0.25)


def wait_new_boot(h, node: str, boot: str, timeout_s: float) -> None:
    def booted() -> bool | NotYet:
        seen = h.node(node).boot_changed(boot)
        return bool(seen and seen.startswith("new boot")) or NotYet(seen or "same boot")

    wait_until(f"{node} to answer on a new boot", booted, timeout_s=timeout_s,
               interval_s=0.2)


def crm_lines(h, pattern: str) -> list[str]:
    return [line for node in NODES for line in h.log(node, "crm").splitlines()
            if pattern in line]


def groups_cfg(h) -> str | None:
    """/etc/pve/ha/groups.cfg as a node shows it (None: it does not exist)."""
    done = h.live().run("cat", "/etc/pve/ha/groups.cfg", timeout_s=10)
    return done.stdout if done.rc == 0 else None


def maintenance(h, node: str, enable: bool) -> None:
    h.ha("crm-command", "node-maintenance", "enable" if enable else "disable", node)
    wait_node_state(h, node, "maintenance" if enable else "online", h.s(60) + 15)


def upgrade(h, node: str, *, in_maintenance=lambda: None) -> None:
    """Maintenance on, the node empty, the verb, the new boot, ``in_maintenance()``,
    maintenance off."""
    started = time.monotonic()
    maintenance(h, node, True)
    with h.diagnosed():  # the guest is never left on the node going down
        wait_until(f"{node} to hold no HA guest",
                   lambda: h.services().get(SID, ("", ""))[0] != node
                   and h.services()[SID][1] == "started" or NotYet(h.services()),
                   timeout_s=h.s(120) + 15, interval_s=0.25)
    boot = h.node(node).boot_id()
    printed = h.lab.upgrade(node)
    assert printed.startswith(f"pvechaos embedded lab: version switch on {node}")
    assert f"Setting up pve-manager ({OLD} -> {NEW}) ..." in printed
    wait_new_boot(h, node, boot, timeout_s=60)
    h.node(node).close()
    assert f"pve-manager: {NEW} " in h.node(node).check("pveversion", "-v")
    h.cluster.wait_whole_view(node, timeout_s=60)
    in_maintenance()
    maintenance(h, node, False)
    note(f"{node}: maintenance on, upgraded, back and out of maintenance",
         time.monotonic() - started)


def test_a_rolling_upgrade_migrates_the_groups_only_after_the_last_node(ha_lab):
    h = ha_lab("upg", "198.18.157", timescale=K)
    h.ha("groupadd", GROUP, "--nodes", "node1:2,node2,node3")
    h.create_ct("node1", VMID)
    h.ha("add", SID, "--group", GROUP)
    h.wait_service(SID, "started", "node1", timeout_s=h.s(60) + 10)
    h.wait_answer(VMID, "node1", timeout_s=h.s(60) + 10)
    master = h.master()
    order = [n for n in NODES if n != master] + [master]  # the PVE 8 master last

    # one node on 9, then two: a PVE 8 master still reads groups.cfg
    for count, node in enumerate(order[:2], start=1):
        upgrade(h, node)
        assert h.master() == master  # the master's node never went down
        assert groups_cfg(h) is not None, f"groups.cfg gone with {count} node(s) on 9"
        assert h.node(node).check("pvesh", "get", "/cluster/ha/groups",
                                  "--output-format", "json").count(GROUP) == 1
    h.wait_service(SID, "started", "node1", timeout_s=h.s(120) + 15)  # its group's first

    # a PVE 9 master meets the PVE 8 node: it migrates nothing and says why, every 6 rounds
    h.node(master).check("systemctl", "stop", "pve-ha-crm", timeout_s=h.s(65) + 10)
    wait_until("a PVE 9 node to take the manager lock",
               lambda: h.master() != master or NotYet(h.master()),
               timeout_s=h.s(120) + 15, interval_s=0.25)
    h.node(master).check("systemctl", "start", "pve-ha-crm")
    why = f"abort ha groups migration: node '{master}' needs at least pve-manager " \
          f"version '9.0.0~16'"
    wait_until("the PVE 9 master to try twice", lambda: len(crm_lines(h, why)) >= 2 or
               NotYet(crm_lines(h, "ha group")), timeout_s=h.s(150) + 15, interval_s=0.5)
    assert crm_lines(h, f"ha groups migration: node '{master}' has version '{OLD}'")
    assert crm_lines(h, "retry ha groups migration in 6 rounds (~ 60 seconds)")
    assert groups_cfg(h) is not None
    rules = h.live(exclude=(master,)).check("ha-manager", "rules", "config")
    assert f"ha-group-{GROUP}" in rules  # the groups as rules, in memory (§3.4)

    # the last node: on 9 but in maintenance, the migration waits and says so; then it runs
    def refused_while_in_maintenance() -> None:
        wait_until("an attempt refused for the node in maintenance", lambda: bool(crm_lines(
            h, f"ha groups migration: node '{master}' is in state 'maintenance'")) or
            NotYet(crm_lines(h, "abort ha groups")[-1:]), timeout_s=h.s(70) + 10,
            interval_s=0.5)
        assert groups_cfg(h) is not None

    upgrade(h, master, in_maintenance=refused_while_in_maintenance)
    assert crm_lines(h, f"abort ha groups migration: node '{master}' is not online")
    wait_until("the groups migration", lambda: bool(crm_lines(
        h, "ha groups migration successful")) or NotYet(crm_lines(h, "abort ha groups")[-1:]),
        timeout_s=h.s(90) + 15, interval_s=0.5)
    assert groups_cfg(h) is None
    node = h.live()
    assert node.check("cat", "/etc/pve/ha/rules.cfg") == (
        f"node-affinity: ha-group-{GROUP}\n"
        f"\tcomment Generated from HA group '{GROUP}'.\n"
        "\tnodes node1:2,node2,node3\n"
        f"\tresources {SID}\n\n")
    assert node.check("cat", "/etc/pve/ha/resources.cfg") == f"ct: {VMID}\n\n"
    assert node.run("ha-manager", "groupconfig").stderr.strip() == \
        "cannot index groups: ha groups have been migrated to rules"
    for name in NODES:
        assert h.node(name).pve_version().manager == NEW
    # placement unchanged by the migration: the guest on its rule's first node, answering
    h.wait_service(SID, "started", "node1", timeout_s=h.s(60) + 10)
    h.wait_answer(VMID, "node1", timeout_s=h.s(60) + 10)
