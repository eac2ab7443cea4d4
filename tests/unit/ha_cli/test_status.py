"""pvemu.ha.status: `ha-manager status` and /cluster/ha/status/* (§4.3, §12)."""

from __future__ import annotations

import json
import time

import pytest

from pvemu.ha import status
from pvemu.timing import Timing

NOW = 1479899243  # Wed Nov 23 11:07:23 2016 UTC
T = Timing(1.0)


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def res(sid, node, state="started", **extra):
    return {sid: {"type": sid[:2], "state": state, "node": node, "max_restart": 1,
                  "max_relocate": 1, **extra}}


MS = {"master_node": "node1", "timestamp": NOW,
      "node_status": {"node1": "online", "node2": "online", "node3": "unknown"},
      "service_status": {
          "vm:100": {"state": "started", "node": "node1", "uid": "a", "running": 1},
          "vm:101": {"state": "fence", "node": "node3", "uid": "b"}}}
LRM = {"node1": {"state": "active", "mode": "active", "timestamp": NOW - 4, "results": {}},
       "node2": {"state": "wait_for_agent_lock", "mode": "active", "timestamp": NOW - 2},
       "node3": {"state": "active", "mode": "active", "timestamp": NOW - 140}}
RES = {**res("vm:100", "node1", group="mygroup"), **res("vm:101", "node3")}


def test_localtime_pads_the_day():
    assert status.perl_localtime(NOW) == "Wed Nov 23 11:07:23 2016"
    assert status.perl_localtime(1700000000 - 86400 * 10) == "Sat Nov  4 22:13:20 2023"


def test_pve8_docs_example():
    text = status.status_text(MS, LRM, RES, True, "node1", NOW, T, 8)
    assert text == (
        "quorum OK\n"
        "master node1 (active, Wed Nov 23 11:07:23 2016)\n"
        "lrm node1 (active, Wed Nov 23 11:07:19 2016)\n"
        "lrm node2 (idle, Wed Nov 23 11:07:21 2016)\n"
        "lrm node3 (old timestamp - dead?, Wed Nov 23 11:05:03 2016)\n"
        "service vm:100 (node1, started)\n"
        "service vm:101 (node3, fence)\n")


def test_pve9_fencing_and_watchdog_fields():
    lines = status.status_text(MS, LRM, RES, True, "node1", NOW, T, 9).splitlines()
    assert lines[:6] == [
        "quorum OK",
        "master node1 (active, Wed Nov 23 11:07:23 2016)",
        "fencing armed (CRM watchdog active)",
        "lrm node1 (active, watchdog active, Wed Nov 23 11:07:19 2016)",
        "lrm node2 (idle, watchdog standby, Wed Nov 23 11:07:21 2016)",
        "lrm node3 (old timestamp - dead?, watchdog standby, Wed Nov 23 11:05:03 2016)"]


def test_api_entries_pve8_and_pve9():
    e8 = status.current(MS, LRM, RES, True, "node1", NOW, T, 8)
    assert e8[0] == {"id": "quorum", "type": "quorum", "node": "node1", "status": "OK",
                     "quorate": 1}
    assert e8[1] == {"id": "master", "type": "master", "node": "node1", "timestamp": NOW,
                     "status": "node1 (active, Wed Nov 23 11:07:23 2016)"}
    assert [e["id"] for e in e8] == ["quorum", "master", "lrm:node1", "lrm:node2", "lrm:node3",
                                     "service:vm:100", "service:vm:101"]
    assert e8[5] == {"id": "service:vm:100", "type": "service", "sid": "vm:100",
                     "node": "node1", "crm_state": "started", "state": "started",
                     "status": "vm:100 (node1, started)", "request_state": "started",
                     "max_restart": 1, "max_relocate": 1, "group": "mygroup"}
    res9 = {**res("vm:100", "node1", failback=1), **res("vm:101", "node3", failback=0)}
    e9 = status.current(MS, LRM, res9, True, "node1", NOW, T, 9)
    assert e9[2] == {"id": "fencing", "type": "fencing", "node": "node1",
                     "status": "armed (CRM watchdog active)", "armed-state": "armed"}
    assert e9[-1]["failback"] == 0 and "failback" not in \
        status.current(MS, LRM, res9, True, "node1", NOW, T, 8)[-1]


def test_master_stale_future_and_idle():
    stale = {**MS, "timestamp": NOW - 31}
    assert "old timestamp - dead?" in status.current(stale, LRM, RES, True, "n", NOW, T, 8)[1][
        "status"]
    assert status.current({**MS, "timestamp": NOW - 30}, LRM, RES, True, "n", NOW, T, 8)[1][
        "status"].startswith("node1 (active,")
    future = {**MS, "timestamp": NOW + 3}
    assert "(detected time drift!," in status.current(future, LRM, RES, True, "n", NOW, T,
                                                      8)[1]["status"]
    # idle: quorate, not active and no resources configured
    assert "(idle," in status.current(stale, LRM, {}, True, "n", NOW, T, 8)[1]["status"]
    assert "(old timestamp" in status.current(stale, LRM, {}, False, "n", NOW, T, 8)[1][
        "status"]
    e9 = status.current(stale, LRM, RES, True, "n", NOW, T, 9)
    assert e9[2]["status"] == "standby (CRM watchdog standby)"


def test_timescale_scales_staleness():
    fast = Timing(scale=0.1)  # 3 s stale, 0.2 s future
    e = status.current({**MS, "timestamp": NOW - 4}, LRM, RES, True, "n", NOW, fast, 8)
    assert "(old timestamp - dead?," in e[1]["status"]


def test_no_master_line_without_master_or_timestamp():
    e = status.current({"node_status": {}}, {}, RES, True, "node1", NOW, T, 8)
    assert [x["type"] for x in e] == ["quorum", "service", "service"]
    e9 = status.current({}, {}, {}, True, "node1", NOW, T, 9)
    assert e9[1]["node"] == "node1" and e9[1]["armed-state"] == "standby"


def test_no_quorum_line():
    e = status.current(MS, LRM, RES, False, "node2", NOW, T, 8)
    assert e[0] == {"id": "quorum", "type": "quorum", "node": "node2", "quorate": 0,
                    "status": "No quorum on node 'node2'!"}


def test_lrm_modes_and_unreadable():
    lrm = {"node1": {"state": "active", "mode": "maintenance", "timestamp": NOW},
           "node2": None,
           "node3": {"state": "maintenance", "mode": "maintenance", "timestamp": NOW - 100}}
    lines = status.status_text(MS, lrm, RES, True, "node1", NOW, T, 8).splitlines()
    assert lines[2] == "lrm node1 (maintenance mode, Wed Nov 23 11:07:23 2016)"
    assert lines[3] == "lrm node2 (unable to read lrm status)"
    assert lines[4] == "lrm node3 (maintenance mode, Wed Nov 23 11:05:43 2016)"
    lrm2 = {"node1": {"state": "wait_for_agent_lock", "mode": "restart", "timestamp": NOW},
            "node2": {"state": "wait_for_agent_lock", "timestamp": NOW},
            "node3": {"state": "lost_agent_lock", "mode": "active", "timestamp": NOW}}
    lines = status.status_text(MS, lrm2, RES, True, "node1", NOW, T, 9).splitlines()
    assert lines[3] == "lrm node1 (restart mode, watchdog standby, Wed Nov 23 11:07:23 2016)"
    assert lines[4] == "lrm node2 (idle, watchdog standby, Wed Nov 23 11:07:23 2016)"
    assert lines[5] == ("lrm node3 (lost_agent_lock, watchdog standby, "
                        "Wed Nov 23 11:07:23 2016)")


def test_wait_for_agent_lock_with_active_service_is_not_idle():
    lrm = {**LRM, "node1": {"state": "wait_for_agent_lock", "timestamp": NOW}}
    assert status.status_text(MS, lrm, RES, True, "n", NOW, T, 8).splitlines()[2] == \
        "lrm node1 (wait_for_agent_lock, Wed Nov 23 11:07:23 2016)"


def test_target_counts_as_active_in_pve9_only():
    ms = {**MS, "service_status": {"vm:100": {"state": "migrate", "node": "node1",
                                              "target": "node2", "uid": "x"}}}
    assert "lrm node2 (idle," in status.status_text(ms, LRM, RES, True, "n", NOW, T, 8)
    assert "lrm node2 (wait_for_agent_lock," in status.status_text(ms, LRM, RES, True, "n",
                                                                    NOW, T, 9)


@pytest.mark.parametrize("ss,sc,want", [
    (None, None, "deleting"),
    ({"state": "started", "node": "n"}, None, "deleting"),
    (None, {"state": "ignored", "node": "n"}, "ignored"),
    (None, {"state": "started"}, "not found"),
    (None, {"state": "started", "node": "n"}, "queued"),
    ({"state": "stopped"}, {"state": "started", "node": "n"}, "starting"),
    ({"state": "stopped"}, {"state": "disabled", "node": "n"}, "disabled"),
    ({"state": "stopped"}, {"state": "stopped", "node": "n"}, "stopped"),
    ({"state": "started", "running": 1}, {"state": "stopped", "node": "n"}, "stopping"),
    ({"state": "started", "running": 1}, {"state": "disabled", "node": "n"}, "stopping"),
    ({"state": "started"}, {"state": "started", "node": "n"}, "starting"),
    ({"state": "started"}, {"state": "stopped", "node": "n"}, "starting"),
    ({"state": "error"}, {"state": "disabled", "node": "n"}, "clearing error flag"),
    ({"state": "error"}, {"state": "started", "node": "n"}, "error"),
    ({"state": "request_stop"}, {"state": "stopped", "node": "n"}, "request_stop"),
    ({"state": "recovery"}, {"state": "started", "node": "n"}, "recovery"),
])
def test_verbose_state(ss, sc, want):
    assert status.verbose_service_state(ss, sc) == want


def test_service_lines_queued_deleting_and_sorted():
    ms = {**MS, "service_status": {"vm:200": {"state": "started", "node": "node2"},
                                   "ct:150": {"state": "request_stop", "node": "node1"}}}
    resources = {**res("vm:100", "node1"), **res("ct:150", "node1", "stopped")}
    lines = status.status_text(ms, LRM, resources, True, "n", NOW, T, 8).splitlines()
    assert lines[-3:] == ["service ct:150 (node1, request_stop)",
                          "service vm:200 (node2, deleting)",
                          "service vm:100 (node1, queued)"]
    e = status.current(ms, LRM, resources, True, "n", NOW, T, 8)
    queued = e[-1]
    assert "crm_state" not in queued and queued["state"] == "queued"


def test_crs_suffix():
    e = status.current(MS, LRM, RES, True, "n", NOW, T, 8, crs_ha="static")
    assert e[1]["status"] == "node1 (active, Wed Nov 23 11:07:23 2016) - static load CRS"


def test_disarmed_pve9():
    ms = {**MS, "disarm": {"mode": "ignore", "state": "disarmed"}}
    e = status.current(ms, LRM, RES, True, "n", NOW, T, 9)
    assert e[1]["status"].endswith(" - disarmed, resource mode: ignore")
    assert e[2] == {"id": "fencing", "type": "fencing", "node": "node1",
                    "status": "disarmed, resource mode: ignore (CRM watchdog released)",
                    "armed-state": "disarmed", "resource_mode": "ignore"}
    assert e[-1]["state"] == "ignore"


def test_verbose_appends_full_cluster_state():
    text = status.status_text(MS, LRM, RES, True, "node1", NOW, T, 8, verbose=True)
    head, _, tail = text.partition("full cluster state:\n")
    assert head.endswith("service vm:101 (node3, fence)\n")
    data = json.loads(tail)
    assert data["quorum"] == {"node": "node1", "quorate": 1}
    assert data["manager_status"] == MS
    assert data["lrm_status"]["node2"] == LRM["node2"]
    assert tail.startswith('{\n   "lrm_status" : {\n      "node1" : {\n')
    assert tail.endswith("\n}\n")


def test_perl_pretty_json():
    assert status.perl_pretty_json({"b": [1, "x"], "a": {}, "c": []}) == (
        '{\n   "a" : {},\n   "b" : [\n      1,\n      "x"\n   ],\n   "c" : []\n}\n')
