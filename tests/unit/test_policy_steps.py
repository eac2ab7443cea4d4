"""harness.policy_steps: membership changes found on the timeline, groups or rules from
the nodes' versions."""

from __future__ import annotations

import pytest

from harness import policy_steps
from harness.clock import Clock
from harness.events import Action, EventKind, MembershipChanged, Note
from harness.pve import PveVersion
from harness.timeline import Timeline


def view(*members: str) -> MembershipChanged:
    return MembershipChanged(True, members, 3, len(members))


def test_left_and_rejoined_take_the_first_survivor_view_after_the_action():
    tl = Timeline(Clock())
    tl.record(EventKind.MEMBERSHIP_CHANGED, "node1", view("node1", "node3"), t=1.0)  # before
    action = tl.record(EventKind.ACTION, "harness", Action("systemctl poweroff", "node2"),
                       t=2.0)
    tl.record(EventKind.NOTE, "node1", Note("noise"), t=2.5)
    tl.record(EventKind.MEMBERSHIP_CHANGED, "node2", view("node2"), t=3.0)  # not a survivor
    tl.record(EventKind.MEMBERSHIP_CHANGED, "node3", view("node1", "node3"), t=4.0)
    tl.record(EventKind.MEMBERSHIP_CHANGED, "node1", view("node1", "node3"), t=4.5)
    tl.record(EventKind.MEMBERSHIP_CHANGED, "node1", view("node1", "node2", "node3"), t=9.0)
    left = policy_steps.left_membership(tl, "node2", action, ["node1", "node3"])
    assert (left.t, left.source) == (4.0, "node3")
    back = policy_steps.rejoined(tl, "node2", left, ["node1", "node3"])
    assert back.t == 9.0
    assert policy_steps.rejoined(tl, "node2", back, ["node3"]) is None


class Versioned:
    def __init__(self, name: str, manager: str) -> None:
        self.name, self.manager = name, manager

    def pve_version(self) -> PveVersion:
        return PveVersion(self.manager, "6.8.12-1-pve")


class Nodes:
    def __init__(self, **versions: str) -> None:
        self._nodes = [Versioned(n, v) for n, v in versions.items()]

    def nodes(self):
        return self._nodes


@pytest.mark.parametrize(("versions", "kind"), [
    ({"node1": "8.4.1", "node2": "8.4.1", "node3": "8.3.0"}, policy_steps.GROUPS),
    ({"node1": "9.1.1", "node2": "9.0.3", "node3": "9.1.1"}, policy_steps.RULES),
    ({"node1": "8.4.1", "node2": "9.0.3", "node3": "9.1.1"}, None),
    ({"node1": "7.4.3", "node2": "7.4.3", "node3": "7.4.3"}, policy_steps.GROUPS),
    ({"node1": "8.4.1", "node2": "8.4.1", "node3": "9.1.1"}, None),
])
def test_groups_up_to_8_rules_on_9_and_nothing_for_a_mixed_cluster(versions, kind):
    found, why = policy_steps.placement_config(Nodes(**versions))
    assert found == kind
    if kind is None:
        assert "node1 " + versions["node1"].split(".")[0] in why
