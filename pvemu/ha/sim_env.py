"""What a simulated daemon sees of its node: its `HaEnv` and its `Guests`.

`SimEnv` mirrors PVE::HA::Sim::Env (with TestEnv's fake clock): one instance per daemon
of one node, answering from that node's copy of the replicated store (sim_store.py)
instead of one shared status directory. Its locks follow PVE::HA::Env::PVE2's
get_pve_lock (renew within 120 s of this process's last success, else mkdir), not
Sim::Env's one-step takeover. `SimGuests` mirrors PVE::HA::Sim::Resources (VirtVM,
VirtCT, and VirtFail through `SimCluster.set_fail_start`): a running set per node, the
guest's node in `vmlist`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sim_hardware import SimHardware, SimNode


class SimEnv:
    """`HaEnv` for one daemon of one simulated node."""

    def __init__(self, cluster: SimHardware, node: SimNode, daemon: str) -> None:
        self.c = cluster
        self.store = cluster.store
        self.node = node
        self.daemon = daemon
        self.nodename = node.name
        self.timing = cluster.timing
        self.flavour = cluster.flavour
        self.bugs: frozenset[str] = frozenset()  # the simulator is never made unsafe
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
        return self.store.quorate(self.node)

    def cluster_state_update(self) -> bool:
        return self.node.cfs_ok

    def node_info(self) -> dict[str, bool]:
        return {n: n in self.node.view or n == self.node.name for n in self.c.nodes}

    def read_manager_status(self) -> dict:
        return self.store.read(self.node, "ha/manager_status", {})

    def write_manager_status(self, status: dict) -> None:
        if not self.store.write(self.node, "ha/manager_status", status):
            raise PermissionError("unable to write manager status: no quorum")

    def read_lrm_status(self, node: str) -> dict | None:
        return self.store.read(self.node, f"nodes/{node}/lrm_status", None)

    def write_lrm_status(self, status: dict) -> bool:
        return self.store.write(self.node, f"nodes/{self.node.name}/lrm_status", status)

    def read_crm_commands(self) -> list[str]:
        lines = self.store.read(self.node, "ha/crm_commands", [])
        if lines and not self.store.write(self.node, "ha/crm_commands", []):
            return []  # cannot truncate without quorum: leave them for later
        return lines

    def read_service_config(self) -> dict[str, dict]:
        """resources.cfg with PVE's defaults, each service on its guest's node (vmlist);
        a service whose guest config is nowhere is left out."""
        resources = self.store.read(self.node, "ha/resources.cfg", {})
        vmlist = self.store.read(self.node, "vmlist", {})
        out = {}
        for sid, cfg in resources.items():
            if sid not in vmlist:
                continue
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

    def read_group_config(self) -> dict[str, dict]:
        return self.store.read(self.node, "ha/groups.cfg", {})

    def read_rules_config(self) -> dict[str, dict]:
        return self.store.read(self.node, "ha/rules.cfg", {})

    def read_datacenter(self) -> dict:
        return self.store.read(self.node, "datacenter.cfg", {})

    # PVE 9's groups migration (group_migration.py)
    def _write(self, path: str, value: object) -> None:
        if not self.store.write(self.node, path, value):
            raise PermissionError(f"unable to write {path}: no quorum")

    def write_rules_config(self, rules: dict[str, dict]) -> None:
        self._write("ha/rules.cfg", rules)

    def update_service_config(self, sid: str, params: dict, delete: str) -> None:
        resources = self.store.read(self.node, "ha/resources.cfg", {})
        if sid in resources:
            resources[sid].update(params)
            resources[sid].pop(delete, None)
            self._write("ha/resources.cfg", resources)

    def delete_group_config(self) -> None:
        self._write("ha/groups.cfg", {})

    def get_node_version(self, node: str) -> str | None:
        """Sim::Env: the hardware status's version, not a replicated key."""
        return self.c.nodes[node].pve_manager_version

    def set_service_state(self, sid: str, state: str) -> None:
        resources = self.store.read(self.node, "ha/resources.cfg", {})
        if sid in resources:
            resources[sid]["state"] = state
            self.store.write(self.node, "ha/resources.cfg", resources)

    def steal_service(self, sid: str, current_node: str, new_node: str) -> None:
        vmlist = self.store.read(self.node, "vmlist", {})
        vmlist[sid] = new_node
        self.store.write(self.node, "vmlist", vmlist)

    # locks (PVE2.pm get_pve_lock over the store's mkdir/utime/rmdir)
    def _get_lock(self, name: str) -> bool:
        now = self.now()
        last = self.lock_success.get(name)
        if last is not None and now - last < self.timing.lock_lifetime:
            ok = self.store.renew_lock(self.node, name)
        else:
            ok = self.store.mkdir_lock(self.node, name)
        if ok:
            self.lock_success[name] = now
        return ok

    def _release_lock(self, name: str) -> None:
        self.lock_success.pop(name, None)
        self.store.remove_lock(self.node, name)

    def get_ha_manager_lock(self) -> bool:
        return self._get_lock("ha_manager_lock")

    def release_ha_manager_lock(self) -> None:
        self._release_lock("ha_manager_lock")

    def get_ha_agent_lock(self, node: str | None = None) -> bool:
        return self._get_lock(f"ha_agent_{node or self.node.name}_lock")

    def release_ha_agent_lock(self) -> None:
        self._release_lock(f"ha_agent_{self.node.name}_lock")

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

    def __init__(self, cluster: SimHardware, node: SimNode) -> None:
        self.c = cluster
        self.store = cluster.store
        self.node = node

    def _vmlist(self) -> dict[str, str]:
        return self.store.read(self.node, "vmlist", {})

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
        if not self.store.write(self.node, "vmlist", vmlist):
            return False
        if online and sid in self.node.running:
            self.node.running.discard(sid)
            dest = self.c.nodes[target]
            if dest.power:
                dest.running.add(sid)
        return True
