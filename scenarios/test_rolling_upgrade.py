"""A rolling upgrade, node by node, with every HA guest watched throughout.

What a team does before moving a cluster from PVE 8 to 9 (pve-operations.md §3.2), as a
story: one HA guest per node (the ``fleet``), then for each node in turn

1. `ha-manager crm-command node-maintenance enable <node>`: its guest moves to the node
   HA's basic scheduler picks (the least loaded online node, ties by name; pve-model.md
   §9.1), and the node is empty (pve-operations.md §4.1);
2. the lab upgrades the node and reboots it (``lab.upgrade``: the embedded lab boots it
   into the next version; the libvirt and inventory labs run ``--upgrade-command`` over
   SSH, then reboot). In maintenance the reboot ignores the shutdown policy and the node
   comes back still in maintenance (pve-operations.md §4.3);
3. it rejoins: the whole cluster in its view, `pveversion` newer than before;
4. `... node-maintenance disable <node>`: its guest comes back (the node is in the
   service's top priority class: pve-operations.md §4.2).

While some node still runs PVE 8, a cluster that started with an HA group keeps it in
groups.cfg (test-group-migrate1); once every node runs 9, the CRM migrates the groups to
node-affinity rules and the resources lose `group` (pve-operations.md §3.4).

Figures (none has a design window, so each is measured): each node's time to empty, to
rejoin and to get its guest back and the node's whole time; every guest's downtime over
the whole upgrade; the upgrade's duration. The probes and the safety invariants run all
along.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import allure
import pytest

from harness import ha_admin, policy_steps, story_plan
from harness.pve.version import PveVersion
from harness.waits import NotYet, wait_until

pytestmark = [pytest.mark.story, pytest.mark.upgrade, allure.epic("Pre-upgrade validation"),
              allure.feature("Rolling upgrade"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher")]

GROUP = "pvechaos-upgrade"  # the HA group a PVE 8 cluster's guests are put in
REBOOT_TIMEOUT_S = 180.0  # real seconds for a node to go down and answer on a new boot
# PVE's first groups migration attempt is on the 3rd round after a CRM became master,
# retried every 6 rounds (pve-operations.md §3.4): at most 7 rounds once it can succeed
MIGRATION_ROUNDS = 7


@dataclass
class Upgrade:
    """What each step leaves for the next."""

    order: tuple[str, ...]  # the nodes, in the order they are upgraded
    before: dict[str, PveVersion]
    home: dict[str, str]  # sid -> the node it was made on
    group: str | None = None  # the HA group the guests are in (a PVE 8 cluster)
    started_t: float | None = None
    after: dict[str, PveVersion] = field(default_factory=dict)
    last_back_t: float | None = None  # when the last node left maintenance


@pytest.fixture(scope="module")
def upgrade(lab, cluster, require) -> Upgrade:
    require("UPGRADE")
    before = dict(zip(cluster.names, (n.pve_version() for n in cluster.nodes()), strict=True))
    names = cluster.names
    return Upgrade(order=names, before=before,
                   home={f"ct:{100 + i}": n for i, n in enumerate(names)})


def resources_config(cluster, on: str) -> str:
    return cluster.node(on).check("ha-manager", "config", timeout_s=30)


@allure.story("Setup")
def test_setup_one_guest_per_node(cluster, fleet, upgrade, constants):
    first = cluster.names[0]
    options: dict[str, object] = {}
    if policy_steps.placement_config(cluster)[0] == policy_steps.GROUPS:
        with allure.step(f"HA group {GROUP} with every node (PVE 8: groups.cfg)"):
            cluster.node(first).check("ha-manager", "groupadd", GROUP, "--nodes",
                                      ",".join(cluster.names), timeout_s=30)
        upgrade.group = GROUP
        options["group"] = GROUP
    with allure.step(f"one HA guest per node: {', '.join(upgrade.home)}"):
        fleet.set_up(upgrade.home, timeout_s=constants.crm_loop * 6 + 60, **options)
        fleet.wait_serving(timeout_s=60)
    allure.dynamic.parameter("versions before", ", ".join(
        f"{n} {v.manager}" for n, v in upgrade.before.items()))


@allure.story("Node by node")
def test_upgrade_node_by_node(lab, cluster, fleet, upgrade, faults, timeline, constants,
                              metrics):
    upgrade.started_t = timeline.clock.now()
    rounds = constants.crm_loop + constants.lrm_loop
    for node in upgrade.order:
        with allure.step(f"upgrade {node}"):
            upgrade_one(lab, cluster, fleet, upgrade, faults, timeline, constants, metrics,
                        node, settle_s=4 * rounds + 60)
    end = timeline.clock.now()
    metrics.record("upgrade_duration", end - upgrade.started_t)
    for sid, down in fleet.downtime(upgrade.started_t, end).items():
        metrics.record(f"{sid}.downtime", down, node=upgrade.home[sid])


def upgrade_one(lab, cluster, fleet, upgrade, faults, timeline, constants, metrics,
                node: str, *, settle_s: float) -> None:
    others = [n for n in cluster.names if n != node]
    t0 = timeline.clock.now()
    leaving = fleet.on(node)
    load = story_plan.load_of(fleet.ha_status().services.values())
    faults.action(f"node-maintenance enable {node}", node)
    with allure.step(f"maintenance on {node}: {', '.join(leaving) or 'nothing'} leaves"):
        ha_admin.maintenance_on(cluster, node)
        moved = {}
        for sid in leaving:  # one by one, as HA counts the load
            target = story_plan.recovery_node(others, load)
            assert target is not None, f"no node to take {sid} from {node}"
            moved[sid] = target
            load[target] = load.get(target, 0) + 1
        ha_admin.wait_node_empty(cluster, node, timeout_s=settle_s)
        fleet.wait_placements({sid: (t, "started") for sid, t in moved.items()},
                              what=f"{node}'s guests started on {moved}", timeout_s=settle_s)
    emptied = timeline.clock.now()
    metrics.record(f"{node}.time_to_empty", emptied - t0, node=node)

    boot = cluster.node(node).boot_id()
    with allure.step(f"upgrade {node} and reboot it"):
        faults.action(f"upgrade {node}", node)
        output = lab.upgrade(node)
        allure.attach(output or "(no output)", f"upgrade output of {node}",
                      allure.attachment_type.TEXT)
        ha_admin.wait_new_boot(cluster, node, boot, timeout_s=REBOOT_TIMEOUT_S,
                               what="after its upgrade")
    with allure.step(f"{node} rejoined, newer than before, back in maintenance"):
        cluster.wait_whole_view(node, timeout_s=REBOOT_TIMEOUT_S)
        now = cluster.node(node).pve_version()
        upgrade.after[node] = now
        was = upgrade.before[node]
        assert now.key > was.key, \
            f"{node} still runs {now.manager} (was {was.manager})"
        allure.dynamic.parameter(f"{node}", f"{was.manager} -> {now.manager}")
        ha_admin.wait_node_empty(cluster, node, timeout_s=settle_s)  # maintenance mode
        assert not [s for s in fleet.on(node) if s in moved], \
            f"guests came back to {node} while it was in maintenance"
    rejoined = timeline.clock.now()
    metrics.record(f"{node}.time_to_rejoin", rejoined - emptied, node=node,
                   version=now.manager)
    mixed = [n for n in cluster.names if n not in upgrade.after]
    if upgrade.group and mixed:
        with allure.step(f"{', '.join(mixed)} still on PVE 8: the group stays "
                         "(pve-operations.md §3.3, test-group-migrate1)"):
            assert f"group {GROUP}" in resources_config(cluster, node)

    faults.action(f"node-maintenance disable {node}", node)
    with allure.step(f"maintenance off {node}: {', '.join(moved) or 'nothing'} comes back"):
        ha_admin.maintenance_off(cluster, node)
        fleet.wait_placements({sid: (node, "started") for sid in moved},
                              what=f"{', '.join(moved)} back on {node}", timeout_s=settle_s)
        fleet.wait_serving(timeout_s=settle_s)
    back = timeline.clock.now()
    upgrade.last_back_t = back
    metrics.record(f"{node}.time_to_return", back - rejoined, node=node)
    metrics.record(f"{node}.node_time", back - t0, node=node)


@allure.story("Every node upgraded")
def test_every_node_runs_the_new_version_and_the_cluster_is_whole(cluster, upgrade):
    assert set(upgrade.after) == set(cluster.names), "not every node was upgraded"
    for name in cluster.names:
        cluster.wait_whole_view(name, timeout_s=60)
    versions = {n: v.manager for n, v in upgrade.after.items()}
    allure.dynamic.parameter("versions after", ", ".join(f"{n} {v}" for n, v in
                                                          versions.items()))


@allure.story("HA groups become rules")
def test_groups_migrated_to_rules_once_every_node_runs_9(cluster, upgrade, constants, timeline,
                                                        metrics):
    if upgrade.group is None:
        pytest.skip("the cluster had no HA group to migrate (it did not start on PVE 8)")
    if any(v.major < 9 for v in upgrade.after.values()):
        pytest.skip(f"not every node runs PVE 9 ({upgrade.after}): groups stay")
    assert upgrade.last_back_t is not None
    node = cluster.names[0]
    limit = MIGRATION_ROUNDS * constants.crm_loop + 30

    def migrated() -> bool | NotYet:
        config = resources_config(cluster, node)
        return "group " not in config or NotYet(config.strip())
    with allure.step(f"the CRM migrates {GROUP} within {MIGRATION_ROUNDS} rounds "
                     "(pve-operations.md §3.4)"):
        wait_until("the HA groups to be migrated to rules", migrated, timeout_s=limit)
    metrics.record("groups_migrated_after", timeline.clock.now() - upgrade.last_back_t)
    with allure.step(f"a node-affinity rule ha-group-{GROUP}, groups gone"):
        rules = cluster.node(node).check("ha-manager", "rules", "config", timeout_s=30)
        assert f"ha-group-{GROUP}" in rules, rules
        groups = cluster.node(node).run("ha-manager", "groupconfig", timeout_s=30)
        assert groups.rc != 0 and "migrated to rules" in groups.stderr + groups.stdout, \
            f"`ha-manager groupconfig` still answers: {groups.stdout or groups.stderr}"
