"""Oracle scenarios of PVE 9's HA groups -> rules migration (pve-operations.md §3.4,
pve-model.md §9.2, §13.5): test-group-migrate1 (a node below 9.0.0~16: retried every 6
rounds, files untouched), test-group-migrate2 (every node new enough: migrated on the
first attempt) and the parts of test-group-migrate3 the simulator expresses (a version
change, then a reboot: the rebooting LRM's mode blocks the attempt). The simulator runs
PVE's real 10 s rounds, so an attempt falls on the master's 3rd round (20 s after it
became master; PVE's simulator, with 20 s rounds: 40 s) and the retries 60 s apart."""

from pvemu.ha import group_migration
from pvemu.ha.sim import SimCluster

# the groups of test-group-migrate1/2 as pve-operations.md §3.4 quotes them
GROUPS = {"group1": {"nodes": {"node1": 0}, "restricted": 1},
          "group2": {"nodes": {"node2": 2, "node3": 0}, "nofailback": 1}}
SERVICES = {"vm:101": {"node": "node1", "state": "started", "group": "group1"},
            "vm:102": {"node": "node2", "state": "started", "group": "group2"},
            "vm:103": {"node": "node3", "state": "started", "group": "group2"}}


def attempt(c: SimCluster, when: float, master: str = "node1") -> list[str]:
    """The master's migration log lines at ``when``."""
    return [e.message for e in c.find("migration", node=master, daemon="crm",
                                      after=when, before=when)]


def per_node(node: str, version: str, lrm: str = "active", mode: str = "active"):
    return [f"ha groups migration: node '{node}' is in state 'online'",
            f"ha groups migration: lrm '{node}' is in state '{lrm}' and mode '{mode}'",
            f"ha groups migration: node '{node}' has version '{version}'"]


def test_a_node_below_the_minimum_version_blocks_the_migration_for_good():
    """test-group-migrate1: node3 on 8.4.1; node2 on 9.0.0~16, the minimum itself."""
    c = SimCluster(flavour=9, services=SERVICES, groups=GROUPS,
                   versions={"node1": "9.1.2", "node2": "9.0.0~16", "node3": "8.4.1"})
    c.run_until(400)
    became = c.first("status change wait_for_quorum => master", node="node1").time
    starts = [e.time for e in c.find("^start ha group migration...$")]
    assert starts[0] == became + 20  # the 3rd round
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [60.0] * (len(starts) - 1)
    assert attempt(c, starts[0]) == [
        "start ha group migration...",
        *per_node("node1", "9.1.2"), *per_node("node2", "9.0.0~16"),
        *per_node("node3", "8.4.1"),
        "abort ha groups migration: node 'node3' needs at least pve-manager version "
        "'9.0.0~16'",
        "ha groups migration failed",
        "retry ha groups migration in 6 rounds (~ 60 seconds)"]
    assert [e.level for e in c.find("migration failed|abort ha")] == ["err"] * 2 * len(starts)
    # nothing written: groups kept, resources keep their group and gain no failback
    assert c.store.newest("ha/groups.cfg") == GROUPS
    assert c.store.newest("ha/rules.cfg") == {}
    assert c.store.newest("ha/resources.cfg") == {
        sid: {"state": "started", "group": cfg["group"]} for sid, cfg in SERVICES.items()}


def test_every_node_new_enough_migrates_on_the_first_attempt():
    """test-group-migrate2: the three files in order (§3.4's example)."""
    c = SimCluster(flavour=9, services=SERVICES, groups=GROUPS,
                   versions={"node1": "9.0.0~16", "node2": "9.0.1", "node3": "9.4.1"})
    c.run_until(300)
    start = c.first("^start ha group migration...$").time
    assert attempt(c, start) == [
        "start ha group migration...",
        *per_node("node1", "9.0.0~16"), *per_node("node2", "9.0.1"),
        *per_node("node3", "9.4.1"),
        "ha groups migration: migration to rules config successful",
        "ha groups migration: migration to resources config successful",
        "ha groups migration: group config deletion successful",
        "ha groups migration successful"]
    assert len(c.find("^start ha group migration")) == 1  # no groups left: no retry
    assert c.store.newest("ha/groups.cfg") == {}
    assert c.store.newest("ha/rules.cfg") == {
        "ha-group-group1": {"type": "node-affinity", "comment":
                            "Generated from HA group 'group1'.", "resources": ["vm:101"],
                            "nodes": {"node1": 0}, "strict": 1},
        "ha-group-group2": {"type": "node-affinity", "comment":
                            "Generated from HA group 'group2'.",
                            "resources": ["vm:102", "vm:103"],
                            "nodes": {"node2": 2, "node3": 0}, "strict": 0}}
    assert c.store.newest("ha/resources.cfg") == {
        "vm:101": {"state": "started"}, "vm:102": {"state": "started", "failback": 0},
        "vm:103": {"state": "started", "failback": 0}}
    # placement unchanged: every service where it started, none moved
    assert [c.running_on(s) for s in sorted(SERVICES)] == [["node1"], ["node2"], ["node3"]]
    assert not c.find("migrate service|relocate service")


def test_a_version_change_counts_at_once_and_a_reboot_blocks_by_the_lrm_mode():
    """test-group-migrate3's last steps: node3 goes 9.0.0~15 -> 9.0.0~17; the attempt
    during its reboot aborts on the LRM's mode, the one after migrates."""
    c = SimCluster(flavour=9, services=SERVICES, groups=GROUPS,
                   versions={"node1": "9.0.0~16", "node2": "9.0.0~16", "node3": "9.0.0~15"})
    c.run_until(100)
    assert c.first("abort ha groups migration: node 'node3' needs at least pve-manager "
                   "version '9.0.0~16'")
    c.set_pve_manager_version("node3", "9.0.0~17")
    before = c.first("^start ha group migration...$", after=c.t)
    assert before is None  # nothing until the next attempt
    c.reboot("node3")
    c.run_until(c.t + 400)
    aborted = c.find("abort ha groups migration", after=100)
    assert aborted and aborted[0].message in (
        "abort ha groups migration: lrm 'node3' is not in mode 'active'",
        "abort ha groups migration: node 'node3' is not online",
        "abort ha groups migration: lrm 'node3' is not in state 'active' or 'idle'")
    assert c.first("ha groups migration successful", after=100).time > aborted[-1].time
    assert c.store.newest("ha/groups.cfg") == {}


def test_a_pve8_crm_never_migrates_and_places_by_groups():
    c = SimCluster(flavour=8, services=SERVICES, groups=GROUPS)
    c.run_until(300)
    assert not c.find("group migration")
    assert c.store.newest("ha/groups.cfg") == GROUPS


def test_a_pve9_crm_places_the_groups_as_rules_before_migrating():
    """Until the files are rewritten a PVE 9 master converts the groups each round
    (§3.3): group1 is restricted to node1, so vm:101 is not recovered when node1 dies;
    group2 has nofailback, so vm:102 stays where it was recovered to."""
    c = SimCluster(flavour=9, services=SERVICES, groups=GROUPS,
                   versions={"node1": "9.1.1", "node2": "9.1.1", "node3": "8.4.1"})
    c.run_until(300)
    c.power("node2", False)
    c.run_until(600)
    assert c.running_on("vm:102") == ["node3"]  # recovered to the group's other node
    c.power("node2", True)
    c.run_until(900)
    assert c.running_on("vm:102") == ["node3"]  # nofailback: stays
    c.power("node1", False)
    c.run_until(1300)
    assert c.running_on("vm:101") == []  # strict (restricted): nowhere else
    assert c.find("recovering service 'vm:101' from fenced node 'node1' failed, no "
                  "recovery node found")
    assert c.store.newest("ha/groups.cfg") == GROUPS  # node3 on 8.4.1: not migrated


def test_versions_compare_as_debian_does_with_the_old_form():
    assert group_migration.has_min_version("9.0.0~16")
    assert group_migration.has_min_version("9.0.0") and group_migration.has_min_version("10.0")
    assert not group_migration.has_min_version("9.0.0~15")
    assert not group_migration.has_min_version("8.4-1")
    assert group_migration.version_key("8.4-1") == group_migration.version_key("8.4.1")
    assert not group_migration.has_min_version("banana")


def test_a_rolling_upgrade_with_reboots_migrates_only_once_the_last_node_is_back():
    """test-group-migrate4 without its CFS faults: every node on 8.4.1 (the HA stack
    already the new one), each set to 9.0.x and rebooted in turn; node2's LRM restarted
    while node3 reboots. Every attempt before node3 is back aborts; the next one after
    it migrates."""
    c = SimCluster(flavour=9, services=SERVICES, groups=GROUPS,
                   versions={n: "8.4.1" for n in ("node1", "node2", "node3")})
    c.run_until(100)
    for node, version in (("node1", "9.0.0"), ("node2", "9.0.0")):
        c.set_pve_manager_version(node, version)
        c.reboot(node)
        c.run_until(c.t + 200)
        assert c.store.newest("ha/groups.cfg") == GROUPS
    c.set_pve_manager_version("node3", "9.0.1")
    c.restart_lrm("node2")
    c.reboot("node3")
    last = c.t
    c.run_until(last + 300)
    back = c.first(r"node 'node3': state changed from 'unknown' => 'online'", after=last)
    done = c.first("ha groups migration successful")
    assert back is not None and done is not None and done.time > back.time
    aborts = [e.message for e in c.find("abort ha groups migration", after=last)]
    assert aborts and all("node3" in m or "node2" in m for m in aborts)
    # before: node3 on 8.4.1 blocked every attempt, with the version it needs
    assert c.find("ha groups migration: node 'node3' has version '8.4.1'", before=last)
    assert c.find("abort ha groups migration: node 'node3' needs at least pve-manager "
                  "version '9.0.0~16'", before=last)
    assert c.store.newest("ha/groups.cfg") == {}
    assert sorted(c.store.newest("ha/rules.cfg")) == ["ha-group-group1", "ha-group-group2"]
