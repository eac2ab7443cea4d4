"""harness.ha_watcher: HaWatcher on fake nodes fed scripted `ha-manager status` outputs, and
the metrics helpers over a hand-built timeline. No SSH."""

from __future__ import annotations

import threading
import time

import pytest

from harness import event_json
from harness.clock import Clock
from harness.errors import CommandTimeout, NodeUnreachable, PvechaosError
from harness.events import HaMaster, HaNodeState, HaServiceState, NodeFault, Note, Placement
from harness.ha_watcher import (
    HaWatcher,
    first_service_state,
    record_changes,
    service_node_changes,
)
from harness.pve import parse_ha_manager_status
from harness.timeline import EventKind, Timeline
from harness.waits import wait_until
from tests.twins import Call, FakeCluster, FakeNode

K = EventKind
T1, T2 = "Fri Aug  1 11:59:57 2025", "Fri Aug  1 12:00:07 2025"


def ha_text(services: dict[str, tuple[str, str]], *, lrms: dict[str, str] | None = None,
            master: tuple[str, str] | None = ("node1", "active"), time: str = T1,
            fencing: str | None = None, watchdog: str | None = None) -> str:
    """An `ha-manager status` output in the PVE 8 layout (PVE 9 with fencing/watchdog)."""
    lines = ["quorum OK"]
    if master:
        lines.append(f"master {master[0]} ({master[1]}, {time})")
    if fencing:
        lines.append(f"fencing {fencing}")
    wd = f"watchdog {watchdog}, " if watchdog else ""
    for node, status in sorted((lrms or {}).items()):
        lines.append(f"lrm {node} ({status}, {wd}{time})")
    for sid, (node, state) in sorted(services.items()):
        lines.append(f"service {sid} ({node}, {state})")
    return "\n".join(lines) + "\n"


UP = {"node1": "active", "node2": "active", "node3": "active"}


def polled(node: FakeNode, times: int, timeout_s: float = 5.0) -> None:
    """Wait until node was asked ``times`` times (so every earlier answer is recorded)."""
    wait_until(f"{node.name} polled {times} times", lambda: len(node.calls) >= times,
               timeout_s=timeout_s, interval_s=0.01)


def summary(timeline: Timeline, source: str) -> list[tuple]:
    out = []
    for e in timeline.events((K.HA_MASTER, K.HA_NODE_STATE, K.HA_SERVICE_STATE),
                             source=source):
        p = e.payload
        if isinstance(p, HaMaster):
            out.append(("master", p.node, p.status, p.previous_node))
        elif isinstance(p, HaNodeState):
            out.append(("lrm", p.node, p.status, p.previous))
        else:
            p = e.payload_of(HaServiceState)
            out.append(("service", p.sid, p.node, p.state, p.previous_state))
    return out


# -- the watcher ---------------------------------------------------------------------------
FAILOVER = [
    ha_text({"vm:100": ("node3", "started")}, lrms=UP),
    ha_text({"vm:100": ("node3", "started")}, lrms=UP, time=T2),  # only the times moved
    ha_text({"vm:100": ("node3", "fence")},
            lrms={**UP, "node3": "old timestamp - dead?"}),
    ha_text({"vm:100": ("node3", "recovery")},
            lrms={**UP, "node3": "old timestamp - dead?"}),
    ha_text({"vm:100": ("node1", "started")}, master=("node2", "active"),
            lrms={**UP, "node3": "old timestamp - dead?"}),
]


def test_records_each_change_of_a_nodes_view():
    tl = Timeline(Clock())
    node1 = FakeNode("node1", FAILOVER)
    with HaWatcher(FakeCluster(node1), tl, interval_s=0.01) as watcher:
        polled(node1, len(FAILOVER) + 1)
    assert summary(tl, "node1") == [
        ("master", "node1", "active", None),
        ("lrm", "node1", "active", None),
        ("lrm", "node2", "active", None),
        ("lrm", "node3", "active", None),
        ("service", "vm:100", "node3", "started", None),
        ("lrm", "node3", "old timestamp - dead?", "active"),
        ("service", "vm:100", "node3", "fence", "started"),
        ("service", "vm:100", "node3", "recovery", "fence"),
        ("master", "node2", "active", "node1"),
        ("service", "vm:100", "node1", "started", "recovery"),
    ]
    moved = event_json.data_of(tl.events(K.HA_SERVICE_STATE)[-1].payload)
    assert moved == {"sid": "vm:100", "node": "node1", "state": "started",
                     "previous": {"node": "node3", "state": "recovery"},
                     "previous_node": "node3", "previous_state": "recovery"}
    assert watcher.polls >= len(FAILOVER)
    assert watcher.views["node1"] == parse_ha_manager_status(FAILOVER[-1])


def test_polls_ha_manager_status_with_the_command_deadline():
    node1 = FakeNode("node1", [ha_text({})])
    with HaWatcher(FakeCluster(node1), Timeline(Clock()), interval_s=0.01,
                   command_timeout_s=1.5):
        polled(node1, 2)
    assert node1.calls[0] == Call(("ha-manager", "status"), 1.5, ok_codes=(0,))


def test_timestamps_are_the_start_of_the_poll_that_saw_the_change():
    clock = Clock()
    tl = Timeline(clock)
    asked: list[float] = []

    def slow(call: Call) -> str:
        asked.append(clock.now())
        time.sleep(0.3)
        return ha_text({"vm:100": ("node1", "started")})

    node1 = FakeNode("node1", [slow, ha_text({})])
    with HaWatcher(FakeCluster(node1), tl, interval_s=0.01):
        polled(node1, 2)
    first = tl.events(K.HA_SERVICE_STATE)[0]
    assert first.t <= asked[0]  # stamped before the command ran, not when it answered


def test_unreachable_and_timed_out_nodes_record_nothing_and_do_not_stop_the_others():
    tl = Timeline(Clock())
    node1 = FakeNode("node1", FAILOVER)
    node2 = FakeNode("node2", [NodeUnreachable("node2", "192.0.2.2", "no route"),
                               NodeUnreachable("node2", "192.0.2.2", "no route"),
                               ha_text({"vm:100": ("node3", "fence")}, lrms=UP)])
    node3 = FakeNode("node3", [CommandTimeout("node3", "ha-manager status", 0.05)])
    with HaWatcher(FakeCluster(node1, node2, node3), tl, interval_s=0.01) as watcher:
        polled(node1, len(FAILOVER) + 1)
        polled(node2, 4)
        polled(node3, 5)  # keeps polling the silent node
        assert watcher.views["node3"] is None
    assert len(summary(tl, "node1")) == 10  # as in the test above
    assert summary(tl, "node2")[-1] == ("service", "vm:100", "node3", "fence", None)
    assert tl.events(source="node3") == []
    assert watcher.views["node2"] is not None


def test_a_node_back_from_unreachable_reports_only_what_changed():
    tl = Timeline(Clock())
    quiet = ha_text({"vm:100": ("node1", "started")}, lrms=UP)
    node2 = FakeNode("node2", [quiet, NodeUnreachable("node2", "192.0.2.2", "reset"), quiet,
                               ha_text({"vm:100": ("node2", "started")}, lrms=UP)])
    with HaWatcher(FakeCluster(node2), tl, interval_s=0.01):
        polled(node2, 5)
    services = [e.payload_of(HaServiceState) for e in tl.events(K.HA_SERVICE_STATE)]
    assert [(p.node, p.previous_node) for p in services] == [("node1", None),
                                                                   ("node2", "node1")]


def test_an_answer_without_ha_status_is_noted_once_and_polling_goes_on():
    tl = Timeline(Clock())
    node1 = FakeNode("node1", [(255, "ipcc_send_rec[1] failed: Connection refused"),
                               (255, "ipcc_send_rec[1] failed: Connection refused"),
                               "quorum OK\nnonsense\n",
                               ha_text({"vm:100": ("node1", "started")})])
    with HaWatcher(FakeCluster(node1), tl, interval_s=0.01) as watcher:
        polled(node1, 5)
    notes = [e.payload_of(Note).text for e in tl.events(K.NOTE, source="node1")]
    assert len(notes) == 2
    assert "exited with 255" in notes[0] and "cannot parse ha-manager status" in notes[1]
    assert summary(tl, "node1") == [("master", "node1", "active", None),
                                    ("service", "vm:100", "node1", "started", None)]
    assert watcher.views["node1"] is not None


def test_names_limits_the_watched_nodes():
    node1, node2 = FakeNode("node1", [ha_text({})]), FakeNode("node2", [ha_text({})])
    with HaWatcher(FakeCluster(node1, node2), Timeline(Clock()), interval_s=0.01,
                   names=["node2"]) as watcher:
        polled(node2, 3)
    assert node1.calls == []
    assert set(watcher.views) == {"node2"}


def test_stop_returns_within_a_bound_while_a_node_hangs():
    def hang(call: Call) -> str:
        time.sleep(call.timeout_s)  # a frozen node: the command runs into its deadline
        raise CommandTimeout("node3", "ha-manager status", call.timeout_s)

    node1, node3 = FakeNode("node1", [ha_text({})]), FakeNode("node3", [hang])
    watcher = HaWatcher(FakeCluster(node1, node3), Timeline(Clock()), interval_s=0.01,
                        command_timeout_s=0.3)
    watcher.start()
    polled(node1, 3)
    polled(node3, 1)
    begin = time.monotonic()
    watcher.stop(timeout_s=2.0)
    assert time.monotonic() - begin < 1.0
    assert not [t for t in threading.enumerate() if t.name.startswith("ha-watcher-")]


def test_stop_says_which_threads_did_not_stop():
    release = threading.Event()
    node1 = FakeNode("node1", [lambda call: release.wait(5) and ha_text({})])
    watcher = HaWatcher(FakeCluster(node1), Timeline(Clock()), interval_s=0.01)
    watcher.start()
    polled(node1, 1)
    try:
        begin = time.monotonic()
        with pytest.raises(PvechaosError, match="ha-watcher-node1"):
            watcher.stop(timeout_s=0.2)
        assert time.monotonic() - begin < 1.0
    finally:
        release.set()


# -- record_changes, pure ------------------------------------------------------------------
def test_removed_service_and_lrm_are_recorded_with_none():
    tl = Timeline(Clock())
    old = parse_ha_manager_status(ha_text({"vm:100": ("node1", "deleting")}, lrms=UP))
    new = parse_ha_manager_status(ha_text({}, lrms={"node1": "active", "node2": "active"}))
    record_changes(tl, "node1", old, new, 5.0)
    assert summary(tl, "node1") == [("lrm", "node3", None, "active"),
                                    ("service", "vm:100", None, None, "deleting")]
    assert tl.events()[0].t == 5.0


def test_pve9_watchdog_and_fencing_changes_are_recorded():
    tl = Timeline(Clock())
    old = parse_ha_manager_status(ha_text({}, lrms={"node1": "active"}, watchdog="active",
                                          fencing="armed (CRM watchdog active)"))
    new = parse_ha_manager_status(ha_text({}, lrms={"node1": "active"}, watchdog="released",
                                          fencing="disarmed, resource mode: freeze "
                                                  "(CRM watchdog released)"))
    events = record_changes(tl, "node2", old, new, 1.0)
    assert [(e.kind, e.source) for e in events] == [(K.HA_MASTER, "node2"),
                                                   (K.HA_NODE_STATE, "node2")]
    master = events[0].payload_of(HaMaster)
    assert master.fencing.startswith("disarmed")
    assert (master.node, master.previous_node) == ("node1", "node1")
    assert events[1].payload == HaNodeState(node="node1", status="active",
                                            watchdog="released", previous="active")


def test_master_gone_is_recorded_and_a_same_view_records_nothing():
    tl = Timeline(Clock())
    old = parse_ha_manager_status(ha_text({}, master=("node1", "active")))
    assert record_changes(tl, "node1", old, old, 1.0) == []
    gone = parse_ha_manager_status(ha_text({}, master=None))
    (event,) = record_changes(tl, "node1", old, gone, 2.0)
    assert (event.kind, event.payload_of(HaMaster).node,
            event.payload_of(HaMaster).previous_status) == (K.HA_MASTER, None, "active")
    assert record_changes(tl, "node1", None, gone, 3.0) == []  # nothing to say yet


# -- metrics helpers -----------------------------------------------------------------------
def svc(tl: Timeline, t: float, source: str, sid: str, node: str, state: str,
        previous: tuple[str, str] | None = None) -> None:
    tl.record(K.HA_SERVICE_STATE, source, HaServiceState(
        sid, node, state, Placement(*previous) if previous else None), t=t)


@pytest.fixture
def failover() -> tuple[Timeline, object]:
    tl = Timeline(Clock())
    for source in ("node1", "node2"):
        svc(tl, 1.0, source, "vm:100", "node3", "started")
        svc(tl, 1.0, source, "vm:200", "node1", "started")
    cut = tl.record(K.FAULT_POWER_CUT, "harness", NodeFault("node3"), t=10.0)
    svc(tl, 71.0, "node2", "vm:100", "node3", "fence", ("node3", "started"))
    svc(tl, 72.0, "node1", "vm:100", "node3", "fence", ("node3", "started"))
    svc(tl, 130.0, "node1", "vm:100", "node3", "recovery", ("node3", "fence"))
    svc(tl, 131.0, "node2", "vm:100", "node3", "recovery", ("node3", "fence"))
    svc(tl, 140.0, "node2", "vm:100", "node1", "started", ("node3", "recovery"))
    svc(tl, 142.0, "node1", "vm:100", "node1", "started", ("node3", "recovery"))
    svc(tl, 150.0, "node1", "vm:200", "node1", "stopped", ("node1", "started"))
    return tl, cut


def test_first_service_state(failover):
    tl, cut = failover
    assert first_service_state(tl, "vm:100", "fence", cut).t == 71.0
    assert first_service_state(tl, "vm:100", "fence", cut, on="node1").t == 72.0
    assert first_service_state(tl, "vm:100", "started", cut).t == 140.0  # not the setup's
    assert first_service_state(tl, "vm:100", "started", 0.0).t == 1.0
    assert first_service_state(tl, "vm:100", "started", cut, node="node3") is None
    assert first_service_state(tl, "vm:100", "started", cut, node="node1", on="node1").t \
        == 142.0
    assert first_service_state(tl, "vm:100", ("recovery", "started"), cut).t == 130.0
    assert first_service_state(tl, "vm:200", "fence", cut) is None
    assert first_service_state(tl, "vm:100", "error", cut) is None


def test_service_node_changes(failover):
    tl, cut = failover
    moves = service_node_changes(tl, "vm:100", cut)
    assert [(e.t, e.source, e.payload.previous_node, e.payload.node) for e in moves] == [
        (140.0, "node2", "node3", "node1"), (142.0, "node1", "node3", "node1")]
    assert [e.t for e in service_node_changes(tl, "vm:100", cut, on="node1")] == [142.0]
    assert service_node_changes(tl, "vm:100", 0.0) == moves  # first views are no moves
    assert service_node_changes(tl, "vm:200", 0.0) == []
    assert service_node_changes(tl, "vm:100", 141.0, on="node2") == []


def test_helpers_read_what_the_watcher_records():
    tl = Timeline(Clock())
    node1 = FakeNode("node1", FAILOVER)
    with HaWatcher(FakeCluster(node1), tl, interval_s=0.01):
        polled(node1, len(FAILOVER) + 1)
    fence = first_service_state(tl, "vm:100", "fence", 0.0, node="node3", on="node1")
    assert fence is not None and fence.payload_of(HaServiceState).previous_state == "started"
    (move,) = service_node_changes(tl, "vm:100", fence)
    assert move.payload_of(HaServiceState).node == "node1" and move.t >= fence.t
