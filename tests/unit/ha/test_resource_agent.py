"""exec_resource_agent (pve-model.md §7.5)."""

from pvemu.ha.env import ERROR, EWRONG_NODE, SUCCESS
from pvemu.ha.resource_agent import exec_resource_agent


class FakeGuests:
    def __init__(self, node="node1"):
        self.where = {"vm:101": node, "ct:102": node}
        self.running_set: set[str] = set()
        self.calls: list[tuple] = []
        self.fail = False

    def exists(self, sid):
        return sid in self.where

    def config_node(self, sid):
        return self.where.get(sid)

    def running(self, sid):
        return sid in self.running_set

    def start(self, sid):
        self.calls.append(("start", sid))
        if not self.fail:
            self.running_set.add(sid)
        return not self.fail

    def shutdown(self, sid, timeout_s):
        self.calls.append(("shutdown", sid, timeout_s))
        self.running_set.discard(sid)
        return True

    def migrate(self, sid, target, online):
        self.calls.append(("migrate", sid, target, online))
        self.where[sid] = target
        return True


def test_started(fake_env):
    g = FakeGuests()
    assert exec_resource_agent(fake_env, g, "vm:101", "started", {}) == SUCCESS
    assert g.calls == [("start", "vm:101")]
    assert exec_resource_agent(fake_env, g, "vm:101", "started", {}) == SUCCESS
    assert len(g.calls) == 1  # already running: nothing to do
    g2 = FakeGuests()
    g2.fail = True
    assert exec_resource_agent(fake_env, g2, "vm:101", "started", {}) == ERROR


def test_wrong_node(fake_env):
    g = FakeGuests(node="node2")
    assert exec_resource_agent(fake_env, g, "vm:101", "started", {}) == EWRONG_NODE
    assert g.calls == []


def test_stop_timeouts(fake_env):
    g = FakeGuests()
    g.running_set = {"vm:101", "ct:102"}
    assert exec_resource_agent(fake_env, g, "vm:101", "request_stop", {}) == SUCCESS
    assert exec_resource_agent(fake_env, g, "ct:102", "stopped", {"timeout": 0}) == SUCCESS
    assert g.calls == [("shutdown", "vm:101", 60), ("shutdown", "ct:102", 0)]


def test_migrate_and_relocate(fake_env):
    g = FakeGuests()
    g.running_set = {"vm:101", "ct:102"}
    assert exec_resource_agent(fake_env, g, "vm:101", "migrate", {"target": "node2"}) == SUCCESS
    assert g.calls[-1] == ("migrate", "vm:101", "node2", True)
    assert exec_resource_agent(fake_env, g, "ct:102", "relocate", {"target": "node3"}) == SUCCESS
    assert g.calls[-2:] == [("shutdown", "ct:102", 60), ("migrate", "ct:102", "node3", False)]


def test_error_only_logs(fake_env):
    g = FakeGuests()
    assert exec_resource_agent(fake_env, g, "vm:101", "error", {}) == SUCCESS
    assert g.calls == []
    assert any("needs manual intervention" in m for m in fake_env.logs)
