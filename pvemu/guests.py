"""Guests (containers and VMs) of an embedded node: configs in /etc/pve, running copies
as real processes (guest_process.py), and the `Guests` protocol the HA LRM calls.

Ownership (pve-model.md §14.4): a guest belongs to the node whose directory
/etc/pve/nodes/<node>/lxc/<id>.conf (CT) or qemu-server/<id>.conf (VM) holds its config;
VMIDs are unique cluster-wide; moving a guest renames its config into another node's
directory.

Runtime state is per node, in /run/pvechaos/guests/<vmid>.json (the node's /run is its
own tmpfs): pid, process start time, sid, address. An entry whose process is gone (or a
zombie) reads as stopped.

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

import errno
import fcntl
import ipaddress
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pvemu import nodeinfo
from pvemu.guest_process import LogReport, analyse, parse_log, read_log
from pvemu.storage import StorageError, Storages, format_size, parse_size_gib, size_bytes

__all__ = ["GuestError", "LogReport", "NodeGuests", "analyse", "parse_log", "read_log"]

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = Path("/run/pvechaos/guests")
LOG_DIR = Path("/var/log/pvechaos-guests")
DEFAULT_PORT = 8080
START_TIMEOUT_S = 10.0
LOCK_TIMEOUT_S = 10.0
KIND_DIR = {"ct": "lxc", "vm": "qemu-server"}
LABEL = {"ct": "CT", "vm": "VM"}
MAC_PREFIX = "BC:24:11"  # Proxmox's OUI, used by PVE 8.1+ for new guests
VM_DISK_KEYS = tuple(f"{bus}{n}" for bus, count in (("scsi", 31), ("virtio", 16),
                                                    ("sata", 6), ("ide", 4))
                     for n in range(count))
_KNOB = re.compile(r"^\s*pvechaos:\s*([a-z-]+)\s+(\S+)\s*$")
_SID = re.compile(r"^(ct|vm):([1-9][0-9]{2,8})$")


class GuestError(Exception):
    """An error PVE would `die` with (printed as is, exit code 255)."""


# -- sids ------------------------------------------------------------------------------
def parse_sid(sid: str) -> tuple[str, int]:
    match = _SID.match(sid)
    if not match:
        raise GuestError(f"unable to parse service id '{sid}'")
    return match.group(1), int(match.group(2))


def sid_of(kind: str, vmid: int) -> str:
    return f"{kind}:{vmid}"


# -- guest config files --------------------------------------------------------------
@dataclass
class GuestConfig:
    """`key: value` lines (PVE writes them sorted), the description as leading `#`
    lines, and anything after the first `[section]` (snapshots) kept verbatim."""

    values: dict[str, str]
    description: list[str]
    tail: str = ""

    @classmethod
    def parse(cls, text: str) -> GuestConfig:
        values: dict[str, str] = {}
        description: list[str] = []
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("["):
                return cls(values, description, "\n".join(lines[i:]) + "\n")
            if line.startswith("#"):
                description.append(line[1:])
            elif ":" in line:
                key, _, value = line.partition(":")
                values[key.strip()] = value.strip()
        return cls(values, description)

    def render(self) -> str:
        out = [f"#{line}" for line in self.description]
        out += [f"{k}: {self.values[k]}" for k in sorted(self.values)]
        text = "\n".join(out) + "\n"
        return text + ("\n" + self.tail if self.tail else "")

    def knobs(self) -> dict[str, str]:
        found = {}
        for line in self.description:
            match = _KNOB.match(line)
            if match:
                found[match.group(1)] = match.group(2)
        return found


def property_string(text: str) -> dict[str, str]:
    """`a=1,b=2` (a bare first item is returned under the key '')."""
    out = {}
    for i, item in enumerate(filter(None, text.split(","))):
        key, eq, value = item.partition("=")
        if eq:
            out[key.strip()] = value.strip()
        elif i == 0:
            out[""] = key.strip()
    return out


def print_property_string(props: dict[str, str], first: tuple[str, ...] = ()) -> str:
    keys = [k for k in first if k in props] + sorted(k for k in props if k not in first)
    return ",".join(props[k] if k == "" else f"{k}={props[k]}" for k in keys)


def random_mac(rng: random.Random | None = None) -> str:
    rng = rng or random.SystemRandom()
    return MAC_PREFIX + "".join(f":{rng.randrange(256):02X}" for _ in range(3))


def guest_network(kind: str, conf: GuestConfig) -> tuple[str | None, str | None]:
    """(address/prefix or None, MAC or None) of the guest's first NIC."""
    net = property_string(conf.values.get("net0", ""))
    if kind == "ct":
        ip, mac = net.get("ip"), net.get("hwaddr")
    else:
        mac = next((v for k, v in net.items() if k in ("virtio", "e1000", "e1000e",
                                                       "rtl8139", "vmxnet3")), None)
        ip = property_string(conf.values.get("ipconfig0", "")).get("ip")
    return ip, mac


def boot_volume(kind: str, conf: GuestConfig) -> str | None:
    """The volume id of the guest's boot disk (CT rootfs; VM first disk in boot order)."""
    if kind == "ct":
        value = conf.values.get("rootfs")
        return property_string(value).get("", property_string(value).get("volume")) \
            if value else None
    order = conf.values.get("boot", "")
    keys = order.removeprefix("order=").split(";") if order.startswith("order=") else []
    for key in [*keys, *VM_DISK_KEYS]:
        value = conf.values.get(key)
        if value and "media=cdrom" not in value:
            return property_string(value).get("")
    return None


def guest_volumes(kind: str, conf: GuestConfig) -> list[str]:
    keys = ["rootfs", *(f"mp{i}" for i in range(256))] if kind == "ct" else VM_DISK_KEYS
    out = []
    for key in keys:
        value = conf.values.get(key)
        if value and "media=cdrom" not in value:
            volid = property_string(value).get("") or property_string(value).get("volume")
            if volid:
                out.append(volid)
    return out


def check_lab_address(cidr: str, info: nodeinfo.NodeInfo, reserved: set[str]) -> None:
    """A guest may only use an address of the lab's own subnet that nobody else has."""
    lab = ipaddress.ip_network(f"{info.address}/{info.prefixlen}", strict=False)
    if cidr == "dhcp" or "/" not in cidr:
        raise GuestError(f"ip={cidr} is not supported on the embedded lab (no DHCP): give "
                         f"ip=<address>/<prefix> inside the lab subnet {lab}")
    try:
        iface = ipaddress.ip_interface(cidr)
    except ValueError:
        raise GuestError(f"invalid IP address '{cidr}'") from None
    if iface.ip not in lab:
        raise GuestError(f"address {iface.ip} is outside the lab subnet {lab}: guests may "
                         f"only use addresses of the lab's own subnet")
    if iface.ip in (lab.network_address, lab.broadcast_address, lab.network_address + 1):
        raise GuestError(f"address {iface.ip} is reserved in the lab subnet {lab} (network, "
                         "broadcast or the lab host)")
    if str(iface.ip) in reserved:
        raise GuestError(f"address {iface.ip} is already used in the lab subnet {lab}")


def node_addresses() -> set[str]:
    """The lab's node addresses, from /etc/hosts (provision writes every node there)."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return set()
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


# -- fail-start knob -------------------------------------------------------------------
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
    tmp = counter.with_name(counter.name + ".tmp")
    tmp.write_text(json.dumps({"knob": wanted, "failed": failed}) + "\n")
    tmp.replace(counter)
    return True, f"pvechaos fail-start: failed start {failed} of {wanted}"


# -- processes -------------------------------------------------------------------------
def process_start(pid: int) -> int | None:
    """The process's start time (clock ticks), None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass
class RunState:
    sid: str
    pid: int
    start: int
    address: str
    port: int
    started_at: float

    def alive(self) -> bool:
        return process_start(self.pid) == self.start


class _FileLock:
    """flock on a per-guest file in the node's /run (PVE's lock_config), bounded."""

    def __init__(self, path: Path, what: str, timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path, self.what, self.timeout_s = path, what, timeout_s
        self.fd: int | None = None

    def __enter__(self) -> _FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() > deadline:
                os.close(self.fd)
                raise GuestError(f"can't lock file '{self.path}' - got timeout "
                                 f"({self.what})")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


# -- one node's guests ---------------------------------------------------------------
class NodeGuests:
    """The guests of one node; implements pvemu.ha.env.Guests."""

    def __init__(self, node_name: str, pve_root: Path = Path("/etc/pve"),
                 run_dir: Path = RUN_DIR, info: nodeinfo.NodeInfo | None = None,
                 storages: Storages | None = None) -> None:
        self.node = node_name
        self.pve_root = pve_root
        self.run_dir = run_dir
        self._info = info
        self.storages = storages or Storages(pve_root, info)
        self.last_error = ""

    @property
    def info(self) -> nodeinfo.NodeInfo:
        if self._info is None:
            self._info = nodeinfo.load()
            self.storages.info = self._info
        return self._info

    # -- where configs live ----------------------------------------------------------
    def cfs_path(self, kind: str, vmid: int, node: str | None = None) -> str:
        return f"nodes/{node or self.node}/{KIND_DIR[kind]}/{vmid}.conf"

    def config_path(self, kind: str, vmid: int, node: str | None = None) -> Path:
        return self.pve_root / self.cfs_path(kind, vmid, node)

    def locate(self, vmid: int) -> tuple[str, str] | None:
        """(node, kind) of the guest's config anywhere in the cluster."""
        nodes = self.pve_root / "nodes"
        try:
            names = sorted(os.listdir(nodes))
        except OSError:
            return None
        for node in names:
            for kind, sub in KIND_DIR.items():
                if (nodes / node / sub / f"{vmid}.conf").exists():
                    return node, kind
        return None

    def load(self, kind: str, vmid: int) -> GuestConfig:
        try:
            return GuestConfig.parse(self.config_path(kind, vmid).read_text())
        except FileNotFoundError:
            raise GuestError(f"Configuration file '{self.cfs_path(kind, vmid)}' does not "
                             "exist") from None

    def write(self, kind: str, vmid: int, conf: GuestConfig, *, create: bool = False
              ) -> None:
        path = self.config_path(kind, vmid)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if create:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
                os.write(fd, conf.render().encode())
                os.close(fd)
            else:
                tmp = path.with_name(f"{vmid}.conf.tmp")
                tmp.write_text(conf.render())
                tmp.rename(path)
        except PermissionError:
            raise GuestError("cluster not ready - no quorum?") from None
        except FileExistsError:
            raise GuestError(f"{LABEL[kind]} {vmid} already exists on node "
                             f"'{self.node}'") from None

    def quorate(self) -> bool:
        """PVE::Cluster::check_cfs_quorum: the write bit pmxcfs shows on our node dir."""
        for path in (self.pve_root / "local", self.pve_root / "nodes" / self.node):
            try:
                return bool(os.stat(path).st_mode & 0o200)
            except OSError:
                continue
        return False

    def check_quorum(self) -> None:
        if not self.quorate():
            raise GuestError("cluster not ready - no quorum?")

    def check_vmid_unused(self, vmid: int) -> None:
        where = self.locate(vmid)
        if where:
            raise GuestError(f"{LABEL[where[1]]} {vmid} already exists on node "
                             f"'{where[0]}'")

    def ha_managed(self, sid: str) -> bool:
        try:
            text = (self.pve_root / "ha" / "resources.cfg").read_text()
        except OSError:
            return False
        kind, vmid = parse_sid(sid)
        return re.search(rf"^{kind}:\s*{vmid}\s*$", text, re.MULTILINE) is not None

    # -- runtime state ---------------------------------------------------------------
    def _state_path(self, vmid: int) -> Path:
        return self.run_dir / f"{vmid}.json"

    def run_state(self, vmid: int) -> RunState | None:
        """The running copy on this node, None when stopped (stale entries are dropped)."""
        path = self._state_path(vmid)
        try:
            state = RunState(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if state.alive():
            return state
        path.unlink(missing_ok=True)
        return None

    def _lock(self, vmid: int, what: str) -> _FileLock:
        return _FileLock(self.run_dir / f"{vmid}.lock", what)

    # -- the Guests protocol (called by the HA LRM's workers) -------------------------
    def exists(self, sid: str) -> bool:
        return self.config_node(sid) is not None

    def config_node(self, sid: str) -> str | None:
        kind, vmid = parse_sid(sid)
        where = self.locate(vmid)
        return where[0] if where and where[1] == kind else None

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

    # -- create ----------------------------------------------------------------------
    def _reserved_addresses(self, skip_vmid: int | None = None) -> set[str]:
        used = node_addresses()
        nodes = self.pve_root / "nodes"
        for conf_path in nodes.glob("*/*/*.conf") if nodes.is_dir() else []:
            kind = "ct" if conf_path.parent.name == "lxc" else "vm"
            if conf_path.stem == str(skip_vmid) or conf_path.parent.name not in (
                    "lxc", "qemu-server"):
                continue
            try:
                ip, _ = guest_network(kind, GuestConfig.parse(conf_path.read_text()))
            except OSError:
                continue
            if ip and "/" in ip:
                used.add(ip.split("/")[0])
        return used

    def _disk(self, spec: str, vmid: int, content: str) -> str:
        """`<storage>:<size GiB>[,opts]` -> a new volume `<volid>,size=<n>G[,opts]`."""
        props = property_string(spec)
        head = props.pop("", "")
        storeid, colon, size = head.partition(":")
        if not colon or not storeid:
            raise GuestError(f"unable to parse disk '{spec}' (give <storage>:<size in GiB>)")
        if "/" in size or not size.replace(".", "", 1).isdigit():
            raise GuestError(f"unable to parse disk '{spec}': only new disks "
                             "(<storage>:<size in GiB>) are supported")
        gib = parse_size_gib(size)
        volume = self.storages.alloc(storeid, vmid, content)
        props["size"] = format_size(gib)
        return print_property_string({"": volume.volid, **props}, ("",))

    def create_ct(self, vmid: int, ostemplate: str, opts: dict[str, object]) -> GuestConfig:
        self.check_quorum()
        self.check_vmid_unused(vmid)
        if "rootfs" not in opts:
            raise GuestError("missing 'rootfs' (give --rootfs <storage>:<size in GiB>)")
        values = {"arch": str(opts.get("arch", "amd64")),
                  "hostname": str(opts.get("hostname", f"CT{vmid}")),
                  "memory": str(opts.get("memory", 512)),
                  "swap": str(opts.get("swap", 512)),
                  "ostype": str(opts.get("ostype") or ostype_of(ostemplate))}
        for key in ("cores", "unprivileged", "onboot"):
            if key in opts:
                values[key] = str(int(opts[key]) if isinstance(opts[key], bool)
                                  else opts[key])
        if "net0" in opts:
            net = property_string(str(opts["net0"]))
            net.pop("", None)
            net.setdefault("name", "eth0")
            net.setdefault("hwaddr", random_mac())
            net.setdefault("type", "veth")
            if "ip" in net:
                check_lab_address(net["ip"], self.info, self._reserved_addresses(vmid))
            values["net0"] = print_property_string(net, ("name",))
        values["rootfs"] = self._disk(str(opts["rootfs"]), vmid, "rootdir")
        conf = GuestConfig(values, description_lines(opts.get("description")))
        try:
            self.write("ct", vmid, conf, create=True)
        except GuestError:
            self._free_volumes("ct", conf)
            raise
        return conf

    def create_vm(self, vmid: int, opts: dict[str, object]) -> GuestConfig:
        self.check_quorum()
        try:
            self.check_vmid_unused(vmid)
        except GuestError as exc:
            raise GuestError(f"unable to create VM {vmid} - {exc}") from None
        values: dict[str, str] = {}
        for key in ("name", "memory", "cores", "sockets", "ostype", "scsihw", "onboot"):
            if key in opts:
                values[key] = str(int(opts[key]) if isinstance(opts[key], bool)
                                  else opts[key])
        if "net0" in opts:
            net = property_string(str(opts["net0"]))
            model = net.pop("", "virtio")
            mac = net.pop(model, None) or random_mac()
            values["net0"] = print_property_string({model: mac, **net}, (model,))
        if "ipconfig0" in opts:
            ipconf = property_string(str(opts["ipconfig0"]))
            if "ip" in ipconf:
                check_lab_address(ipconf["ip"], self.info, self._reserved_addresses(vmid))
            values["ipconfig0"] = str(opts["ipconfig0"])
        disks = [k for k in VM_DISK_KEYS if k in opts]
        for key in disks:
            values[key] = self._disk(str(opts[key]), vmid, "images")
        boot = [*disks[:1], *(["net0"] if "net0" in values else [])]
        if boot:
            values["boot"] = "order=" + ";".join(boot)
        values["meta"] = f"creation-qemu=9.0.2,ctime={int(time.time())}"
        values["smbios1"] = f"uuid={uuid.uuid4()}"
        values["vmgenid"] = str(uuid.uuid4())
        conf = GuestConfig(values, description_lines(opts.get("description")))
        try:
            self.write("vm", vmid, conf, create=True)
        except GuestError as exc:
            self._free_volumes("vm", conf)
            raise GuestError(f"unable to create VM {vmid} - {exc}") from None
        return conf

    def _free_volumes(self, kind: str, conf: GuestConfig) -> None:
        for volid in guest_volumes(kind, conf):
            try:
                self.storages.free(volid)
            except StorageError:
                pass

    # -- start / stop ----------------------------------------------------------------
    def start_guest(self, kind: str, vmid: int, *, skiplock: bool = False) -> RunState:
        label = LABEL[kind]
        if self.run_state(vmid) is not None:
            raise GuestError(f"{label} {vmid} already running")
        self.check_quorum()
        with self._lock(vmid, f"{label} {vmid} start"):
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
            check_lab_address(cidr, self.info, self._reserved_addresses(vmid))
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
            state = self._spawn(sid_of(kind, vmid), vmid, cidr, mac, port, disk)
            return state

    def _spawn(self, sid: str, vmid: int, cidr: str, mac: str, port: int, disk: Path
               ) -> RunState:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pvemu.guest_process", "--sid", sid,
               "--vmid", str(vmid), "--node", self.node, "--address", cidr, "--hwaddr", mac,
               "--port", str(port), "--disk", str(disk),
               "--lab", str(self.info.nfs_export.parent)]
        started_at = time.time()
        with open(LOG_DIR / f"{vmid}.log", "ab") as log:
            log.write(f"--- {time.strftime('%F %T')} starting {sid} on {self.node}\n"
                      .encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                    stdin=subprocess.DEVNULL, cwd="/",
                                    env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=START_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=5)
                raise GuestError(f"{sid}: start timed out after {START_TIMEOUT_S:g} s "
                                 f"(see {LOG_DIR / f'{vmid}.log'})") from None
        if proc.returncode != 0 or not out.strip().isdigit():
            detail = _tail(LOG_DIR / f"{vmid}.log")
            label, _, _ = sid.partition(":")
            message = (f"startup for container '{vmid}' failed" if label == "ct" else
                       "start failed: QEMU exited with code 1")
            raise GuestError(f"{detail}\n{message}" if detail else message)
        pid = int(out.strip())
        start = process_start(pid)
        if start is None:
            raise GuestError(f"{sid}: the guest process {pid} exited right after starting "
                             f"(see {LOG_DIR / f'{vmid}.log'})")
        state = RunState(sid, pid, start, cidr, port, started_at)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self._state_path(vmid)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.__dict__) + "\n")
        tmp.replace(path)
        return state

    def stop_guest(self, kind: str, vmid: int, timeout_s: float, *,
                   missing_ok: bool = False) -> None:
        """SIGTERM, SIGKILL after timeout_s (0: SIGKILL at once); bounded."""
        state = self.run_state(vmid)
        if state is None:
            if missing_ok:
                return
            raise GuestError(f"{LABEL[kind]} {vmid} not running")
        with self._lock(vmid, f"{LABEL[kind]} {vmid} stop"):
            _terminate(state, timeout_s)
            self._state_path(vmid).unlink(missing_ok=True)

    # -- status / list ---------------------------------------------------------------
    def status(self, kind: str, vmid: int) -> str:
        self.load(kind, vmid)
        return "running" if self.run_state(vmid) is not None else "stopped"

    def list(self, kind: str) -> list[dict]:
        folder = self.pve_root / "nodes" / self.node / KIND_DIR[kind]
        rows = []
        for path in folder.glob("*.conf") if folder.is_dir() else []:
            if not path.stem.isdigit():
                continue
            vmid = int(path.stem)
            try:
                conf = GuestConfig.parse(path.read_text())
            except OSError:
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
        with self._lock(vmid, f"{label} {vmid} destroy"):
            self._free_volumes(kind, conf)
            try:
                self.config_path(kind, vmid).unlink()
            except PermissionError:
                raise GuestError("cluster not ready - no quorum?") from None
        if purge and self.ha_managed(sid):
            subprocess.run(["ha-manager", "remove", sid], capture_output=True, timeout=30,
                           check=False)

    def move_config(self, kind: str, vmid: int, target: str, source: str | None = None
                    ) -> None:
        """Rename the config into target's directory (what migration and HA's steal do)."""
        if not (self.pve_root / "nodes" / target).is_dir():
            raise GuestError(f"no such cluster node '{target}'")
        src = self.config_path(kind, vmid, source)
        dst = self.config_path(kind, vmid, target)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dst)
        except FileNotFoundError:
            raise GuestError(f"Configuration file '{self.cfs_path(kind, vmid, source)}' "
                             "does not exist") from None
        except PermissionError:
            raise GuestError("cluster not ready - no quorum?") from None

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


def _terminate(state: RunState, timeout_s: float) -> None:
    steps = [(signal.SIGTERM, timeout_s)] if timeout_s > 0 else []
    steps.append((signal.SIGKILL, 5.0))
    for sig, wait_s in steps:
        try:
            os.kill(state.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not state.alive():
                return
            time.sleep(0.05)
    if state.alive():
        raise GuestError(f"{state.sid}: process {state.pid} survived SIGKILL")


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def ostype_of(ostemplate: str) -> str:
    """PVE reads the OS type from the template; here from its name."""
    name = ostemplate.rpartition("/")[2].lower()
    for os_name in ("debian", "ubuntu", "alpine", "centos", "fedora", "archlinux",
                    "opensuse", "rockylinux", "almalinux", "gentoo", "nixos", "devuan"):
        if name.startswith(os_name):
            return {"rockylinux": "centos", "almalinux": "centos"}.get(os_name, os_name)
    return "unmanaged"


def description_lines(description: object) -> list[str]:
    if not description:
        return []
    return str(description).replace("\\n", "\n").split("\n")


def write_log_path(storages: Storages, conf: GuestConfig, kind: str) -> Path | None:
    """Where a guest's write log is (its boot disk), for checkers running on a node."""
    volid = boot_volume(kind, conf)
    return storages.volume_path(volid) if volid else None

