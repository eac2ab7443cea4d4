"""The HA environment of an embedded node (PVE's `PVE::HA::Env::PVE2`): the node's
/etc/pve (through EtcPve: the HA files, the quorum, the cluster lock and the HA leases),
the node's watchdog-mux and guests.

Time is the node's own wall clock (pvemu/wallclock.py) wherever PVE2.pm calls `time()`
(pve-faults.md §7.1): `get_time`, the log stamps, and the lock bookkeeping of
`get_pve_lock`, so a clock step on the node reaches its HA daemons as it would on PVE."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from pvemu import wallclock
from pvemu.etc_pve import PVE_ROOT, CfsError, EtcPve
from pvemu.ha import config
from pvemu.ha.env import Guests
from pvemu.nodeinfo import SHUTDOWN_FLAG, NodeInfo

WATCHDOG_SOCKET = "/run/watchdog-mux.sock"
LEFTOVER_LOCKS = ("backup", "mounted", "migrate", "clone", "rollback", "snapshot",
                  "snapshot-delete", "suspending", "suspended")


class NodeEnv:
    def __init__(self, info: NodeInfo, daemon: str, guests: Guests | None = None,
                 root: Path = PVE_ROOT) -> None:
        self.nodename = info.name
        self.timing = info.timing
        self.flavour = info.flavour
        self.bugs = info.bugs
        self.daemon = daemon
        self.root = root
        self.etc = EtcPve(root, info.timing)
        self.guests = guests
        self._members: dict[str, bool] = {}
        self._lock_success: dict[str, float] = {}  # PVE2.pm lock_time: last success
        self._lock_held: dict[str, bool] = {}  # PVE2.pm got_lock: the last try's result
        self._watchdog: socket.socket | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._workers: dict[str, concurrent.futures.Future] = {}

    # -- time and logs ---------------------------------------------------------------
    def now(self) -> float:
        """PVE2.pm `get_time`: `time()`, the node's wall clock."""
        return wallclock.now()

    def log(self, level: str, message: str) -> None:
        stamp = time.strftime("%b %d %H:%M:%S", time.localtime(self.now()))
        print(f"{stamp} {self.nodename} pve-ha-{self.daemon}[{os.getpid()}]: "
              f"{'' if level == 'info' else level + ': '}{message}", flush=True)

    def send_notification(self, subject: str, text: str) -> None:
        self.log("info", f"notification: {subject}")

    # -- cluster state ---------------------------------------------------------------
    def quorate(self) -> bool:
        return self.etc.quorate()

    def cluster_state_update(self) -> bool:
        members = self.etc.members()
        if members is None:
            return False
        self._members = {name: bool(node.get("online"))
                         for name, node in members.get("nodelist", {}).items()}
        return True

    def node_info(self) -> dict[str, bool]:
        return {**self._members, self.nodename: True}

    def read_manager_status(self) -> dict:
        return self.etc.manager_status()

    def write_manager_status(self, status: dict) -> None:
        self.etc.write(config.MANAGER_STATUS, json.dumps(status))

    def read_lrm_status(self, node: str) -> dict | None:
        return self.etc.lrm_status(node)

    def write_lrm_status(self, status: dict) -> bool:
        try:
            self.etc.write(config.lrm_status_path(self.nodename), json.dumps(status))
            return True
        except (CfsError, OSError):
            return False

    def read_crm_commands(self) -> list[str]:
        try:
            with self.etc.lock("domain-ha"):
                text = self.etc.read(config.CRM_COMMANDS) or ""
                if text:
                    self.etc.write(config.CRM_COMMANDS, "")
        except (CfsError, OSError) as exc:
            self.log("err", f"reading crm commands failed - {exc}")
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def read_service_config(self) -> dict[str, dict]:
        return config.resources_with_defaults(self.etc.resources(), self.etc.vmlist(),
                                              self.flavour)

    def read_group_config(self) -> dict[str, dict]:
        return self.etc.groups()

    def read_rules_config(self) -> dict[str, dict]:
        return self.etc.rules()

    def read_datacenter(self) -> dict:
        return self.etc.datacenter()

    # -- PVE 9's groups migration (pvemu/ha/group_migration.py) -----------------------
    def write_rules_config(self, rules: dict[str, dict]) -> None:
        with self.etc.lock("domain-ha"):
            self.etc.write(config.RULES_CFG, config.render_rules(rules))

    def update_service_config(self, sid: str, params: dict, delete: str) -> None:
        with self.etc.lock("domain-ha"):
            stored = self.etc.resources()
            if sid in stored:
                stored[sid].update(params)
                stored[sid].pop(delete, None)
                self.etc.write(config.RESOURCES_CFG, config.render_resources(stored))

    def delete_group_config(self) -> None:
        with self.etc.lock("domain-ha"):
            self.etc.remove(config.GROUPS_CFG)

    def get_node_version(self, node: str) -> str | None:
        return config.version_of(self.etc.read(config.version_info_path(node)))

    def set_service_state(self, sid: str, state: str) -> None:
        with self.etc.lock("domain-ha"):
            stored = self.etc.resources()
            if sid in stored:
                stored[sid]["state"] = state
                self.etc.write(config.RESOURCES_CFG, config.render_resources(stored))

    def steal_service(self, sid: str, current_node: str, new_node: str) -> None:
        stype, _, vmid = sid.partition(":")
        sub = "qemu-server" if stype == "vm" else "lxc"
        old, new = f"nodes/{current_node}/{sub}/{vmid}.conf", f"nodes/{new_node}/{sub}/{vmid}.conf"
        text = self.etc.read(old)
        if text is None:
            raise FileNotFoundError(self.etc.display(old))
        kept = [line for line in text.splitlines()
                if not (line.startswith("lock:") and line.split(":", 1)[1].strip()
                        in LEFTOVER_LOCKS)]
        if len(kept) != len(text.splitlines()):
            self.etc.write(old, "\n".join(kept) + "\n")
        self.etc.mkdir(f"nodes/{new_node}/{sub}")
        self.etc.rename(old, new)

    # -- locks (PVE2.pm get_pve_lock) -----------------------------------------------
    def _get_lock(self, name: str) -> bool:
        """PVE2.pm `get_pve_lock`: on the node's wall clock, renew (utime to now) while
        the last *success* is less than the lock lifetime (120 s) ago, else mkdir. A
        failure keeps the time of the last success (PVE sets `lock_time` only on
        success), so the owner goes on trying to renew until 120 s after it. A forward
        step past that makes the owner try mkdir, which fails on its own lock (EEXIST)
        and sends an unlock request; a backward step renews with an older time, which
        pmxcfs refuses (pve-faults.md §7.2, §7.3)."""
        now = self.now()
        last = self._lock_success.get(name)
        renew = last is not None and now - last < self.timing.lock_lifetime
        got = self.etc.take_lease(name, renew=renew, at=now)
        if got:
            self._lock_success[name] = now
        if got != self._lock_held.get(name, False):  # PVE2.pm logs each change
            # PVE's words, its missing quote included; the errno text PVE appends to a
            # failed renewal ("- $!") is not known here and left out
            why = "cfs lock update failed" if renew else "can't get cfs lock"
            self.log("info", f"successfully acquired lock '{name}'") if got else \
                self.log("err", f"lost lock '{name} - {why}")
        self._lock_held[name] = got
        return got

    def _release_lock(self, name: str) -> None:
        # Known difference, kept from before: PVE2.pm's release is a bare rmdir that
        # keeps lock_time, so a try within 120 s of the last success would utime the
        # missing lock and fail; here the next try is a mkdir.
        self._lock_success.pop(name, None)
        self._lock_held.pop(name, None)
        self.etc.release_lease(name)

    def get_ha_manager_lock(self) -> bool:
        return self._get_lock("ha_manager_lock")

    def release_ha_manager_lock(self) -> None:
        self._release_lock("ha_manager_lock")

    def get_ha_agent_lock(self, node: str | None = None) -> bool:
        return self._get_lock(f"ha_agent_{node or self.nodename}_lock")

    def release_ha_agent_lock(self) -> None:
        self._release_lock(f"ha_agent_{self.nodename}_lock")

    # -- watchdog-mux ----------------------------------------------------------------
    def watchdog_open(self) -> None:
        if self._watchdog is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(WATCHDOG_SOCKET)
        self._watchdog = sock
        self.log("info", "watchdog active")

    def watchdog_update(self) -> None:
        if self._watchdog is not None:
            self._watchdog.sendall(b"\0")

    def watchdog_close(self) -> None:
        if self._watchdog is None:
            return
        with contextlib.suppress(OSError):
            self._watchdog.sendall(b"V")  # the magic close
        self._watchdog.close()
        self._watchdog = None
        self.log("info", "watchdog closed (disabled)")

    # -- resources -------------------------------------------------------------------
    def is_node_shutdown(self) -> tuple[bool, bool]:
        try:
            what = SHUTDOWN_FLAG.read_text().strip()
        except OSError:
            return False, False
        return what in ("poweroff", "reboot"), what == "reboot"

    def max_workers(self) -> int:
        return max(1, int(self.read_datacenter().get("max_workers", 4)))

    def start_worker(self, uid: str, sid: str, command: str, params: dict) -> None:
        from pvemu.ha.resource_agent import exec_resource_agent

        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.max_workers())
        self._workers[uid] = self._pool.submit(exec_resource_agent, self, self.guests, sid,
                                               command, params)

    def finished_workers(self) -> dict[str, int]:
        done = {}
        for uid, future in list(self._workers.items()):
            if future.done():
                del self._workers[uid]
                try:
                    done[uid] = int(future.result())
                except Exception as exc:  # noqa: BLE001 - a crashed agent is an error result
                    print(f"worker {uid} failed: {exc!r}", file=sys.stderr, flush=True)
                    done[uid] = 1
        return done

    def running_workers(self) -> int:
        return sum(1 for f in self._workers.values() if not f.done())
