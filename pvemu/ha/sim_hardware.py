"""The simulated machines: power, network, corosync membership, watchdog and daemons.

Mirrors PVE::HA::Sim::Hardware's hardware side (pve-model.md §13.4): power and network
per node, a watchdog per node, starting and stopping the CRM and LRM (crm_control,
lrm_control), and the node commands of `sim_hardware_cmd` (power, network, reboot,
shutdown, restart-lrm). Where it differs from PVE's simulator:

* corosync membership changes land `membership_delay` (8 s: token + consensus, §2) after
  a power or network change; an isolated node sees only itself. Quorum is a majority of
  the nodes (§17.1). Each partition then resyncs the replicated store (sim_store.py).
* watchdog-mux per node (§7.6) ticks every second; expiry powers the node off at once
  (softdog) and, if `watchdog_boot_delay` is set, boots it again that much later.
* a clean shutdown or reboot goes LRM first (its shutdown policy), then the CRM, then
  power off; a reboot powers on again `boot_delay` later.
* workers (the LRM's resource-agent runs) finish `guest_op_seconds` after they start,
  unless the node went down or rebooted meanwhile.

The daemons run on the fake clock of sim_scheduler.py; `SimCluster` (sim.py) adds the
cluster's configuration, the admin commands and the queries on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pvemu.timing import Timing

from .crm import Crm
from .env import Daemon
from .lrm import Lrm
from .resource_agent import exec_resource_agent
from .sim_env import SimEnv, SimGuests
from .sim_scheduler import Scheduler, Task
from .sim_store import Lock, Replica, ReplicatedStore
from .watchdog import WatchdogMux


@dataclass(frozen=True)
class Event:
    time: float
    node: str
    daemon: str
    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.level[:4]:<5} {self.time:7.1f} {self.node + '/' + self.daemon:>16}: " \
               f"{self.message}"


@dataclass
class SimNode(Replica):
    """One machine: its store replica plus power, network, guests and daemons."""

    network: bool = False
    boot: int = 0  # bumped on every power change: stale callbacks check it
    running: set[str] = field(default_factory=set)
    mux: WatchdogMux | None = None
    crm: Crm | None = None
    lrm: Lrm | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    system_shutdown: tuple[bool, bool] = (False, False)  # shutting down, reboot
    restart_lrm: bool = False
    workers: set[str] = field(default_factory=set)
    finished: dict[str, int] = field(default_factory=dict)
    # the pve-manager version the node publishes (PVE's hardware_status
    # `pve-manager-version`; the simulator's command `pve-manager-version <node> set <v>`)
    pve_manager_version: str | None = None


class SimHardware:
    """The nodes of a simulated cluster, their store and their clock."""

    def __init__(
        self, nodes: tuple[str, ...], *, flavour: int, timing: Timing,
        membership_delay: float, unlock_delay: float, boot_delay: float,
        watchdog_boot_delay: float | None, guest_op_seconds: float,
        clock_offsets: dict[str, float],
    ) -> None:
        self.timing = timing
        self.flavour = flavour
        self.membership_delay = membership_delay
        self.boot_delay = boot_delay
        self.watchdog_boot_delay = watchdog_boot_delay
        self.guest_op_seconds = guest_op_seconds
        self.clock = Scheduler()
        self.events: list[Event] = []
        self.notifications: list[tuple[float, str, str]] = []
        self.resets: list[tuple[float, str]] = []
        self.fail_start: dict[str, set[str] | None] = {}
        self.nodes: dict[str, SimNode] = {
            name: SimNode(name, i + 1, clock_offsets.get(name, 0.0))
            for i, name in enumerate(sorted(nodes))}
        self.store = ReplicatedStore(self.nodes, self.clock, timing,
                                     unlock_delay=unlock_delay, log=self.log)

    # -- time ------------------------------------------------------------------------
    @property
    def t(self) -> float:
        return self.clock.t

    @property
    def locks(self) -> dict[str, Lock]:
        return self.store.locks

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        self.clock.call_at(when, fn)

    def run_until(self, until: float) -> None:
        self.clock.run_until(until)

    def run_for(self, seconds: float) -> None:
        self.clock.run_for(seconds)

    def wake(self, node: str, daemon: str) -> None:
        """Interrupt a daemon's sleep (a signal does that to PVE's sleep)."""
        task = self.nodes[node].tasks.get(daemon)
        if task is not None:
            self.clock.wake(task)

    def log(self, node: str, daemon: str, level: str, message: str) -> None:
        self.events.append(Event(self.t, node, daemon, level, message))

    def _spawn(self, node: SimNode, daemon: str, gen: Daemon,
               on_exit: Callable[[], None] | None = None) -> Task:
        task = node.tasks[daemon] = self.clock.spawn(node.name, daemon, gen, on_exit)
        return task

    # -- membership ------------------------------------------------------------------------
    def _physical_views(self) -> dict[str, frozenset[str]]:
        connected = frozenset(n.name for n in self.nodes.values() if n.power and n.network)
        views = {}
        for n in self.nodes.values():
            if not n.power:
                views[n.name] = frozenset()
            else:
                views[n.name] = connected if n.network else frozenset([n.name])
        return views

    def _membership_changed(self) -> None:
        snapshot = self._physical_views()
        self.call_at(self.t + self.membership_delay, lambda: self._apply_views(snapshot))

    def _apply_views(self, snapshot: dict[str, frozenset[str]]) -> None:
        for n in self.nodes.values():
            if not n.power:
                n.view = frozenset()
            elif n.name in snapshot[n.name]:
                n.view = snapshot[n.name]
        for partition in {n.view for n in self.nodes.values() if n.power and len(n.view) > 1}:
            self.store.resync(partition)

    # -- workers -----------------------------------------------------------------------------
    def start_worker(self, env: SimEnv, key: str, sid: str, command: str,
                     params: dict) -> None:
        node, boot = env.node, env.node.boot
        node.workers.add(key)

        def done() -> None:
            if node.boot != boot or not node.power:
                return
            node.workers.discard(key)
            code = exec_resource_agent(env, SimGuests(self, node), sid, command, params)
            node.finished[key] = code

        self.call_at(self.t + self.guest_op_seconds, done)

    # -- hardware commands ----------------------------------------------------------------
    def power(self, name: str, on: bool, *, _log: bool = True) -> None:
        """`power <node> on|off`: also sets the network. Off kills everything at once."""
        node = self.nodes[name]
        if on == node.power:
            return
        if not on:
            self._power_off(node, "poweroff")
            return
        if _log:
            self.log(name, "hardware", "info", f"power on node '{name}'")
        node.power = node.network = True
        node.boot += 1
        node.running = set()
        node.workers = set()
        node.finished = {}
        node.system_shutdown = (False, False)
        node.restart_lrm = False
        node.mux = WatchdogMux(self.timing)
        node.view = frozenset([name])
        node.crm = Crm(SimEnv(self, node, "crm"))
        self._spawn(node, "crm", node.crm.run(), lambda b=node.boot: self._crm_exited(name, b))
        self._start_lrm(node)
        self._spawn(node, "watchdog", self._watchdog(node))
        self._membership_changed()

    def _start_lrm(self, node: SimNode) -> None:
        node.lrm = Lrm(SimEnv(self, node, "lrm"), SimGuests(self, node))
        boot = node.boot
        self._spawn(node, "lrm", node.lrm.run(), lambda: self._lrm_exited(node.name, boot))

    def _power_off(self, node: SimNode, reason: str) -> None:
        self.log(node.name, "hardware", "info", f"server '{node.name}' stopped by {reason}")
        for task in node.tasks.values():
            task.alive = False
        node.tasks = {}
        node.power = node.network = False
        node.boot += 1
        node.running = set()
        node.workers = set()
        node.finished = {}
        node.mux = None
        node.crm = node.lrm = None
        node.view = frozenset()
        node.system_shutdown = (False, False)
        self._membership_changed()

    def network(self, name: str, on: bool) -> None:
        node = self.nodes[name]
        if not node.power or node.network == on:
            return
        self.log(name, "hardware", "info", f"network {'on' if on else 'off'} node '{name}'")
        node.network = on
        self._membership_changed()

    def shutdown(self, name: str) -> None:
        """A clean poweroff: LRM shutdown request, then the CRM stops, then power off."""
        self._system_shutdown(name, reboot=False)

    def reboot(self, name: str) -> None:
        self._system_shutdown(name, reboot=True)

    def _system_shutdown(self, name: str, reboot: bool) -> None:
        node = self.nodes[name]
        if not node.power:
            return
        self.log(name, "hardware", "info", f"{'reboot' if reboot else 'shutdown'} node '{name}'")
        node.system_shutdown = (True, reboot)
        if node.lrm is not None and node.tasks.get("lrm") and node.tasks["lrm"].alive:
            node.lrm.request_shutdown()
            self.wake(name, "lrm")
        else:
            self._lrm_exited(name, node.boot)

    def restart_lrm(self, name: str) -> None:
        """`systemctl restart pve-ha-lrm`: freeze, exit, start again (§8.1)."""
        node = self.nodes[name]
        if node.lrm is None or not node.power:
            return
        self.log(name, "hardware", "info", f"restart LRM on node '{name}'")
        node.restart_lrm = True
        node.lrm.request_shutdown()
        self.wake(name, "lrm")

    def kill_daemon(self, name: str, daemon: str) -> None:
        """The process dies without the watchdog's magic close (a crash)."""
        node = self.nodes[name]
        task = node.tasks.pop(daemon, None)
        if task is None:
            return
        task.alive = False
        holder = {"crm": node.crm, "lrm": node.lrm}.get(daemon)  # the watchdog holds none
        env = holder.env if holder is not None else None
        if node.mux is not None and isinstance(env, SimEnv) and env.wd_id is not None:
            node.mux.disconnect(env.wd_id)
        self.log(name, "hardware", "info", f"killed {daemon} on node '{name}'")

    def _lrm_exited(self, name: str, boot: int) -> None:
        node = self.nodes[name]
        if node.boot != boot or not node.power:
            return
        node.tasks.pop("lrm", None)
        if node.system_shutdown[0]:
            if node.crm is not None and node.tasks.get("crm"):
                node.crm.request_shutdown()
                self.wake(name, "crm")
            else:
                self._crm_exited(name, boot)
        elif node.restart_lrm:
            node.restart_lrm = False
            self._start_lrm(node)

    def _crm_exited(self, name: str, boot: int) -> None:
        node = self.nodes[name]
        if node.boot != boot or not node.power:
            return
        node.tasks.pop("crm", None)
        if node.system_shutdown[0]:
            reboot = node.system_shutdown[1]
            self._power_off(node, "reboot" if reboot else "shutdown")
            if reboot:
                self.call_at(self.t + self.boot_delay, lambda: self.power(name, True))

    def _watchdog(self, node: SimNode) -> Daemon:
        while True:
            mux = node.mux
            assert mux is not None
            now = self.t + node.clock_offset
            mux.tick(now)
            if mux.expired(now):
                self.log(node.name, "watchdog", "crit", "watchdog expired - node reset")
                self.resets.append((self.t, node.name))
                self._power_off(node, "watchdog")
                if self.watchdog_boot_delay is not None:
                    self.call_at(self.t + self.watchdog_boot_delay,
                                 lambda name=node.name: self.power(name, True))
                return
            yield self.timing.watchdog_tick
