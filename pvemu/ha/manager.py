"""The master CRM's service state machine (pve-model.md §4, §6, §12.3; Manager.pm).

`Manager(env).manage()` is one round: membership and LRM results in, manager_status out.
Service states: stopped, request_stop, request_start, request_start_balance, started,
fence, recovery, migrate, relocate, freeze, error. Every change gets a fresh uid, which
is how the LRMs know there is something new to do.

Mirrors PVE::HA::Manager (src/PVE/HA/Manager.pm) one to one: `manage()`, the crm
commands, fencing and one `next_state_<state>` handler per service state, dispatched
through an explicit table as Manager.pm's if/elsif chain does; that is why it is longer
than the house's 400 lines.
"""

from __future__ import annotations

import base64
import copy
import os
from collections.abc import Callable

from . import group_migration
from .env import EWRONG_NODE, IGNORED, SUCCESS, HaEnv
from .node_status import NodeStatus
from .placement import select_service_node

SERVICE_STATES = ("stopped", "request_stop", "request_start", "request_start_balance",
                  "started", "fence", "recovery", "migrate", "relocate", "freeze", "error")
KEPT_ON_CHANGE = ("node", "failed_nodes", "maintenance_node")
# next_state_<state>(sid, service config, service status, LRM result, LRM modes)
StateHandler = Callable[[str, dict, dict, "dict | None", "dict[str, str]"], None]


def new_uid() -> str:
    """A fresh random uid, shaped like PVE's md5_base64 (22 characters)."""
    return base64.b64encode(os.urandom(16)).decode().rstrip("=")


def normalize_request(state: str | None) -> str:
    return "started" if state in (None, "enabled") else state


class Manager:
    """The master's state: node status, service status and node requests (§11.5)."""

    def __init__(self, env: HaEnv) -> None:
        self.env = env
        old = env.read_manager_status() or {}
        self.ns = NodeStatus(env, old.get("node_status") or {})
        self.ss: dict[str, dict] = copy.deepcopy(old.get("service_status") or {})
        self.ms: dict = {"master_node": env.nodename,
                         "node_request": copy.deepcopy(old.get("node_request") or {})}
        self.usage: dict[str, int] = {}
        self.groups: dict = {}
        self.rules: dict = {}
        self.crs: dict = {}
        self.group_migration = group_migration.GroupMigration()  # PVE 9: groups -> rules
        # Manager.pm's dispatch in manage(): one handler per service state
        self.state_handlers: dict[str, StateHandler] = {
            "stopped": self.next_state_stopped,
            "request_stop": self.next_state_request_stop,
            "request_start": self.next_state_request_start,
            "request_start_balance": self.next_state_migrate,
            "started": self.next_state_started,
            "fence": self.next_state_fence,
            "recovery": self.next_state_recovery,
            "migrate": self.next_state_migrate,
            "relocate": self.next_state_migrate,
            "freeze": self.next_state_freeze,
            "error": self.next_state_error,
        }

    # -- helpers -----------------------------------------------------------------
    def recompute_online_node_usage(self) -> None:
        """Scores for node selection (§9.1): counted HA services per online node."""
        usage = {n: 0 for n in self.ns.list_online_nodes()}
        for sd in self.ss.values():
            state, node, target = sd["state"], sd.get("node"), sd.get("target")
            if state in ("started", "request_stop", "fence", "freeze", "error", "recovery",
                         "request_start"):  # request_start: HEAD counts it too (guess)
                if node in usage:
                    usage[node] += 1
            elif state in ("migrate", "relocate", "request_start_balance"):
                for n in (node, target):  # load on both source and target
                    if n in usage:
                        usage[n] += 1
        self.usage = usage

    def change_service_state(self, sid: str, new_state: str, **params) -> None:
        """Keep node/failed_nodes/maintenance_node, set params, new uid, log (§4)."""
        assert new_state in SERVICE_STATES, new_state
        sd = self.ss[sid]
        old_state = sd["state"]
        assert old_state != new_state, f"no state change for {sid}"
        kept = {k: sd[k] for k in KEPT_ON_CHANGE if k in sd}
        sd.clear()
        sd.update(kept)
        sd["state"] = new_state
        text = ", ".join(f"{k} = {params[k]}" for k in sorted(params))
        sd.update(params)
        self.recompute_online_node_usage()
        sd["uid"] = new_uid()
        suffix = f"  ({text})" if text else ""
        self.env.log("info", f"service '{sid}': state changed from '{old_state}' to "
                     f"'{new_state}'{suffix}")

    def select(self, sid: str, cd: dict, sd: dict, preference: str = "none") -> str | None:
        return select_service_node(
            flavour=self.env.flavour, groups=self.groups, rules=self.rules, usage=self.usage,
            sid=sid, service_conf=cd, current_node=sd["node"], preference=preference,
            tried_nodes=sd.get("failed_nodes") or (),
            maintenance_fallback=sd.get("maintenance_node"))

    def read_lrm_status(self) -> tuple[dict[str, dict], dict[str, str]]:
        results: dict[str, dict] = {}
        modes: dict[str, str] = {}
        for node in self.ns.list_nodes():
            status = self.env.read_lrm_status(node)
            if status is None:
                modes[node] = "unknown"  # unreadable (§7.2)
                continue
            modes[node] = status.get("mode") or "active"
            for uid, res in (status.get("results") or {}).items():
                results.setdefault(uid, res)
        return results, modes

    def flush_master_status(self) -> None:
        self.ms["node_status"] = dict(self.ns.status)
        self.ms["service_status"] = self.ss
        self.ms["timestamp"] = self.env.now()
        self.env.write_manager_status(copy.deepcopy(self.ms))

    # -- one round (§4.1) ------------------------------------------------------------
    def manage(self) -> None:
        env, ns, ss = self.env, self.ns, self.ss
        node_info = env.node_info()
        # lrm modes are read for the nodes known so far plus the current nodelist
        for node in node_info:
            if node not in ns.status:
                ns.status[node] = "unknown"
        lrm_results, lrm_modes = self.read_lrm_status()
        ns.update(node_info, lrm_modes)
        if not ns.node_is_operational(env.nodename):
            env.log("info", "master seems offline")
            return

        if env.flavour >= 9:
            self.group_migration.step(env, ns, ss)
        sc = env.read_service_config()
        for cd in sc.values():
            cd["state"] = normalize_request(cd.get("state"))
        if env.flavour >= 9:  # groups.cfg, while there is one, as rules (§3.4)
            self.rules = group_migration.in_memory(env, sc)
            self.groups = {}
        else:
            self.groups = env.read_group_config() or {}
            self.rules = {}
        self.crs = (env.read_datacenter() or {}).get("crs") or {}

        for sid in sorted(sc):
            cd = sc[sid]
            if sid in ss or cd["state"] == "ignored":
                continue
            env.log("info", f"adding new service '{sid}' on node '{cd['node']}'")
            state = "request_start" if cd["state"] == "started" else "request_stop"
            ss[sid] = {"state": state, "node": cd["node"], "uid": new_uid()}
        for sid in sorted(ss):
            if sid in sc and sc[sid]["state"] != "ignored":
                continue
            reason = "ignored state requested" if sid in sc else "no config"
            env.log("info", f"removing stale service '{sid}' ({reason})")
            del ss[sid]

        self.update_crm_commands()

        while True:
            repeat = False
            self.recompute_online_node_usage()
            for sid in sorted(ss):
                sd = ss[sid]
                cd = sc.get(sid) or {"state": "disabled", "node": sd["node"], "type":
                                     sid.split(":")[0], "max_restart": 1, "max_relocate": 1}
                res = lrm_results.get(sd.get("uid") or "")
                last = sd["state"]
                handler = self.state_handlers.get(last)
                if handler is None:
                    raise ValueError(f"unknown service state '{last}'")
                handler(sid, cd, sd, res, lrm_modes)
                mode = lrm_modes.get(sd.get("node") or "")
                if mode == "restart" and sd["state"] in ("started", "stopped", "request_stop"):
                    self.change_service_state(sid, "freeze")
                if sd["state"] != last:
                    repeat = True
            repeat = self.handle_fencing() or repeat
            if not repeat:
                break

        self.flush_master_status()

    def handle_fencing(self) -> bool:
        """§6: fence each node once per pass; recover its services on success."""
        ss, ns = self.ss, self.ns
        fenced: dict[str, bool] = {}
        repeat = False
        for sid in sorted(ss):
            sd = ss[sid]
            if sd["state"] != "fence":
                continue
            node = sd["node"]
            if node not in fenced:
                fenced[node] = ns.fence_node(node)
            if fenced[node]:
                self.change_service_state(sid, "recovery")
                repeat = True
        for node in sorted(set(ns.status) - set(fenced)):
            if ns.get_node_state(node) != "fence":
                continue
            self.env.log("notice", f"node '{node}' in fence state but no services to-fence! "
                         "admin interference?!")
            if ns.fence_node(node):
                repeat = True
        return repeat

    # -- crm commands (§12.3, §8.2) -----------------------------------------------
    def update_crm_commands(self) -> None:
        env, ns, ss = self.env, self.ns, self.ss
        for cmd in env.read_crm_commands():
            cmd = cmd.strip()
            if not cmd:
                continue
            words = cmd.split()
            if len(words) == 3 and words[0] in ("migrate", "relocate"):
                task, sid, node = words
                if sid not in ss:
                    env.log("err", f"crm command error - no such service: {cmd}")
                elif not ns.node_is_online(node):
                    env.log("err", f"crm command error - node not online: {cmd}")
                elif node == ss[sid]["node"]:
                    env.log("info", f"ignore crm command - service already on target node: "
                            f"{cmd}")
                else:
                    env.log("info", f"got crm command: {cmd}")
                    ss[sid]["cmd"] = [task, node]
            elif len(words) == 3 and words[0] == "stop":
                _, sid, timeout = words
                if sid not in ss:
                    env.log("err", f"crm command error - no such service: {cmd}")
                else:
                    env.log("info", f"got crm command: {cmd}")
                    ss[sid]["cmd"] = ["stop", int(timeout)]
            elif len(words) == 2 and words[0] in ("enable-node-maintenance",
                                                  "disable-node-maintenance"):
                self._node_maintenance_command(cmd, words[0].startswith("enable"), words[1])
            else:
                env.log("err", f"unable to parse crm command: {cmd}")

    def _node_maintenance_command(self, cmd: str, enable: bool, node: str) -> None:
        requests = self.ms.setdefault("node_request", {})
        state = self.ns.get_node_state(node)
        if enable:
            if requests.get(node, {}).get("maintenance"):
                self.env.log("info", f"ignoring crm command - node {node} is already in "
                             "maintenance state")
            elif state != "online":
                self.env.log("err", f"crm command error - node not online: {cmd}")
            else:
                self.env.log("info", f"got crm command: {cmd}")
                requests.setdefault(node, {})["maintenance"] = 1
        else:
            self.env.log("info", f"got crm command: {cmd}")
            if node in requests:
                requests[node].pop("maintenance", None)
                if not requests[node]:
                    del requests[node]

    # -- per-state handlers (§4.2) ------------------------------------------------
    def _req_state(self, cd: dict) -> str:
        return "started" if cd["state"] == "started" else "request_stop"

    def next_state_request_start(self, sid, cd, sd, res, modes) -> None:
        if str(self.crs.get("ha-rebalance-on-start", 0)) in ("1", "true"):
            node = self.select(sid, cd, sd, "best-score")
            if node and node != sd["node"]:
                self.env.log("info", f"{sid}: re-balance selected new node {node} for startup")
                self.change_service_state(sid, "request_start_balance", node=sd["node"],
                                          target=node)
                return
        self.change_service_state(sid, "started", node=sd["node"])

    def next_state_request_stop(self, sid, cd, sd, res, modes) -> None:
        if res is not None:
            if res["exit_code"] == SUCCESS:
                self.change_service_state(sid, "stopped")
            else:
                self.env.log("err", f"service '{sid}' stop failed (exit code "
                             f"{res['exit_code']})")
                self.change_service_state(sid, "error")
            return
        if self.ns.node_is_offline_delayed(sd["node"]):
            self.change_service_state(sid, "fence")

    def next_state_migrate(self, sid, cd, sd, res, modes) -> None:
        """migrate, relocate and request_start_balance: wait for the LRM's result."""
        if res is not None:
            code = res["exit_code"]
            if code == SUCCESS:
                self.change_service_state(sid, self._req_state(cd), node=sd["target"])
                return
            if code == EWRONG_NODE:
                self.env.log("err", f"service '{sid}' - migration failed: service registered "
                             "on wrong node!")
                self.change_service_state(sid, "error")
                return
            if code == IGNORED:
                self.env.log("info", f"service '{sid}' - rebalance-on-start request ignored - "
                             "service already running")
                self.change_service_state(sid, self._req_state(cd), node=sd["node"])
                return
            self.env.log("err", f"service '{sid}' - migration failed (exit code {code})")
            self.change_service_state(sid, self._req_state(cd), node=sd["node"])
            return
        if self.ns.node_is_offline_delayed(sd["node"]):
            self.change_service_state(sid, "fence")

    def next_state_stopped(self, sid, cd, sd, res, modes) -> None:
        env, ns = self.env, self.ns
        if cd.get("node") and sd["node"] != cd["node"]:
            env.log("info", f"fixup service '{sid}' location ({sd['node']} => {cd['node']})")
            sd["node"] = cd["node"]
        cmd = sd.pop("cmd", None)
        if cmd:
            if cmd[0] in ("migrate", "relocate"):
                if self._move(sid, sd, *cmd, announce=False):
                    return
            elif cmd[0] == "stop":
                env.log("info", f"ignore service '{sid}' stop request - service already "
                        "stopped")
            else:
                env.log("err", f"unknown command '{cmd[0]}' for service '{sid}'")
        if cd["state"] == "disabled":
            return  # the LRM re-runs 'stopped' every round; no CRM action
        if ns.node_is_offline_delayed(sd["node"]) and \
                ns.get_node_state(sd["node"]) != "maintenance":
            self.change_service_state(sid, "fence")
            return
        if cd["state"] == "stopped":
            return  # like disabled, but still recovered
        if cd["state"] == "started":
            self.change_service_state(sid, "request_start", node=sd["node"])
            return
        env.log("err", f"service '{sid}' - unknown state '{cd['state']}' in service "
                "configuration")

    def next_state_started(self, sid, cd, sd, res, modes) -> None:
        env, ns = self.env, self.ns
        if not ns.node_is_online(sd["node"]):
            if ns.node_is_offline_delayed(sd["node"]):
                self.change_service_state(sid, "fence")
            if ns.get_node_state(sd["node"]) != "maintenance":
                return
            sd["maintenance_node"] = sd["node"]  # fallback for when it comes back
            if sd["state"] != "started":
                return
        if cd["state"] in ("disabled", "stopped"):
            self.change_service_state(sid, "request_stop")
            return
        if cd["state"] != "started":
            env.log("err", f"service '{sid}' - unknown state '{cd['state']}' in service "
                    "configuration")
            return
        cmd = sd.pop("cmd", None)
        if cmd:
            self._started_command(sid, sd, cmd)
            return

        preference = "none"
        if res is not None:
            code = res["exit_code"]
            if code == SUCCESS:
                if sd.get("failed_nodes"):
                    env.log("info", f"relocation policy successful for '{sid}' on node "
                            f"'{sd['node']}', failed nodes: {', '.join(sd['failed_nodes'])}")
                sd.pop("failed_nodes", None)
                sd["running"] = 1
            else:
                sd.pop("running", None)
                sd.setdefault("failed_nodes", []).append(sd["node"])
                if code in (1, EWRONG_NODE) and \
                        len(sd["failed_nodes"]) <= int(cd.get("max_relocate", 1)):
                    preference = "try-next"
                    env.log("warn", f"starting service {sid} on node '{sd['node']}' failed, "
                            "relocating service.")
                elif code in (1, EWRONG_NODE):
                    env.log("err", f"recovery policy for service {sid} failed, entering error "
                            f"state. Failed nodes: {', '.join(sd['failed_nodes'])}")
                    self.change_service_state(sid, "error")
                    return
                else:
                    env.log("err", f"service '{sid}' got unrecoverable error (exit code "
                            f"{code}))")
                    self.change_service_state(sid, "error")
                    return

        node = self.select(sid, cd, sd, preference)
        if node and node != sd["node"]:
            self.usage[node] = self.usage.get(node, 0) + 1
            fallback = sd.get("maintenance_node")
            if fallback is not None:
                if node == fallback:
                    env.log("info", f"moving service '{sid}' back to '{fallback}', node came "
                            "back from maintenance.")
                    del sd["maintenance_node"]
                elif sd["node"] != fallback:
                    env.log("info", f"dropping maintenance fallback node '{fallback}' for "
                            f"'{sid}'")
                    del sd["maintenance_node"]
            if cd.get("type", sid.split(":")[0]) == "vm":
                env.log("info", f"migrate service '{sid}' to node '{node}' (running)")
                self.change_service_state(sid, "migrate", node=sd["node"], target=node)
            else:
                env.log("info", f"relocate service '{sid}' to node '{node}'")
                self.change_service_state(sid, "relocate", node=sd["node"], target=node)
            return
        if preference == "try-next" and node is None:
            env.log("warn", f"Start Error Recovery: Tried all available nodes for service "
                    f"'{sid}', retry start on current node. Tried nodes: "
                    f"{', '.join(sd.get('failed_nodes') or [])}")
        if res is not None:
            # a new uid makes the LRM check (and restart) the service again
            sd["uid"] = new_uid()

    def _move(self, sid: str, sd: dict, task: str, target: str, *, announce: bool) -> bool:
        """A queued migrate/relocate command: True when the service moves."""
        env = self.env
        if not self.ns.node_is_online(target):
            env.log("err", f"ignore service '{sid}' {task} request - node '{target}' not "
                    "online")
            return False
        if sd["node"] == target:
            env.log("info", f"ignore service '{sid}' {task} request - service already on "
                    f"node '{target}'")
            return False
        if announce:
            env.log("info", f"{task} service '{sid}' to node '{target}'")
        self.change_service_state(sid, task, node=sd["node"], target=target)
        return True

    def _started_command(self, sid: str, sd: dict, cmd: list) -> None:
        env = self.env
        if cmd[0] in ("migrate", "relocate"):
            self._move(sid, sd, *cmd, announce=True)
        elif cmd[0] == "stop":
            timeout = cmd[1]
            if timeout == 0:
                env.log("info", f"request immediate service hard-stop for service '{sid}'")
            else:
                env.log("info", f"request graceful stop with timeout '{timeout}' for service "
                        f"'{sid}'")
            self.change_service_state(sid, "request_stop", timeout=timeout)
            env.set_service_state(sid, "stopped")
        else:
            env.log("err", f"unknown command '{cmd[0]}' for service '{sid}'")

    def next_state_fence(self, sid, cd, sd, res, modes) -> None:
        """Nothing per service: the fencing step handles it (§6)."""

    def next_state_freeze(self, sid, cd, sd, res, modes) -> None:
        if modes.get(sd["node"]) == "active":
            self.change_service_state(sid, self._req_state(cd))

    def next_state_error(self, sid, cd, sd, res, modes) -> None:
        if cd["state"] == "disabled":
            sd.pop("failed_nodes", None)
            self.change_service_state(sid, "stopped")

    def next_state_recovery(self, sid, cd, sd, res, modes) -> None:
        env = self.env
        fenced = sd["node"]
        self.recompute_online_node_usage()
        # §4.2/§9.1: recovery prefers no current node ("best-score"); PVE 8 passes the
        # fenced node as current, which only matters if that node is already back.
        node = self.select(sid, cd, sd, "best-score")
        if node:
            if node == fenced:
                env.log("info", f"recover service '{sid}' to previous failed and fenced node "
                        f"'{fenced}' again")
            else:
                env.log("info", f"recover service '{sid}' from fenced node '{fenced}' to node "
                        f"'{node}'")
            env.steal_service(sid, fenced, node)
            self.usage[node] = self.usage.get(node, 0) + 1
            cd["node"] = sd["node"] = node
            self.change_service_state(sid, self._req_state(cd), node=node)
            return
        env.log("err", f"recovering service '{sid}' from fenced node '{fenced}' failed, no "
                "recovery node found")
        if cd["state"] == "disabled":
            sd.pop("failed_nodes", None)
            self.change_service_state(sid, "stopped")  # must not go through request_stop
