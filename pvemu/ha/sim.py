"""A whole PVE HA cluster in fake time, for unit tests and as the test oracle engine.

The simulator's entry point, like PVE's simulator (pve-model.md §13.4) but with PVE's
*real* loop intervals (10 s CRM, 10/5 s LRM, 1 s lock retries, 1 s watchdog-mux tick)
through `Timing`. `SimCluster` is built from a cluster's configuration (as
PVE::HA::Sim::Hardware's `new` builds its status directory from a test directory), takes
commands as PVE's simulator does in its cmdlist (hardware through `SimHardware`; service
and crm commands through a quorate node, like the API), and answers queries on its event
log and state. Its parts:

* sim_scheduler.py: the fake clock that runs every daemon generator (TestHardware's loop);
* sim_store.py: the replicated /etc/pve with pmxcfs's quorum and lock rules;
* sim_hardware.py: power, network, membership, watchdog and daemons (Sim::Hardware);
* sim_env.py: the `HaEnv` and `Guests` each daemon sees (Sim::Env, Sim::Resources).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pvemu.timing import Timing

from .sim_env import SimEnv, SimGuests
from .sim_hardware import Event, SimHardware, SimNode

__all__ = ["Event", "SimCluster", "SimEnv", "SimGuests", "SimNode"]

RESOURCE_KEYS = ("state", "group", "max_restart", "max_relocate", "failback", "comment")
DEFAULT_VERSIONS = {8: "8.4.1", 9: "9.1.1"}  # pve-manager per flavour (lab/options.py's)


class SimCluster(SimHardware):
    """A simulated cluster. Commands change hardware or config; `run_until` runs time."""

    def __init__(
        self, nodes: tuple[str, ...] = ("node1", "node2", "node3"), flavour: int = 8,
        services: dict[str, dict] | None = None, groups: dict | None = None,
        rules: dict | None = None, datacenter: dict | None = None, *,
        timing: Timing | None = None, membership_delay: float = 8.0,
        unlock_delay: float = 0.5, boot_delay: float = 20.0,
        watchdog_boot_delay: float | None = None, guest_op_seconds: float = 1.0,
        clock_offsets: dict[str, float] | None = None, power_on: bool = True,
        manager_status: dict | None = None, versions: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            nodes, flavour=flavour, timing=timing or Timing(1.0),
            membership_delay=membership_delay, unlock_delay=unlock_delay,
            boot_delay=boot_delay, watchdog_boot_delay=watchdog_boot_delay,
            guest_op_seconds=guest_op_seconds, clock_offsets=clock_offsets or {})
        for name, node in self.nodes.items():  # default: the flavour's own version
            node.pve_manager_version = (versions or {}).get(name, DEFAULT_VERSIONS[flavour])
        if services is None:
            names = sorted(nodes)
            services = {f"vm:{101 + i}": {"node": n} for i, n in enumerate(names)}
        running = {sid: cfg["node"] for sid, cfg in services.items() if cfg.get("running")}
        self.store.seed({
            "ha/resources.cfg": {sid: {k: v for k, v in cfg.items() if k in RESOURCE_KEYS}
                                 for sid, cfg in services.items()},
            "vmlist": {sid: cfg["node"] for sid, cfg in services.items()},
            "ha/groups.cfg": groups or {},
            "ha/rules.cfg": rules or {},
            "datacenter.cfg": datacenter or {},
            "ha/manager_status": manager_status or {},
            "ha/crm_commands": [],
        })
        if power_on:
            for name in self.nodes:
                self.power(name, True, _log=False)
            self._apply_views(self._physical_views())
            for sid, name in running.items():
                self.nodes[name].running.add(sid)

    # -- queries ---------------------------------------------------------------------------
    def find(self, pattern: str, *, node: str | None = None, daemon: str | None = None,
             after: float = float("-inf"), before: float = float("inf")) -> list[Event]:
        rx = re.compile(pattern)
        return [e for e in self.events
                if after <= e.time <= before and (node is None or e.node == node)
                and (daemon is None or e.daemon == daemon) and rx.search(e.message)]

    def first(self, pattern: str, **kw) -> Event | None:
        found = self.find(pattern, **kw)
        return found[0] if found else None

    def service_transitions(self, sid: str) -> list[tuple[float, str, str]]:
        rx = re.compile(rf"^service '{re.escape(sid)}': state changed from '(\w+)' to "
                        r"'(\w+)'")
        out = []
        for e in self.events:
            m = rx.match(e.message)
            if m:
                out.append((e.time, m.group(1), m.group(2)))
        return out

    def service_state_time(self, sid: str, state: str,
                           after: float = float("-inf")) -> float | None:
        """When service `sid` first entered CRM state `state` (at or after `after`)."""
        for when, _, new in self.service_transitions(sid):
            if new == state and when >= after:
                return when
        return None

    def running_on(self, sid: str) -> list[str]:
        """Which (powered) nodes run the guest right now."""
        return sorted(n.name for n in self.nodes.values() if n.power and sid in n.running)

    def watchdog_resets(self, node: str | None = None) -> list[float]:
        return [t for t, n in self.resets if node is None or n == node]

    def crm_state(self, node: str) -> str | None:
        crm = self.nodes[node].crm
        return crm.state if crm is not None else None

    def lrm_state(self, node: str) -> str | None:
        lrm = self.nodes[node].lrm
        return lrm.state if lrm is not None else None

    def master(self) -> str | None:
        masters = [n for n in self.nodes if self.crm_state(n) == "master"]
        return masters[0] if masters else None

    def manager_status(self) -> dict:
        """The newest manager_status any node holds."""
        return self.store.newest("ha/manager_status")

    def service_status(self, sid: str) -> dict:
        return self.manager_status().get("service_status", {}).get(sid, {})

    def node_state(self, node: str) -> str | None:
        return self.manager_status().get("node_status", {}).get(node)

    def lines(self) -> Iterator[str]:
        return (str(e) for e in self.events)

    # -- admin commands (through a quorate node, like the API) ------------------------------
    def _admin_node(self) -> SimNode:
        for node in sorted(self.nodes.values(), key=lambda n: n.nodeid):
            if self.store.quorate(node):
                return node
        raise RuntimeError("cluster not quorate")

    def set_service_state(self, sid: str, state: str) -> None:
        """`ha-manager set <sid> --state <state>`."""
        node = self._admin_node()
        resources = self.store.read(node, "ha/resources.cfg", {})
        resources.setdefault(sid, {})["state"] = state
        self.store.write(node, "ha/resources.cfg", resources)
        self.log(node.name, "cmdlist", "info", f"service {sid} {state}")

    def remove_service(self, sid: str) -> None:
        """`ha-manager remove <sid>`: drop the config entry (the guest stays)."""
        node = self._admin_node()
        resources = self.store.read(node, "ha/resources.cfg", {})
        resources.pop(sid, None)
        self.store.write(node, "ha/resources.cfg", resources)
        self.log(node.name, "cmdlist", "info", f"service {sid} delete")

    def set_datacenter(self, datacenter: dict) -> None:
        self.store.write(self._admin_node(), "datacenter.cfg", datacenter)

    def crm_command(self, line: str) -> None:
        node = self._admin_node()
        commands = self.store.read(node, "ha/crm_commands", [])
        commands.append(line)
        self.store.write(node, "ha/crm_commands", commands)
        self.log(node.name, "cmdlist", "info", f"crm command: {line}")

    def migrate(self, sid: str, target: str) -> None:
        self.crm_command(f"migrate {sid} {target}")

    def relocate(self, sid: str, target: str) -> None:
        self.crm_command(f"relocate {sid} {target}")

    def stop(self, sid: str, timeout: int = 0) -> None:
        self.crm_command(f"stop {sid} {timeout}")

    def node_maintenance(self, node: str, enable: bool) -> None:
        action = "enable" if enable else "disable"
        self.crm_command(f"{action}-node-maintenance {node}")

    def set_pve_manager_version(self, node: str, version: str) -> None:
        """The simulator's `pve-manager-version <node> set <version>`."""
        self.nodes[node].pve_manager_version = version
        self.log(node, "cmdlist", "info", f"pve-manager-version {node} set {version}")

    def set_fail_start(self, sid: str, nodes: set[str] | None = None) -> None:
        """Starting `sid` fails on `nodes` (None: everywhere)."""
        self.fail_start[sid] = None if nodes is None else set(nodes)

    def clear_fail_start(self, sid: str) -> None:
        self.fail_start.pop(sid, None)
