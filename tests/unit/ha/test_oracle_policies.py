"""Oracle scenarios (pve-model.md §8, §9, §7.8, §13.6): shutdown policies, maintenance,
restart/relocate limits and failback. The action happens at t=300 on a settled cluster."""

import pytest

from pvemu.ha.sim import SimCluster

from .conftest import settled, transitions

T0 = 300
THREE = {"vm:101": {"node": "node1"}, "vm:102": {"node": "node2"},
         "vm:103": {"node": "node3"}}


def policy(name: str) -> dict:
    return {"ha": {"shutdown_policy": name}}


def test_conditional_poweroff_stops_then_recovers_with_the_lock_at_once():
    """test-shutdown1."""
    c = settled(services=THREE)
    c.shutdown("node3")
    c.run_until(T0 + 300)
    stopped = c.first("stopping service vm:103", node="node3")
    exited = c.first("LRM exits", node="node3")
    off = c.first("stopped by shutdown", node="node3")
    assert c.first("shutdown LRM, stop all services", node="node3")
    assert stopped.time < exited.time <= off.time
    left_membership = off.time + 8
    t_try = c.first("Try to fence node 'node3'").time
    t_ack = c.first("fencing: acknowledged - got agent lock for node 'node3'").time
    assert t_try == t_ack  # the LRM released its lock: taken at once
    recovered = c.service_state_time("vm:103", "started", after=T0)
    assert 50 <= recovered - left_membership <= 70
    assert c.running_on("vm:103") in (["node1"], ["node2"])


def test_conditional_reboot_freezes_and_restarts_on_the_same_node():
    """test-reboot1."""
    c = settled(services=THREE)
    c.reboot("node3")
    c.run_until(T0 + 200)
    assert transitions(c, "vm:103", T0) == [("started", "freeze"), ("freeze", "started")]
    assert c.running_on("vm:103") == ["node3"]
    assert not c.find("Try to fence")
    assert c.first("reboot LRM, stop and freeze all services", node="node3")


def test_freeze_policy_poweroff_stays_frozen_forever():
    """test-shutdown-policy2."""
    c = settled(services=THREE, datacenter=policy("freeze"))
    c.shutdown("node3")
    c.run_until(T0 + 1000)
    assert transitions(c, "vm:103", T0) == [("started", "freeze")]
    assert c.service_status("vm:103")["state"] == "freeze"
    assert c.running_on("vm:103") == []
    assert not c.find("Try to fence")


def test_failover_policy_reboot_recovers_elsewhere_if_not_back_in_time():
    """test-shutdown-policy1: failover stops and recovers even on reboot."""
    c = settled(services=THREE, datacenter=policy("failover"), boot_delay=200)
    c.reboot("node3")
    c.run_until(T0 + 150)
    assert c.first("shutdown LRM, stop all services", node="node3")
    assert ("fence", "recovery") in transitions(c, "vm:103", T0)
    assert c.running_on("vm:103") in (["node1"], ["node2"])


def test_failover_policy_poweroff_recovers():
    c = settled(services=THREE, datacenter=policy("failover"))
    c.shutdown("node3")
    c.run_until(T0 + 200)
    states = [b for _, b in transitions(c, "vm:103", T0)]
    assert states[:3] == ["fence", "recovery", "started"]
    assert c.running_on("vm:103") in (["node1"], ["node2"])


def test_migrate_policy_moves_services_away_and_back():
    """test-shutdown-policy3: reboot of node3 under the migrate policy."""
    c = settled(services={**THREE, "ct:104": {"node": "node3"}},
                datacenter=policy("migrate"))
    c.reboot("node3")
    c.run_until(T0 + 15)
    away_vm, away_ct = c.service_status("vm:103"), c.service_status("ct:104")
    assert away_vm.get("maintenance_node") == "node3" and away_vm["target"] == "node2"
    assert away_ct.get("maintenance_node") == "node3" and away_ct["target"] == "node1"
    c.run_until(T0 + 60)
    assert c.first("doing maintenance, removing this node from active list", node="node3")
    assert c.first("node 'node3': state changed from 'online' => 'maintenance'")
    assert transitions(c, "vm:103", T0)[0] == ("started", "migrate")
    assert transitions(c, "ct:104", T0)[0] == ("started", "relocate")
    exit_ = c.first("LRM exits", node="node3")
    migrated = c.first("service vm:103 - end migrate to node", after=T0)
    assert exit_ is not None and migrated is not None and migrated.time < exit_.time
    c.run_until(T0 + 300)
    assert c.first("moving service 'vm:103' back to 'node3', node came back from maintenance")
    assert c.running_on("vm:103") == ["node3"] and c.running_on("ct:104") == ["node3"]
    assert not c.find("Try to fence")
    assert c.node_state("node3") == "online"


def test_max_relocate_ends_in_error_after_all_three_nodes():
    """test-relocate-policy-default-group: max_restart 0, max_relocate 2."""
    c = SimCluster(services={**THREE, "vm:104": {"node": "node2", "max_restart": 0,
                                                  "max_relocate": 2}})
    c.set_fail_start("vm:104")
    c.run_until(200)
    err = c.first("recovery policy for service vm:104 failed, entering error state")
    assert err is not None
    assert err.message.endswith("Failed nodes: node2, node1, node3")
    states = [b for _, b in transitions(c, "vm:104")]
    assert states[-1] == "error" and states.count("migrate") == 2
    starts = c.find("^starting service vm:104$")
    assert [e.node for e in starts] == ["node2", "node1", "node3"]
    assert c.first("vm:104 is in an error state and needs manual intervention")
    c.set_service_state("vm:104", "disabled")
    c.run_for(30)
    assert transitions(c, "vm:104")[-1] == ("error", "stopped")


def test_max_restart_then_relocate_succeeds():
    """test-resource-failure2: max_restart 2 on node2, then relocated."""
    c = SimCluster(services={**THREE, "vm:104": {"node": "node2", "max_restart": 2}})
    c.set_fail_start("vm:104", {"node2"})
    c.run_until(200)
    assert len(c.find("^starting service vm:104$", node="node2")) == 3
    assert c.first("relocation policy successful for 'vm:104' on node '.*', failed nodes: "
                   "node2")
    assert c.running_on("vm:104") in (["node1"], ["node3"])


def test_manual_maintenance_powered_off_node_is_not_fenced():
    """test-crm-maintenance-request1."""
    c = settled(services=THREE)
    c.node_maintenance("node3", True)
    c.run_until(T0 + 60)
    assert c.node_state("node3") == "maintenance"
    assert c.lrm_state("node3") == "maintenance"
    assert c.running_on("vm:103") == ["node1"]  # tie node1/node2: alphabetical
    c.power("node3", False)
    c.run_until(T0 + 400)
    assert c.node_state("node3") == "maintenance"
    assert not c.find("Try to fence")
    c.power("node3", True)
    c.run_until(T0 + 460)
    assert c.node_state("node3") == "maintenance"  # the request survives the reboot
    c.node_maintenance("node3", False)
    c.run_until(T0 + 560)
    assert c.node_state("node3") == "online"
    assert c.first("moving service 'vm:103' back to 'node3'")
    assert c.running_on("vm:103") == ["node3"]


@pytest.mark.parametrize("flavour,failback", [(8, True), (8, False), (9, True), (9, False)])
def test_failback_vs_nofailback(flavour, failback):
    """test-node-affinity-nonstrict5/6 and the PVE 8 group equivalents."""
    svc = {"vm:101": {"node": "node2"}}
    if flavour == 8:
        svc["vm:101"]["group"] = "prefer2"
        groups = {"prefer2": {"nodes": "node2:2,node3:1", "nofailback": int(not failback)}}
        kw = {"groups": groups}
    else:
        svc["vm:101"]["failback"] = int(failback)
        kw = {"rules": {"prefer2": {"type": "node-affinity", "resources": ["vm:101"],
                                    "nodes": "node2:2,node3:1"}}}
    c = settled(flavour=flavour, services=svc, **kw)
    assert c.running_on("vm:101") == ["node2"]
    c.power("node2", False)
    c.run_until(T0 + 300)
    assert c.running_on("vm:101") == ["node3"]  # the next priority class
    c.power("node2", True)
    c.run_until(T0 + 700)
    if failback:
        assert ("started", "migrate") in transitions(c, "vm:101", T0 + 300)
        assert c.running_on("vm:101") == ["node2"]
    else:
        assert transitions(c, "vm:101", T0 + 300) == []
        assert c.running_on("vm:101") == ["node3"]


def test_lrm_restart_freezes_and_unfreezes_without_reset():
    """test-restart-lrm: a plain daemon restart (no system shutdown)."""
    c = settled(services=THREE)
    c.restart_lrm("node3")
    c.run_until(T0 + 100)
    assert c.first("restart LRM, freeze all services", node="node3")
    assert transitions(c, "vm:103", T0) == [("started", "freeze"), ("freeze", "started")]
    assert c.running_on("vm:103") == ["node3"]  # never stopped
    assert c.watchdog_resets() == []
    assert c.lrm_state("node3") == "active"


def test_killed_lrm_resets_its_node_about_10s_later():
    """A client gone without the magic 'V' stops the feeding at once (§2)."""
    c = settled(services=THREE)
    c.kill_daemon("node3", "lrm")
    c.run_until(T0 + 60)
    (reset,) = c.watchdog_resets("node3")
    assert 9 <= reset - T0 <= 11
