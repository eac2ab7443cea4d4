"""The CRM's view of node states (pve-model.md §5; `src/PVE/HA/NodeStatus.pm`).

States: online, maintenance, unknown, fence, gone. `last_online` lives only in memory:
a new master starts a fresh 60 s fence-delay countdown (§3, §10.2).

The emulation bug double-start (node.json "bugs", the lab's --emulation-bug) makes this
deliberately unsafe for the chaos soak's self-test: no fence delay, no agent lock.
"""

from __future__ import annotations

from .env import HaEnv

NODE_STATES = ("online", "maintenance", "unknown", "fence", "gone")
# Self-test switches that make the CRM deliberately unsafe (node.json "bugs", the lab's
# --emulation-bug; lab/embedded/config.py names the same ones). Name -> what it breaks.
DOUBLE_START = "double-start"
EMULATION_BUGS = {DOUBLE_START: "no fence delay and no agent lock before a recovery"}


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
        state = self.get_node_state(node)
        if state == "online":
            return False
        if DOUBLE_START in self.env.bugs and state != "maintenance":
            # Emulation bug double-start, deliberately unsafe: no fence delay. Real PVE
            # starts fencing a node only once it has not been online for the 60 s fence
            # delay (pve-model.md §5; a new master counts it afresh), and then still
            # waits for the node's agent lock (§6, fence_node below). Maintenance keeps
            # the delay: a member in maintenance is not online either.
            return True
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
        if DOUBLE_START in self.env.bugs:
            # Emulation bug double-start, deliberately unsafe: acknowledged without the
            # lock. Real PVE acknowledges only once the master holds the node's agent lock
            # (pve-model.md §6), which it can take only after the node's LRM stopped
            # renewing it (120 s) and so after that node's watchdog reset it (60 + 10 s):
            # without it, the node, cut off but still powered, runs its guests on while
            # they are recovered elsewhere.
            msg = f"fencing: acknowledged - node '{node}' (emulation bug {DOUBLE_START}: " \
                  "not fenced)"
            self.env.log("warn", msg)
            self.set_node_state(node, "unknown")
            self.env.send_notification(f"SUCCEED: {msg}", msg)
            return True
        if not self.env.get_ha_agent_lock(node):
            return False
        msg = f"fencing: acknowledged - got agent lock for node '{node}'"
        self.env.log("info", msg)
        self.set_node_state(node, "unknown")
        self.env.send_notification(f"SUCCEED: {msg}", msg)
        return True
