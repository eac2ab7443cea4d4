"""The HA environment of an embedded node (PVE's `PVE::HA::Env::PVE2`): the real /etc/pve
of the emulated pmxcfs, its locks, the node's watchdog-mux and guests."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from pvemu import cfslock
from pvemu.ha import config
from pvemu.ha.env import Guests
from pvemu.nodeinfo import SHUTDOWN_FLAG, NodeInfo

PVE_ROOT = Path("/etc/pve")
WATCHDOG_SOCKET = "/run/watchdog-mux.sock"
LEFTOVER_LOCKS = ("backup", "mounted", "migrate", "clone", "rollback", "snapshot",
                  "snapshot-delete", "suspending", "suspended")


class NodeEnv:
    def __init__(self, info: NodeInfo, daemon: str, guests: Guests | None = None,
                 root: Path = PVE_ROOT) -> None:
        self.nodename = info.name
        self.timing = info.timing
        self.flavour = info.flavour
        self.daemon = daemon
        self.root = root
        self.guests = guests
        self._members: dict[str, bool] = {}
        self._lock_success: dict[str, float] = {}
        self._watchdog: socket.socket | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._workers: dict[str, concurrent.futures.Future] = {}

    # -- time and logs ---------------------------------------------------------------
    def now(self) -> float:
        return time.time()

    def log(self, level: str, message: str) -> None:
        stamp = time.strftime("%b %d %H:%M:%S")
        print(f"{stamp} {self.nodename} pve-ha-{self.daemon}[{os.getpid()}]: "
              f"{'' if level == 'info' else level + ': '}{message}", flush=True)

    def send_notification(self, subject: str, text: str) -> None:
        self.log("info", f"notification: {subject}")

    # -- files -----------------------------------------------------------------------
    def _path(self, rel: str) -> Path:
        return self.root / rel

    def _read(self, rel: str) -> str | None:
        try:
            return self._path(rel).read_text()
        except FileNotFoundError:
            return None

    def _write(self, rel: str, text: str) -> None:
        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
        tmp.write_text(text)
        tmp.rename(path)

    # -- cluster state ---------------------------------------------------------------
    def quorate(self) -> bool:
        # PVE::Cluster::check_cfs_quorum: the write bit pmxcfs shows on /etc/pve/local
        try:
            return bool(os.stat(self.root / "local").st_mode & 0o200)
        except OSError:
            return False

    def cluster_state_update(self) -> bool:
        try:
            members = json.loads(self._path(config.MEMBERS).read_text())
        except (OSError, ValueError):
            return False
        self._members = {name: bool(node.get("online"))
                         for name, node in members.get("nodelist", {}).items()}
        return True

    def node_info(self) -> dict[str, bool]:
        return {**self._members, self.nodename: True}

    def read_manager_status(self) -> dict:
        try:
            return config.parse_json(self._read(config.MANAGER_STATUS))
        except ValueError:
            return {}

    def write_manager_status(self, status: dict) -> None:
        self._write(config.MANAGER_STATUS, json.dumps(status))

    def read_lrm_status(self, node: str) -> dict | None:
        try:
            text = self._read(config.lrm_status_path(node))
            return None if text is None else config.parse_json(text)
        except (OSError, ValueError):
            return None

    def write_lrm_status(self, status: dict) -> bool:
        try:
            self._write(config.lrm_status_path(self.nodename), json.dumps(status))
            return True
        except OSError:
            return False

    def read_crm_commands(self) -> list[str]:
        try:
            with cfslock.cfs_lock(self.root, "domain-ha"):
                text = self._read(config.CRM_COMMANDS) or ""
                if text:
                    self._write(config.CRM_COMMANDS, "")
        except (cfslock.CfsLockError, OSError) as exc:
            self.log("err", f"reading crm commands failed - {exc}")
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def read_service_config(self) -> dict[str, dict]:
        stored = config.parse_resources(self._read(config.RESOURCES_CFG) or "")
        return config.resources_with_defaults(stored, config.vmlist(self.root), self.flavour)

    def read_group_config(self) -> dict[str, dict]:
        return config.parse_groups(self._read(config.GROUPS_CFG) or "")

    def read_rules_config(self) -> dict[str, dict]:
        return config.parse_rules(self._read(config.RULES_CFG) or "")

    def read_datacenter(self) -> dict:
        return config.parse_datacenter(self._read(config.DATACENTER_CFG) or "")

    def set_service_state(self, sid: str, state: str) -> None:
        with cfslock.cfs_lock(self.root, "domain-ha"):
            stored = config.parse_resources(self._read(config.RESOURCES_CFG) or "")
            if sid in stored:
                stored[sid]["state"] = state
                self._write(config.RESOURCES_CFG, config.render_resources(stored))

    def steal_service(self, sid: str, current_node: str, new_node: str) -> None:
        stype, _, vmid = sid.partition(":")
        sub = "qemu-server" if stype == "vm" else "lxc"
        old = self._path(f"nodes/{current_node}/{sub}/{vmid}.conf")
        new = self._path(f"nodes/{new_node}/{sub}/{vmid}.conf")
        text = old.read_text()
        kept = [line for line in text.splitlines()
                if not (line.startswith("lock:") and line.split(":", 1)[1].strip()
                        in LEFTOVER_LOCKS)]
        if len(kept) != len(text.splitlines()):
            old.write_text("\n".join(kept) + "\n")
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)

    # -- locks (PVE2.pm get_pve_lock) -----------------------------------------------
    def _get_lock(self, name: str) -> bool:
        path = self._path(f"priv/lock/{name}")
        last = self._lock_success.get(name)
        try:
            if last is not None and time.monotonic() - last < self.timing.lock_lifetime:
                now_ns = time.time_ns()
                os.utime(path, ns=(now_ns, now_ns))  # renew: only the owner may
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.mkdir(path)
            self._lock_success[name] = time.monotonic()
            return True
        except OSError:
            self._lock_success.pop(name, None)
            with contextlib.suppress(OSError):
                os.utime(path, (0, 0))  # unlock request: frees it if it has expired
            return False

    def _release_lock(self, name: str) -> None:
        self._lock_success.pop(name, None)
        with contextlib.suppress(OSError):
            os.rmdir(self._path(f"priv/lock/{name}"))

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
