"""The corosync sweep scenario's judging and report pieces (no lab), and that it collects
on the libvirt lab."""

from __future__ import annotations

import pytest

from harness.clock import Clock
from harness.events import MembershipChanged, QuorumView, Unreachable
from harness.timeline import EventKind, Timeline
from scenarios import test_corosync_sweep as sweep
from tests.unit.test_lab_options import collect


def view(quorate: bool, *members: str) -> QuorumView:
    return QuorumView(quorate, members, 3, len(members))


def timeline_with(*events) -> Timeline:
    timeline = Timeline(Clock())
    for t, kind, source, payload in events:
        timeline.record(kind, source, payload, t=t)
    return timeline


def judged(timeline: Timeline, rings: tuple[str, str] = ("1.d", "1.d")) -> sweep.Point:
    point = sweep.Point(0, 10, "all", 30)
    sweep.judge(timeline, 100.0, 130.0, point, rings)
    return point


def test_no_change_in_the_hold_is_held_and_a_first_view_is_no_change():
    first = MembershipChanged.of(view(True, "node1", "node2", "node3"), first_view=True)
    point = judged(timeline_with((101, EventKind.MEMBERSHIP_CHANGED, "node1", first),
                                 (131, EventKind.QUORUM_LOST, "node1", view(False, "n1"))))
    assert (point.outcome, point.first_change_s) == ("held", None)


def test_a_membership_change_is_a_flap_and_a_quorum_loss_wins():
    change = MembershipChanged.of(view(True, "node1", "node2"), first_view=False)
    point = judged(timeline_with((104.5, EventKind.MEMBERSHIP_CHANGED, "node1", change)))
    assert (point.outcome, point.first_change_s, point.membership_changes) == \
        ("flapped", 4.5, 1)
    point = judged(timeline_with(
        (104.5, EventKind.MEMBERSHIP_CHANGED, "node1", change),
        (103.0, EventKind.QUORUM_LOST, "node3", view(False, "node3"))))
    assert (point.outcome, point.first_change_s, point.quorum_losses) == ("lost", 3.0, 1)


def test_unanswered_polls_without_a_change_are_a_stall_with_the_reason():
    point = judged(timeline_with((110, EventKind.NODE_UNREACHABLE, "node2",
                                  Unreachable("no answer within 4 s"))))
    assert point.outcome == "stalled" and point.unanswered_polls == 1
    assert point.note == "node2 at +10.0 s: no answer within 4 s"


def test_a_new_ring_with_the_same_members_is_a_re_formation():
    silent = (110, EventKind.NODE_UNREACHABLE, "node2", Unreachable("no answer"))
    point = judged(timeline_with(silent), ("1.d", "1.15"))
    assert (point.outcome, point.ring_ids) == ("re-formed", "1.d -> 1.15")


def test_the_table_and_the_plot_render():
    points = [sweep.Point(0, 0, "all", 12, "held"), sweep.Point(50, 0, "all", 12, "held"),
              sweep.Point(0, 5, "all", 12, "stalled"), sweep.Point(0, 40, "all", 12, "lost"),
              sweep.Point(20, 0, "all", 12, "unsupported", note="no netem")]
    rows = sweep.table_rows(points)
    assert [r["point"] for r in rows] == ["baseline", "delay 50 ms", "loss 5 %", "loss 40 %",
                                          "delay 20 ms"]
    assert "<td>lost</td>" in sweep.to_html(rows)
    assert sweep.plot(points).startswith(b"\x89PNG")


def test_the_short_form_starts_with_a_baseline_and_has_few_points():
    assert sweep.POINTS[0].label == "baseline"
    if sweep.FORM == "short":
        assert len(sweep.POINTS) <= 4 and sweep.HOLD_S <= 15


@pytest.fixture
def lab_yaml(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key\n")
    key.with_name("id_ed25519.pub").write_text("ssh-ed25519 AAAA harness\n")
    path = tmp_path / "lab.yaml"
    path.write_text(f"hosts: [qemu:///system]\niso: /var/cache/pvechaos/x.iso\n"
                    f"iso_version: \"9.1-1\"\nroot_password_env: PVECHAOS_TEST_ROOT_PASSWORD\n"
                    f"ssh_key: {key}\ngateway: {{image: gw.qcow2}}\n"
                    f"guest: {{template: \"shared:vztmpl/g.tar.xz\"}}\n")
    return path


def test_the_sweep_collects_on_the_libvirt_lab(lab_yaml):
    done = collect("--lab", "libvirt", "--lab-config", str(lab_yaml),
                   env={"PVECHAOS_TEST_ROOT_PASSWORD": "lab-secret-1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scenarios/test_corosync_sweep.py::test_point[loss40pct]" in done.stdout


# -- counting what the loss rules dropped, when a node resets under them --------------------
LISTING = "chain loss_out {\n  udp dport 5405 counter packets 17 bytes 2000 drop\n}\n"


def loss_cluster():
    from harness.errors import NodeUnreachable
    from tests.twins import FakeCluster, FakeNode

    node3 = FakeNode("node3", [NodeUnreachable("node3", "198.18.0.13", "connection refused")])
    return FakeCluster(FakeNode("node1", LISTING), FakeNode("node2", LISTING), node3)


def test_dropped_counts_every_node_on_the_boot_the_rules_were_set_on():
    cluster = loss_cluster()
    count, gone = sweep.dropped(cluster, {"node1": "node1-boot-1", "node2": "node2-boot-1"})
    assert (count, gone) == (34, [])


def test_a_node_that_reset_under_the_loss_is_left_out_of_the_count_and_named():
    cluster = loss_cluster()
    cluster.node("node2").boot = "node2-boot-2"  # its rules and counters went with it
    boots = {"node1": "node1-boot-1", "node2": "node2-boot-1", "node3": "node3-boot-1"}
    count, gone = sweep.dropped(cluster, boots)
    assert count == 17
    assert gone == ["node2: new boot node2-boot-2", "node3: node3 (198.18.0.13) is "
                    "unreachable over SSH: connection refused"]
    assert cluster.node("node2").calls == []  # a new boot's counters are not read


def test_no_count_at_all_when_every_node_reset():
    cluster = loss_cluster()
    cluster.node("node1").boot = "node1-boot-2"
    count, gone = sweep.dropped(cluster, {"node1": "node1-boot-1"})
    assert count is None and gone == ["node1: new boot node1-boot-2"]
