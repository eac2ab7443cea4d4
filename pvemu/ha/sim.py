"""A whole PVE HA cluster in fake time, for unit tests and as the test oracle engine.

Modelled on PVE's simulator (pve-model.md §13.4) but with PVE's *real* loop intervals
(10 s CRM, 10/5 s LRM, 1 s lock retries, 1 s watchdog-mux tick) through `Timing`. Every
daemon generator (crm, lrm, watchdog per node) is scheduled on a priority queue of wake
times; ties go by node name, then daemon (crm, lrm, watchdog). Cluster plumbing
callbacks (membership changes, unlock requests, finished workers) run before daemons
that wake at the same instant.

What is modelled (and how it differs from PVE's own simulator):
* corosync membership changes land `membership_delay` (8 s: token + consensus, §2)
  after a power or network change; an isolated node sees only itself. Quorum is a
  majority of the nodes (§17.1).
* pmxcfs: every node keeps its own copy of the files; a write needs quorum and reaches
  the writer's partition; a (re)joining partition takes the newest version of each file.
* pmxcfs locks (§14.4): mkdir fails while the lock exists; only the owner renews; a
  failed get sends an unlock request which the lowest-nodeid member of the partition
  runs `unlock_delay` later, deleting the lock if its age (from when that member first
  saw the lock's current version, on its own clock) is more than 120 s.
* watchdog-mux per node (§7.6); expiry powers the node off at once (softdog) and,
  if `watchdog_boot_delay` is set, boots it again that much later.
* guests: a running set per node; start/stop/migrate take `guest_op_seconds`.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .crm import Crm
from .env import Daemon, Timing
from .lrm import Lrm
from .resource_agent import exec_resource_agent
from .watchdog import WatchdogMux

DAEMON_RANK = {"crm": 0, "lrm": 1, "watchdog": 2}
RESOURCE_KEYS = ("state", "group", "max_restart", "max_relocate", "failback", "comment")


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
class Lock:
    owner: str
    version: int


@dataclass
class Task:
    node: str
    daemon: str
    gen: Daemon
    on_exit: Callable[[], None] | None = None
    alive: bool = True
    token: int = 0
    zero_yields: int = 0


@dataclass
class SimNode:
    name: str
    nodeid: int
    clock_offset: float = 0.0
    power: bool = False
    network: bool = False
    boot: int = 0
    view: frozenset[str] = frozenset()
    files: dict[str, tuple[int, object]] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)
    mux: WatchdogMux | None = None
    crm: Crm | None = None
    lrm: Lrm | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    system_shutdown: tuple[bool, bool] = (False, False)
    restart_lrm: bool = False
    lock_seen: dict[str, tuple[int, float]] = field(default_factory=dict)
    workers: set[str] = field(default_factory=set)
    finished: dict[str, int] = field(default_factory=dict)
    cfs_ok: bool = True


class SimEnv:
    """`HaEnv` for one daemon of one simulated node."""

    def __init__(self, cluster: SimCluster, node: SimNode, daemon: str) -> None:
        self.c = cluster
        self.node = node
        self.daemon = daemon
        self.nodename = node.name
        self.timing = cluster.timing
        self.flavour = cluster.flavour
        self.lock_success: dict[str, float] = {}  # PVE2.pm's last_lock_status (per process)
        self.wd_id: int | None = None

    # time and logs
    def now(self) -> float:
        return self.c.t + self.node.clock_offset

    def log(self, level: str, message: str) -> None:
        self.c.log(self.node.name, self.daemon, level, message)

    def send_notification(self, subject: str, text: str) -> None:
        self.c.notifications.append((self.c.t, self.node.name, subject))

    # cluster state
    def quorate(self) -> bool:
        return self.c.quorate(self.node)

    def cluster_state_update(self) -> bool:
        return self.node.cfs_ok

    def node_info(self) -> dict[str, bool]:
        return {n: n in self.node.view or n == self.node.name for n in self.c.nodes}

    def read_manager_status(self) -> dict:
        return self.c.read(self.node, "ha/manager_status", {})

    def write_manager_status(self, status: dict) -> None:
        if not self.c.write(self.node, "ha/manager_status", status):
            raise PermissionError("unable to write manager status: no quorum")

    def read_lrm_status(self, node: str) -> dict | None:
        return self.c.read(self.node, f"nodes/{node}/lrm_status", None)

    def write_lrm_status(self, status: dict) -> bool:
        return self.c.write(self.node, f"nodes/{self.node.name}/lrm_status", status)

    def read_crm_commands(self) -> list[str]:
        lines = self.c.read(self.node, "ha/crm_commands", [])
        if lines and not self.c.write(self.node, "ha/crm_commands", []):
            return []  # cannot truncate without quorum: leave them for later
        return lines

    def read_service_config(self) -> dict[str, dict]:
        return self.c.service_config(self.node)

    def read_group_config(self) -> dict[str, dict]:
        return self.c.read(self.node, "ha/groups.cfg", {})

    def read_rules_config(self) -> dict[str, dict]:
        return self.c.read(self.node, "ha/rules.cfg", {})

    def read_datacenter(self) -> dict:
        return self.c.read(self.node, "datacenter.cfg", {})

    def set_service_state(self, sid: str, state: str) -> None:
        resources = self.c.read(self.node, "ha/resources.cfg", {})
        if sid in resources:
            resources[sid]["state"] = state
            self.c.write(self.node, "ha/resources.cfg", resources)

    def steal_service(self, sid: str, current_node: str, new_node: str) -> None:
        vmlist = self.c.read(self.node, "vmlist", {})
        vmlist[sid] = new_node
        self.c.write(self.node, "vmlist", vmlist)

    # locks
    def get_ha_manager_lock(self) -> bool:
        return self.c.get_lock(self, "ha_manager_lock")

    def release_ha_manager_lock(self) -> None:
        self.c.release_lock(self, "ha_manager_lock")

    def get_ha_agent_lock(self, node: str | None = None) -> bool:
        return self.c.get_lock(self, f"ha_agent_{node or self.node.name}_lock")

    def release_ha_agent_lock(self) -> None:
        self.c.release_lock(self, f"ha_agent_{self.node.name}_lock")

    # watchdog-mux
    def watchdog_open(self) -> None:
        assert self.node.mux is not None
        self.wd_id = self.node.mux.open(self.now())
        self.log("info", "watchdog active")

    def watchdog_update(self) -> None:
        if self.node.mux is not None and self.wd_id is not None:
            self.node.mux.update(self.wd_id, self.now())

    def watchdog_close(self) -> None:
        if self.node.mux is not None and self.wd_id is not None:
            self.node.mux.close(self.wd_id)
            self.log("info", "watchdog closed (disabled)")
        self.wd_id = None

    # workers
    def is_node_shutdown(self) -> tuple[bool, bool]:
        return self.node.system_shutdown

    def max_workers(self) -> int:
        return int(self.read_datacenter().get("max_workers", 4))

    def start_worker(self, uid: str, sid: str, command: str, params: dict) -> None:
        self.c.start_worker(self, uid, sid, command, params)

    def finished_workers(self) -> dict[str, int]:
        done, self.node.finished = self.node.finished, {}
        return done

    def running_workers(self) -> int:
        return len(self.node.workers)


class SimGuests:
    """`Guests` of one simulated node."""

    def __init__(self, cluster: SimCluster, node: SimNode) -> None:
        self.c = cluster
        self.node = node

    def _vmlist(self) -> dict[str, str]:
        return self.c.read(self.node, "vmlist", {})

    def exists(self, sid: str) -> bool:
        return sid in self._vmlist()

    def config_node(self, sid: str) -> str | None:
        return self._vmlist().get(sid)

    def running(self, sid: str) -> bool:
        return sid in self.node.running

    def start(self, sid: str) -> bool:
        fail = self.c.fail_start.get(sid, ())
        if fail is None or self.node.name in fail:
            return False
        self.node.running.add(sid)
        return True

    def shutdown(self, sid: str, timeout_s: float) -> bool:
        self.node.running.discard(sid)
        return True

    def migrate(self, sid: str, target: str, online: bool) -> bool:
        vmlist = self._vmlist()
        vmlist[sid] = target
        if not self.c.write(self.node, "vmlist", vmlist):
            return False
        if online and sid in self.node.running:
            self.node.running.discard(sid)
            dest = self.c.nodes[target]
            if dest.power:
                dest.running.add(sid)
        return True


class SimCluster:
    """A simulated cluster. Commands change hardware or config; `run_until` runs time."""

    def __init__(
        self, nodes: tuple[str, ...] = ("node1", "node2", "node3"), flavour: int = 8,
        services: dict[str, dict] | None = None, groups: dict | None = None,
        rules: dict | None = None, datacenter: dict | None = None, *,
        timing: Timing | None = None, membership_delay: float = 8.0,
        unlock_delay: float = 0.5, boot_delay: float = 20.0,
        watchdog_boot_delay: float | None = None, guest_op_seconds: float = 1.0,
        clock_offsets: dict[str, float] | None = None, power_on: bool = True,
        manager_status: dict | None = None,
    ) -> None:
        self.timing = timing or Timing(1.0)
        self.flavour = flavour
        self.membership_delay = membership_delay
        self.unlock_delay = unlock_delay
        self.boot_delay = boot_delay
        self.watchdog_boot_delay = watchdog_boot_delay
        self.guest_op_seconds = guest_op_seconds
        self.t = 0.0
        self.events: list[Event] = []
        self.notifications: list[tuple[float, str, str]] = []
        self.resets: list[tuple[float, str]] = []
        self.fail_start: dict[str, set[str] | None] = {}
        self.locks: dict[str, Lock] = {}
        self._heap: list[tuple] = []
        self._seq = itertools.count()
        self._version = itertools.count(1)
        offsets = clock_offsets or {}
        self.nodes: dict[str, SimNode] = {
            name: SimNode(name, i + 1, offsets.get(name, 0.0))
            for i, name in enumerate(sorted(nodes))}
        if services is None:
            names = sorted(nodes)
            services = {f"vm:{101 + i}": {"node": n} for i, n in enumerate(names)}
        running = {sid: cfg["node"] for sid, cfg in services.items() if cfg.get("running")}
        files = {
            "ha/resources.cfg": {sid: {k: v for k, v in cfg.items() if k in RESOURCE_KEYS}
                                 for sid, cfg in services.items()},
            "vmlist": {sid: cfg["node"] for sid, cfg in services.items()},
            "ha/groups.cfg": groups or {},
            "ha/rules.cfg": rules or {},
            "datacenter.cfg": datacenter or {},
            "ha/manager_status": manager_status or {},
            "ha/crm_commands": [],
        }
        version = next(self._version)
        for node in self.nodes.values():
            node.files = {p: (version, copy.deepcopy(v)) for p, v in files.items()}
        if power_on:
            for name in self.nodes:
                self.power(name, True, _log=False)
            self._apply_views(self._physical_views())
            for sid, name in running.items():
                self.nodes[name].running.add(sid)

    # -- scheduling ------------------------------------------------------------------
    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, 0, "", 0, next(self._seq), fn, None))

    def _schedule(self, task: Task, when: float) -> None:
        heapq.heappush(self._heap, (when, 1, task.node, DAEMON_RANK.get(task.daemon, 9),
                                    next(self._seq), task, task.token))

    def _spawn(self, node: SimNode, daemon: str, gen: Daemon,
               on_exit: Callable[[], None] | None = None) -> Task:
        task = Task(node.name, daemon, gen, on_exit)
        node.tasks[daemon] = task
        self._schedule(task, self.t)
        return task

    def wake(self, node: str, daemon: str) -> None:
        """Interrupt a daemon's sleep (a signal does that to PVE's sleep)."""
        task = self.nodes[node].tasks.get(daemon)
        if task is not None and task.alive:
            task.token += 1
            self._schedule(task, self.t)

    def run_until(self, until: float) -> None:
        while self._heap and self._heap[0][0] <= until:
            when, kind, _, _, _, item, token = heapq.heappop(self._heap)
            self.t = max(self.t, when)
            if kind == 0:
                item()
                continue
            task: Task = item
            if not task.alive or token != task.token:
                continue
            try:
                sleep = next(task.gen)
            except StopIteration:
                if task.alive:
                    task.alive = False
                    if task.on_exit is not None:
                        task.on_exit()
                continue
            if not task.alive:
                continue
            sleep = max(0.0, float(sleep))
            task.zero_yields = task.zero_yields + 1 if sleep == 0 else 0
            if task.zero_yields > 1000:
                raise RuntimeError(f"{task.node}/{task.daemon} loops without sleeping")
            self._schedule(task, self.t + sleep)
        self.t = max(self.t, until)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.t + seconds)

    # -- logging and queries ------------------------------------------------------------
    def log(self, node: str, daemon: str, level: str, message: str) -> None:
        self.events.append(Event(self.t, node, daemon, level, message))

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
        best = max(self.nodes.values(), key=lambda n: n.files["ha/manager_status"][0])
        return copy.deepcopy(best.files["ha/manager_status"][1])

    def service_status(self, sid: str) -> dict:
        return self.manager_status().get("service_status", {}).get(sid, {})

    def node_state(self, node: str) -> str | None:
        return self.manager_status().get("node_status", {}).get(node)

    def lines(self) -> Iterator[str]:
        return (str(e) for e in self.events)

    # -- pmxcfs --------------------------------------------------------------------------
    def quorate(self, node: SimNode) -> bool:
        return node.power and len(node.view) * 2 > len(self.nodes)

    def read(self, node: SimNode, path: str, default: object) -> object:
        entry = node.files.get(path)
        return copy.deepcopy(entry[1]) if entry is not None else copy.deepcopy(default)

    def write(self, node: SimNode, path: str, value: object) -> bool:
        if not self.quorate(node):
            return False
        version = next(self._version)
        for name in node.view:
            member = self.nodes[name]
            if member.power:
                member.files[path] = (version, copy.deepcopy(value))
        return True

    def service_config(self, node: SimNode) -> dict[str, dict]:
        resources = self.read(node, "ha/resources.cfg", {})
        vmlist = self.read(node, "vmlist", {})
        out = {}
        for sid, cfg in resources.items():
            if sid not in vmlist:
                continue  # guest config nowhere: left out
            cd = {"type": sid.partition(":")[0], "state": "started", "max_restart": 1,
                  "max_relocate": 1}
            if self.flavour >= 9:
                cd["failback"] = 1
            cd.update(cfg)
            if cd["state"] == "enabled":
                cd["state"] = "started"
            cd["node"] = vmlist[sid]
            out[sid] = cd
        return out

    def _record_seen(self, writer: SimNode, name: str, version: int) -> None:
        for member in writer.view:
            m = self.nodes[member]
            if m.power:
                m.lock_seen[name] = (version, self.t + m.clock_offset)

    def get_lock(self, env: SimEnv, name: str) -> bool:
        """PVE2.pm get_pve_lock: renew by utime within 120 s of the last success, else
        mkdir; a failed mkdir sends an unlock request (§14.4)."""
        node = env.node
        if not self.quorate(node):
            return False
        now = env.now()
        lock = self.locks.get(name)
        last = env.lock_success.get(name)
        if last is not None and now - last < self.timing.lock_lifetime:
            if lock is not None and lock.owner == node.name:
                lock.version = next(self._version)
                self._record_seen(node, name, lock.version)
                env.lock_success[name] = now
                return True
            return False  # cfs lock update failed
        if lock is None:
            lock = self.locks[name] = Lock(node.name, next(self._version))
            self._record_seen(node, name, lock.version)
            env.lock_success[name] = now
            return True
        requester = node.name
        self.call_at(self.t + self.unlock_delay, lambda: self._unlock_request(name, requester))
        return False

    def _unlock_request(self, name: str, requester: str) -> None:
        req = self.nodes[requester]
        if not self.quorate(req):
            return
        executor = min((self.nodes[m] for m in req.view if self.nodes[m].power),
                       key=lambda n: n.nodeid)
        lock = self.locks.get(name)
        if lock is None:
            return
        now = self.t + executor.clock_offset
        seen = executor.lock_seen.get(name)
        if seen is None or seen[0] != lock.version:
            executor.lock_seen[name] = (lock.version, now)
            return
        if now - seen[1] > self.timing.lock_lifetime:
            del self.locks[name]
            self.log(executor.name, "pmxcfs", "info",
                     f"lock '{name}' expired, removed on unlock request from '{requester}'")

    def release_lock(self, env: SimEnv, name: str) -> None:
        env.lock_success.pop(name, None)
        lock = self.locks.get(name)
        if lock is not None and lock.owner == env.node.name and self.quorate(env.node):
            del self.locks[name]

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
        partitions = {n.view for n in self.nodes.values() if n.power and len(n.view) > 1}
        for part in partitions:
            members = [self.nodes[m] for m in part if self.nodes[m].power]
            paths = set().union(*(m.files for m in members))
            for path in paths:
                newest = max((m.files[path] for m in members if path in m.files),
                             key=lambda e: e[0])
                for m in members:
                    if m.files.get(path, (None,))[0] != newest[0]:
                        m.files[path] = (newest[0], copy.deepcopy(newest[1]))
            for name, lock in self.locks.items():  # a joiner first sees locks now
                for m in members:
                    if m.lock_seen.get(name, (None,))[0] != lock.version:
                        m.lock_seen[name] = (lock.version, self.t + m.clock_offset)

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
        obj = getattr(node, daemon, None)
        env = getattr(obj, "env", None)
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

    # -- admin commands (through a quorate node, like the API) ------------------------------
    def _admin_node(self) -> SimNode:
        for node in sorted(self.nodes.values(), key=lambda n: n.nodeid):
            if self.quorate(node):
                return node
        raise RuntimeError("cluster not quorate")

    def set_service_state(self, sid: str, state: str) -> None:
        """`ha-manager set <sid> --state <state>`."""
        node = self._admin_node()
        resources = self.read(node, "ha/resources.cfg", {})
        resources.setdefault(sid, {})["state"] = state
        self.write(node, "ha/resources.cfg", resources)
        self.log(node.name, "cmdlist", "info", f"service {sid} {state}")

    def remove_service(self, sid: str) -> None:
        """`ha-manager remove <sid>`: drop the config entry (the guest stays)."""
        node = self._admin_node()
        resources = self.read(node, "ha/resources.cfg", {})
        resources.pop(sid, None)
        self.write(node, "ha/resources.cfg", resources)
        self.log(node.name, "cmdlist", "info", f"service {sid} delete")

    def set_datacenter(self, datacenter: dict) -> None:
        self.write(self._admin_node(), "datacenter.cfg", datacenter)

    def crm_command(self, line: str) -> None:
        node = self._admin_node()
        commands = self.read(node, "ha/crm_commands", [])
        commands.append(line)
        self.write(node, "ha/crm_commands", commands)
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

    def set_fail_start(self, sid: str, nodes: set[str] | None = None) -> None:
        """Starting `sid` fails on `nodes` (None: everywhere)."""
        self.fail_start[sid] = None if nodes is None else set(nodes)

    def clear_fail_start(self, sid: str) -> None:
        self.fail_start.pop(sid, None)
