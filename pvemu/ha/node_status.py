"""The CRM's view of node states (pve-model.md §5; `src/PVE/HA/NodeStatus.pm`).

States: online, maintenance, unknown, fence, gone. `last_online` lives only in memory:
a new master starts a fresh 60 s fence-delay countdown (§3, §10.2).
"""

from __future__ import annotations

from .env import HaEnv

NODE_STATES = ("online", "maintenance", "unknown", "fence", "gone")


class NodeStatus:
    def __init__(self, env: HaEnv, status: dict[str, str] | None = None) -> None:
        self.env = env
        self.status: dict[str, str] = dict(status or {})
        self.last_online: dict[str, float] = {}  # not persisted (§3)

    # -- queries -----------------------------------------------------------------
    def get_node_state(self, node: str) -> str:
        return self.status.get(node, "unknown")

    def node_is_online(self, node: str) -> bool:
        return self.get_node_state(node) == "online"

    def node_is_operational(self, node: str) -> bool:
        return self.get_node_state(node) in ("online", "maintenance")

    def list_nodes(self) -> list[str]:
        return sorted(self.status)

    def list_online_nodes(self) -> list[str]:
        return sorted(n for n, s in self.status.items() if s == "online")

    def node_is_offline_delayed(self, node: str) -> bool:
        """Not online for at least the fence delay (60 s). An unknown last_online (a new
        master) is set to now, so a fresh countdown starts (§5)."""
        if self.get_node_state(node) == "online":
            return False
        now = self.env.now()
        last = self.last_online.get(node)
        if last is None:
            self.last_online[node] = now
            return False
        return now - last >= self.env.timing.fence_delay

    # -- updates ----------------------------------------------------------------
    def set_node_state(self, node: str, state: str) -> None:
        assert state in NODE_STATES, state
        old = self.get_node_state(node)
        if node in self.status and old == state:
            return
        self.env.log("info", f"node '{node}': state changed from '{old}' => '{state}'")
        self.status[node] = state

    def update(self, node_info: dict[str, bool], lrm_modes: dict[str, str]) -> None:
        """Apply one round of membership (§5 update rules)."""
        now = self.env.now()
        for node in sorted(node_info):
            state = self.get_node_state(node)
            mode = lrm_modes.get(node, "active")
            if node_info[node]:
                self.last_online[node] = now
                if state == "online" and mode == "maintenance":
                    self.set_node_state(node, "maintenance")
                elif state in ("unknown", "gone") or node not in self.status:
                    self.set_node_state(node, "online")
                elif state == "maintenance" and mode != "maintenance":
                    self.set_node_state(node, "online")
                # fence stays fence until fencing succeeds
            else:
                if node not in self.status:
                    self.status[node] = "unknown"  # unlisted nodes default to unknown
                elif state == "online":
                    self.set_node_state(node, "unknown")
                elif state == "maintenance" and mode != "maintenance":
                    # a node powered off while in maintenance stays there: not fenced
                    self.set_node_state(node, "unknown")
        for node in sorted(set(self.status) - set(node_info)):
            state = self.get_node_state(node)
            if state == "gone":
                last = self.last_online.setdefault(node, now)
                if now - last > self.env.timing.gone_delete:
                    self.env.log("info", f"deleting gone node '{node}', not a cluster member"
                                 " anymore.")
                    del self.status[node]
                    self.last_online.pop(node, None)
            elif state != "fence":
                self.set_node_state(node, "gone")

    def fence_node(self, node: str) -> bool:
        """Fencing = taking the node's agent lock (§6). True once acknowledged."""
        if self.get_node_state(node) != "fence":
            self.set_node_state(node, "fence")
            msg = f"Try to fence node '{node}'"
            self.env.log("info", msg)
            self.env.send_notification(f"FENCE: {msg}", msg)
        if not self.env.get_ha_agent_lock(node):
            return False
        msg = f"fencing: acknowledged - got agent lock for node '{node}'"
        self.env.log("info", msg)
        self.set_node_state(node, "unknown")
        self.env.send_notification(f"SUCCEED: {msg}", msg)
        return True
