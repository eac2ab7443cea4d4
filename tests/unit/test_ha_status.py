"""harness.pve.ha_status: `ha-manager status` and /cluster/ha/status/current, PVE 8 and 9."""

from __future__ import annotations

import dataclasses
import json

import pytest

from harness.errors import ParseError
from harness.pve import (
    HaStatus,
    LrmLine,
    MasterLine,
    ServiceLine,
    parse_ha_manager_status,
    parse_ha_status_current,
)

VERSIONS = ["pve8", "pve9"]


def status(load, version: str, case: str) -> HaStatus:
    return parse_ha_manager_status(load(f"{version}/ha_manager_status_{case}.txt"))


def states(s: HaStatus) -> dict[str, tuple[str | None, str]]:
    return {sid: (svc.node, svc.state) for sid, svc in s.services.items()}


def lrm_states(s: HaStatus) -> dict[str, str]:
    return {node: lrm.status for node, lrm in s.lrms.items()}


# -- ha-manager status, on both versions ---------------------------------------------------
def test_docs_example(load, exit_code):
    name = "pve8/ha_manager_status_docs.txt"
    assert exit_code(name) == 0
    s = parse_ha_manager_status(load(name))
    assert (s.quorum_ok, s.quorum_node, s.fencing) == (True, None, None)
    assert s.master == MasterLine("node1", "active", "Wed Nov 23 11:07:23 2016")
    assert s.lrms == {
        "node1": LrmLine("node1", "active", None, "Wed Nov 23 11:07:19 2016"),
        "node2": LrmLine("node2", "idle", None, "Wed Nov 23 11:07:21 2016"),
        "node3": LrmLine("node3", "old timestamp - dead?", None, "Wed Nov 23 11:05:03 2016"),
    }
    assert s.services == {"vm:100": ServiceLine("vm:100", "node1", "started"),
                          "vm:101": ServiceLine("vm:101", "node3", "fence")}


@pytest.mark.parametrize("version", VERSIONS)
def test_quorate_cluster(load, exit_code, version):
    assert exit_code(f"{version}/ha_manager_status_quorate.txt") == 0
    s = status(load, version, "quorate")
    assert (s.quorum_ok, s.quorum_node) == (True, None)
    assert s.master == MasterLine("node1", "active", "Fri Aug  1 11:59:57 2025")
    assert lrm_states(s) == {"node1": "active", "node2": "active", "node3": "idle"}
    assert s.lrms["node1"].time == "Fri Aug  1 11:59:58 2025"
    assert list(s.services) == ["ct:101", "vm:100", "vm:102"]  # in printed order
    assert states(s) == {"ct:101": ("node2", "started"), "vm:100": ("node1", "started"),
                         "vm:102": ("node2", "stopped")}


@pytest.mark.parametrize("version", VERSIONS)
def test_dead_node_and_fence(load, version):
    s = status(load, version, "node_dead")
    assert s.quorum_ok
    assert (s.master.node, s.master.status) == ("node1", "active")
    assert lrm_states(s) == {"node1": "active", "node2": "idle",
                             "node3": "old timestamp - dead?"}
    assert s.lrms["node3"].time == "Fri Aug  1 11:58:48 2025"
    assert states(s) == {"vm:100": ("node1", "started"), "vm:102": ("node3", "fence")}


@pytest.mark.parametrize("version", VERSIONS)
def test_recovery_and_starting(load, version):
    s = status(load, version, "recovery")
    assert states(s) == {"ct:103": ("node1", "starting"), "vm:102": ("node3", "recovery")}
    assert s.lrms["node3"].status == "old timestamp - dead?"


@pytest.mark.parametrize("version", VERSIONS)
def test_no_quorum_on_the_isolated_node(load, version):
    s = status(load, version, "no_quorum")
    assert (s.quorum_ok, s.quorum_node) == (False, "node3")
    assert s.master == MasterLine("node1", "old timestamp - dead?", "Fri Aug  1 11:59:10 2025")
    assert lrm_states(s) == {"node1": "old timestamp - dead?", "node2": "old timestamp - dead?",
                             "node3": "lost_agent_lock"}
    assert states(s)["vm:102"] == ("node3", "started")


@pytest.mark.parametrize("version", VERSIONS)
def test_maintenance_freeze_migrate_and_crs_note(load, version):
    s = status(load, version, "maintenance")
    assert s.master.status == "active"
    assert s.master.notes == ("static load CRS",)
    assert lrm_states(s) == {"node1": "active", "node2": "maintenance mode",
                             "node3": "restart mode"}
    assert states(s) == {"ct:101": ("node2", "migrate"), "vm:102": ("node3", "freeze")}


@pytest.mark.parametrize("version", VERSIONS)
def test_error_stopping_starting_queued_and_unreadable_lrm(load, version):
    s = status(load, version, "errors")
    assert s.master.status == "detected time drift!"
    assert s.master.node == "node2"
    assert s.lrms["node3"] == LrmLine("node3", "unable to read lrm status", None, None)
    assert not s.lrms["node3"].readable and s.lrms["node1"].readable
    assert states(s) == {"vm:100": ("node1", "stopping"), "vm:104": ("node1", "error"),
                         "vm:105": ("node2", "clearing error flag"),
                         "vm:107": ("node2", "starting"), "vm:106": ("node3", "queued")}


@pytest.mark.parametrize("version", VERSIONS)
def test_idle_master_without_resources(load, version):
    s = status(load, version, "idle")
    assert s.master == MasterLine("node3", "idle", "Fri Aug  1 11:50:00 2025")
    assert set(lrm_states(s).values()) == {"idle"}
    assert s.services == {}


# -- what differs between PVE 8 and PVE 9 --------------------------------------------------
@pytest.mark.parametrize("case", ["quorate", "node_dead", "recovery", "no_quorum",
                                  "maintenance", "errors", "idle"])
def test_pve8_has_no_fencing_line_nor_watchdog(load, case):
    s = status(load, "pve8", case)
    assert s.fencing is None and s.fencing_state is None
    assert {lrm.watchdog for lrm in s.lrms.values()} == {None}


@pytest.mark.parametrize("case, fencing", [
    ("quorate", "armed (CRM watchdog active)"),
    ("node_dead", "armed (CRM watchdog active)"),
    ("no_quorum", "standby (CRM watchdog standby)"),
    ("errors", "standby (CRM watchdog standby)"),
    ("disarmed", "disarmed, resource mode: freeze (CRM watchdog released)"),
])
def test_pve9_fencing_line(load, case, fencing):
    s = status(load, "pve9", case)
    assert s.fencing == fencing
    assert s.fencing_state == fencing.split()[0].rstrip(",")


def test_pve9_watchdog_fields(load):
    s = status(load, "pve9", "node_dead")
    assert s.lrms == {
        "node1": LrmLine("node1", "active", "active", "Fri Aug  1 11:59:57 2025"),
        "node2": LrmLine("node2", "idle", "standby", "Fri Aug  1 11:59:59 2025"),
        "node3": LrmLine("node3", "old timestamp - dead?", "standby",
                         "Fri Aug  1 11:58:48 2025"),
    }
    assert status(load, "pve9", "errors").lrms["node3"].watchdog is None  # unreadable


def test_pve9_disarmed(load):
    s = status(load, "pve9", "disarmed")
    assert s.master.notes == ("disarmed, resource mode: freeze",)
    assert {(lrm.status, lrm.watchdog) for lrm in s.lrms.values()} == {
        ("disarm mode", "released")}
    assert states(s) == {"vm:100": ("node1", "freeze")}


def test_pve9_same_view_as_pve8_apart_from_fencing_and_watchdog(load):
    for case in ("quorate", "node_dead", "recovery", "no_quorum", "maintenance", "errors",
                 "idle"):
        s8, s9 = status(load, "pve8", case), status(load, "pve9", case)
        lrms9 = {n: dataclasses.replace(lrm, watchdog=None) for n, lrm in s9.lrms.items()}
        assert dataclasses.replace(s9, fencing=None, lrms=lrms9) == s8, case


def test_verbose_output_stops_at_the_cluster_state(load):
    s = parse_ha_manager_status(load("pve9/ha_manager_status_verbose.txt"))
    assert s == status(load, "pve9", "node_dead")


# -- /cluster/ha/status/current ------------------------------------------------------------
def current(load, version: str, case: str) -> HaStatus:
    return parse_ha_status_current(load(f"{version}/ha_status_current_{case}.json"))


def test_current_docs_example(load, exit_code):
    name = "pve8/ha_status_current_docs.json"
    assert exit_code(name) == 0
    s = parse_ha_status_current(load(name))
    assert (s.quorum_ok, s.quorum_node, s.fencing) == (True, None, None)
    assert s.master == MasterLine("node1", "active", "Wed Nov 23 11:07:23 2016")
    assert s.lrms == {"node1": LrmLine("node1", "active", None, "Wed Nov 23 11:07:19 2016")}
    assert s.services == {"vm:100": ServiceLine(
        "vm:100", "node1", "started", crm_state="started", request_state="started",
        max_restart=1, max_relocate=1)}


@pytest.mark.parametrize("version, case", [
    ("pve8", "quorate"), ("pve8", "errors"), ("pve9", "quorate"), ("pve9", "node_dead"),
    ("pve9", "disarmed"), ("pve9", "no_quorum")])
def test_current_gives_the_same_view_as_the_cli(load, exit_code, version, case):
    assert exit_code(f"{version}/ha_status_current_{case}.json") == 0
    api, cli = current(load, version, case), status(load, version, case)
    bare = {sid: ServiceLine(s.sid, s.node, s.state) for sid, s in api.services.items()}
    assert dataclasses.replace(api, services=bare) == cli
    assert api.services.keys() == cli.services.keys()


def test_current_service_extras(load):
    s = current(load, "pve8", "errors")
    assert s.services["vm:105"] == ServiceLine(
        "vm:105", "node2", "clearing error flag", crm_state="error",
        request_state="disabled", max_restart=1, max_relocate=1)
    assert s.services["vm:100"].crm_state == "started"
    assert s.services["vm:100"].request_state == "stopped"
    queued = s.services["vm:106"]
    assert (queued.state, queued.crm_state, queued.request_state) == \
        ("queued", None, "started")


def test_current_no_quorum_and_fencing(load):
    s = current(load, "pve9", "no_quorum")
    assert (s.quorum_ok, s.quorum_node) == (False, "node3")
    assert s.fencing_state == "standby"
    assert current(load, "pve9", "node_dead").fencing == "armed (CRM watchdog active)"


def test_current_numbers_as_strings_are_accepted(load):
    entries = json.loads(load("pve8/ha_status_current_docs.json"))
    entries[0]["quorate"] = "1"
    entries[-1]["max_restart"] = "3"
    s = parse_ha_status_current(json.dumps(entries))
    assert s.quorum_ok and s.services["vm:100"].max_restart == 3


# -- anything unexpected is a ParseError that carries the output ---------------------------
@pytest.mark.parametrize("text, problem", [
    ("", "no 'quorum' line"),
    ("master node1 (active, Fri Aug  1 11:59:57 2025)\n", "no 'quorum' line"),
    ("quorum maybe\n", "unexpected quorum status"),
    ("quorum OK\nquorum OK\n", "unexpected line"),
    ("quorum OK\nmaster node1 (active)\n", "unexpected master status"),
    ("quorum OK\nmaster node1 (active, Fri Aug  1 11:59:57 2025) static\n",
     "unexpected text after"),
    ("quorum OK\nlrm node1 (active, yesterday)\n", "unexpected lrm status"),
    ("quorum OK\nservice vm:100 node1 started\n", "unexpected service status"),
    ("quorum OK\nipcc_send_rec[1] failed: Connection refused\n", "unexpected line"),
])
def test_unexpected_cli_output_raises(text, problem):
    with pytest.raises(ParseError, match=problem) as info:
        parse_ha_manager_status(text)
    assert info.value.text == text


@pytest.mark.parametrize("text, problem", [
    ("not json", "not JSON"),
    ('{"id": "quorum"}', "not a JSON array of objects"),
    ("[]", "no quorum entry"),
    ('[{"type": "quorum", "quorate": 1}]', "no status text"),
    ('[{"type": "quorum", "status": "OK", "quorate": 0}]', "contradicts"),
    ('[{"type": "quorum", "status": "OK"}, {"type": "bogus", "status": "x"}]',
     "unexpected entry type"),
    ('[{"type": "quorum", "status": "OK"}, {"type": "service", "status": "x"}]',
     "lacks sid or state"),
    ('[{"type": "quorum", "status": "OK"}, {"type": "service", "status": "x", "sid": "vm:1",'
     ' "state": "started", "max_restart": "many"}]', "not a number"),
])
def test_unexpected_api_output_raises(text, problem):
    with pytest.raises(ParseError, match=problem) as info:
        parse_ha_status_current(text)
    assert info.value.text == text


def test_records_are_frozen(load):
    s = status(load, "pve8", "quorate")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.quorum_ok = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.services["vm:100"].state = "fence"  # type: ignore[misc]
