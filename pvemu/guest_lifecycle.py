"""One node's guests (containers and VMs): create, start, stop, status, list, destroy,
migrate, and the `Guests` protocol the HA LRM calls (pvemu.ha.env.Guests).

`NodeGuests` joins the parts: configs in /etc/pve through `GuestStore` (guest_store.py,
on the node's `EtcPve`), running copies as real processes through `GuestRuntime`
(guest_runtime.py, guest_process.py), new guests through `GuestCreate`
(guest_create.py). What it mirrors: PVE::API2::LXC::Status / PVE::API2::Qemu's
vm_start, vm_stop, vm_shutdown, destroy_vm and migrate_vm, and as the LRM's resource
agent PVE::HA::Resources::PVECT / PVEVM (start, shutdown, migrate, check_running,
exists).

Knobs for chaos tests live in the guest config's description (comment lines at the top,
as PVE stores `--description`), one per line:

    #pvechaos: fail-start <n>|always   the next n starts fail (`always`: every start);
                                      counted next to the guest's disk, on its storage,
                                      so the count is shared by every node
    #pvechaos: port <n>                the TCP port the guest serves (default 8080)

Simplifications (guesses we accept):
- a VM is the same kind of process as a CT; its address comes from `ipconfig0: ip=`;
- online migration of a running VM is stop here, move the config, start on the target
  (`ssh root@<target> qm start <id> --migratedfrom <here> --skiplock 1`), so it has a
  short downtime where PVE's live migration has almost none; a CT's "online" migration is
  PVE's restart mode, done the same way with `pct start`;
- tasks (UPIDs, the task log) are not emulated: commands run in the foreground.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pvemu import nodeinfo
from pvemu.etc_pve import EtcPve, atomic_write
from pvemu.guest_addresses import check_lab_address, reserved_addresses
from pvemu.guest_config import (
    LABEL,
    GuestConfig,
    GuestError,
    boot_volume,
    guest_network,
    parse_sid,
    property_string,
    sid_of,
)
from pvemu.guest_create import GuestCreate, free_volumes
from pvemu.guest_runtime import RUN_DIR, GuestRuntime, RunState, terminate
from pvemu.guest_store import GuestStore
from pvemu.storage import StorageError, Storages, size_bytes

DEFAULT_PORT = 8080


def consume_fail_start(knob: str | None, counter: Path) -> tuple[bool, str]:
    """Decide whether this start must fail; count it in `counter` (on shared storage).

    Returns (fail, explanation). The count restarts when the knob's value changes, and
    the counter is dropped when the knob is removed."""
    if knob is None:
        counter.unlink(missing_ok=True)
        return False, ""
    if knob == "always":
        return True, "pvechaos fail-start always"
    if not knob.isdigit():
        raise GuestError(f"invalid pvechaos knob 'fail-start {knob}' (give a count or "
                         "'always')")
    wanted = int(knob)
    try:
        state = json.loads(counter.read_text())
    except (OSError, ValueError):
        state = {}
    failed = int(state.get("failed", 0)) if state.get("knob") == wanted else 0
    if failed >= wanted:
        return False, ""
    failed += 1
    atomic_write(counter, json.dumps({"knob": wanted, "failed": failed}) + "\n")
    return True, f"pvechaos fail-start: failed start {failed} of {wanted}"


class NodeGuests:
    """The guests of one node; implements pvemu.ha.env.Guests. ``etc``: the node's
    /etc/pve (default: EtcPve(), the mount point); the unit tests give a directory."""

    def __init__(self, node_name: str, etc: EtcPve | None = None,
                 run_dir: Path = RUN_DIR, info: nodeinfo.NodeInfo | None = None,
                 storages: Storages | None = None) -> None:
        self.node = node_name
        self.etc = etc if etc is not None else EtcPve()
        self.store = GuestStore(node_name, self.etc)
        self.runtime = GuestRuntime(run_dir)
        self._info = info
        self.storages = storages or Storages(self.etc.root, info)
        self.creator = GuestCreate(self.store, self.storages, lambda: self.info)
        self.last_error = ""

    @property
    def info(self) -> nodeinfo.NodeInfo:
        if self._info is None:
            self._info = nodeinfo.load()
            self.storages.info = self._info
        return self._info

    # -- what the CLIs ask of the parts ----------------------------------------------
    def load(self, kind: str, vmid: int) -> GuestConfig:
        return self.store.load(kind, vmid)

    def check_quorum(self) -> None:
        self.store.check_quorum()

    def ha_managed(self, sid: str) -> bool:
        return self.store.ha_managed(sid)

    def run_state(self, vmid: int) -> RunState | None:
        return self.runtime.run_state(vmid)

    def create_ct(self, vmid: int, ostemplate: str, opts: dict[str, object]) -> GuestConfig:
        return self.creator.ct(vmid, ostemplate, opts)

    def create_vm(self, vmid: int, opts: dict[str, object]) -> GuestConfig:
        return self.creator.vm(vmid, opts)

    # -- the Guests protocol (called by the HA LRM's workers) -------------------------
    def exists(self, sid: str) -> bool:
        return self.config_node(sid) is not None

    def config_node(self, sid: str) -> str | None:
        return self.store.config_node(sid)

    def running(self, sid: str) -> bool:
        _, vmid = parse_sid(sid)
        state = self.run_state(vmid)
        return state is not None and state.sid == sid

    def start(self, sid: str) -> bool:
        kind, vmid = parse_sid(sid)
        try:
            if not self.running(sid):
                self.start_guest(kind, vmid)
            self.last_error = ""
            return True
        except (GuestError, StorageError) as exc:
            self.last_error = str(exc)
            return False

    def shutdown(self, sid: str, timeout_s: float) -> bool:
        kind, vmid = parse_sid(sid)
        try:
            self.stop_guest(kind, vmid, timeout_s, missing_ok=True)
            self.last_error = ""
            return True
        except (GuestError, StorageError) as exc:
            self.last_error = str(exc)
            return False

    def migrate(self, sid: str, target: str, online: bool) -> bool:
        kind, vmid = parse_sid(sid)
        try:
            self.migrate_guest(kind, vmid, target, online)
            self.last_error = ""
            return True
        except (GuestError, StorageError) as exc:
            self.last_error = str(exc)
            return False

    # -- start / stop ----------------------------------------------------------------
    def start_guest(self, kind: str, vmid: int, *, skiplock: bool = False) -> RunState:
        label = LABEL[kind]
        if self.run_state(vmid) is not None:
            raise GuestError(f"{label} {vmid} already running")
        self.check_quorum()
        with self.runtime.lock(vmid, f"{label} {vmid} start"):
            conf = self.load(kind, vmid)
            lock = conf.values.get("lock")
            if lock and not skiplock:
                raise GuestError(f"{label} {vmid} is locked ({lock})")
            if conf.values.get("template") == "1":
                raise GuestError(f"you can't start a {label} if it's a template")
            cidr, mac = guest_network(kind, conf)
            if not cidr or not mac:
                raise GuestError(f"{label} {vmid} has no network address: give it net0 with "
                                 f"ip=<address>/<prefix>" if kind == "ct" else
                                 f"{label} {vmid} has no network address: give it net0 and "
                                 "ipconfig0 ip=<address>/<prefix>")
            check_lab_address(cidr, self.info, reserved_addresses(self.store, vmid))
            volid = boot_volume(kind, conf)
            if not volid:
                raise GuestError(f"{label} {vmid} has no disk")
            disk = self.storages.volume_path(volid)
            if not disk.exists():
                raise GuestError(f"volume '{volid}' does not exist")
            knobs = conf.knobs()
            fail, why = consume_fail_start(knobs.get("fail-start"),
                                           disk.with_name(disk.name + ".pvechaos-fail-start"))
            if fail:
                raise GuestError(f"{why}\n" + (f"startup for container '{vmid}' failed"
                                               if kind == "ct" else
                                               "start failed: QEMU exited with code 1"))
            port = int(knobs.get("port", DEFAULT_PORT))
            return self.runtime.spawn(sid_of(kind, vmid), vmid, cidr, mac, port, disk,
                                      node=self.node, lab=self.info.nfs_export.parent)

    def stop_guest(self, kind: str, vmid: int, timeout_s: float, *,
                   missing_ok: bool = False) -> None:
        """SIGTERM, SIGKILL after timeout_s (0: SIGKILL at once); bounded."""
        state = self.run_state(vmid)
        if state is None:
            if missing_ok:
                return
            raise GuestError(f"{LABEL[kind]} {vmid} not running")
        with self.runtime.lock(vmid, f"{LABEL[kind]} {vmid} stop"):
            terminate(state, timeout_s)
            self.runtime.forget(vmid)

    # -- status / list ---------------------------------------------------------------
    def status(self, kind: str, vmid: int) -> str:
        self.load(kind, vmid)
        return "running" if self.run_state(vmid) is not None else "stopped"

    def list(self, kind: str) -> list[dict]:
        rows = []
        for stem in self.store.config_stems(kind):
            if not stem.isdigit():
                continue
            vmid = int(stem)
            conf = self.store.read_config(kind, stem)
            if conf is None:
                continue
            state = self.run_state(vmid)
            disk = boot_volume(kind, conf)
            size = 0
            if disk:
                for value in conf.values.values():
                    if value.startswith(disk):
                        size = size_bytes(property_string(value).get("size", "0"))
                        break
            name = (conf.values.get("hostname") or f"CT{vmid}" if kind == "ct" else
                    conf.values.get("name") or f"VM {vmid}")
            rows.append({"vmid": vmid, "status": "running" if state else "stopped",
                         "lock": conf.values.get("lock", ""), "name": name,
                         "maxmem": int(conf.values.get("memory", 512)) * 1024 * 1024,
                         "maxdisk": size, "pid": state.pid if state else 0})
        return sorted(rows, key=lambda r: r["vmid"])

    # -- destroy / migrate -----------------------------------------------------------
    def destroy(self, kind: str, vmid: int, purge: bool = False) -> None:
        label = LABEL[kind]
        conf = self.load(kind, vmid)
        self.check_quorum()
        if self.run_state(vmid) is not None:
            raise GuestError(f"{label} {vmid} is running - destroy failed" if kind == "vm"
                             else f"unable to destroy CT {vmid} - container is running")
        sid = sid_of(kind, vmid)
        if self.ha_managed(sid) and not purge:
            raise GuestError(f"unable to remove {label} {vmid} - used in HA resources and "
                             "purge parameter not set.")
        lock = conf.values.get("lock")
        if lock:
            raise GuestError(f"{label} {vmid} is locked ({lock})")
        with self.runtime.lock(vmid, f"{label} {vmid} destroy"):
            free_volumes(self.storages, kind, conf)
            self.store.remove(kind, vmid)
        if purge and self.ha_managed(sid):
            subprocess.run(["ha-manager", "remove", sid], capture_output=True, timeout=30,
                           check=False)

    def move_config(self, kind: str, vmid: int, target: str, source: str | None = None
                    ) -> None:
        """Rename the config into target's directory (what migration and HA's steal do)."""
        self.store.move(kind, vmid, target, source)

    def migrate_guest(self, kind: str, vmid: int, target: str, online: bool) -> None:
        label = LABEL[kind]
        self.load(kind, vmid)
        if target == self.node:
            raise GuestError("target is local node.")
        self.check_quorum()
        was_running = self.run_state(vmid) is not None
        if was_running and not online:
            raise GuestError(f"{label} {vmid} is running - use online migration"
                             if kind == "vm" else
                             "CT is running - use restart mode (--restart)")
        if was_running:
            self.stop_guest(kind, vmid, 10.0, missing_ok=True)
        self.move_config(kind, vmid, target)
        if was_running:
            command = (["qm", "start", str(vmid), "--migratedfrom", self.node, "--skiplock",
                        "1"] if kind == "vm" else ["pct", "start", str(vmid)])
            proc = subprocess.run(["ssh", f"root@{target}", *command], capture_output=True,
                                  text=True, timeout=60, check=False)
            if proc.returncode != 0:
                raise GuestError(f"migration problems: starting {label} {vmid} on "
                                 f"'{target}' failed: {proc.stderr.strip()}")
