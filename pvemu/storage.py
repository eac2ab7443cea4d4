"""/etc/pve/storage.cfg and the volumes on it, for an embedded node.

storage.cfg is PVE's SectionConfig (pve-storage `PVE/Storage.pm`, pve-common
`SectionConfig.pm`): a `<type>: <id>` header, tab-indented `key value` lines, a blank
line after each section. PVE always has a `dir: local` at /var/lib/vz, added at read time
when the file lacks it.

The lab's "NFS server": every `nfs` storage's files are the one directory the lab
exports (NodeInfo.nfs_export, on the host); `export` is recorded as given but not used.
`server` is used: a node mounts an nfs storage with its own FUSE client
(pvemu/nfs_client.py) on the storage's path (default /mnt/pve/<id>) inside its own mount
namespace, lazily, the first time a command or a guest needs the storage; every operation
on it needs `server` to answer on TCP 2049 (the lab's stand-in server), and stalls like
an NFS hard mount while it does not. /mnt itself is made node-private first (an overlay
whose upper layer is the node's own directory), so mount points are never created on
the host.

Activation checks the connection first, as PVE's `activate_storage` does (pve-storage
`PVE/Storage.pm`: "storage 'X' is not online" when the plugin's `check_connection`
fails; `NFSPlugin.pm` `check_connection`: `showmount` with a 10 s timeout). `pvesm status`
then reads the sizes with a 2 s bound (pve-common `PVE/Tools.pm` `df`, run by
`Plugin.pm` `status`), so a stalled mount shows inactive and never hangs it
(pve-faults.md §8.2).

Volumes follow PVE's naming on file-based storages (dir, nfs): the volume id
`<storage>:<vmid>/vm-<vmid>-disk-<n>.raw` is the file `<path>/images/<vmid>/vm-<vmid>-
disk-<n>.raw`, raw being PVE's default format there for both VMs and containers. In the
lab a guest's disk holds its write log (an append-only text file, see guest_process.py):
the file is not pre-allocated, `size=` in the guest config is the nominal size.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pvemu import nfs_wire, nodeinfo
from pvemu.etc_pve import PVE_ROOT, CfsError, EtcPve

STORAGE_CFG = "storage.cfg"
TYPES = ("dir", "nfs")
# keys PVE's writer puts first (the plugin's `fixed` properties), then the rest sorted
FIXED = {"dir": ("path",), "nfs": ("export", "path", "server")}
CONTENT = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"}
LOCAL = {"type": "dir", "path": "/var/lib/vz", "content": "backup,iso,vztmpl"}
_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_HEADER = re.compile(r"^(\S+):\s*(\S+)\s*$")
CHECK_CONNECTION_S = 10  # NFSPlugin.pm check_connection: showmount's timeout (PVE seconds)
DF_TIMEOUT_S = 2  # PVE/Tools.pm df: the forked statvfs's timeout (PVE seconds)
MOUNT_TIMEOUT_S = 10.0  # bound on the FUSE client appearing in the mount table


class StorageError(Exception):
    """A storage error, worded as PVE words it."""


# -- SectionConfig ---------------------------------------------------------------------
def parse(text: str) -> dict[str, dict[str, str]]:
    """storage id -> {"type": ..., key: value}; order of the file kept."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            current = None
            continue
        if line.lstrip().startswith("#"):
            continue
        if raw[:1] in (" ", "\t"):
            if current is not None:
                key, _, value = line.strip().partition(" ")
                current[key] = value.strip()
            continue
        match = _HEADER.match(line)
        if match:
            current = {"type": match.group(1)}
            sections[match.group(2)] = current
        else:
            current = None
    return sections


def render(sections: dict[str, dict[str, str]]) -> str:
    out = []
    for sid, props in sections.items():
        kind = props["type"]
        lines = [f"{kind}: {sid}"]
        fixed = [k for k in FIXED.get(kind, ()) if k in props]
        rest = sorted(k for k in props if k != "type" and k not in fixed)
        for key in fixed + rest:
            lines.append(f"\t{key} {props[key]}")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def with_local(sections: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """PVE's reader adds `local` (dir, /var/lib/vz) when it is missing or not a dir."""
    local = sections.get("local")
    if local is None or local.get("type") != "dir" or local.get("path") not in (None,
                                                                               LOCAL["path"]):
        sections = {"local": dict(LOCAL), **{k: v for k, v in sections.items()
                                              if k != "local"}}
    return sections


# -- volumes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Volume:
    storage: str
    vmid: int
    name: str  # vm-<vmid>-disk-<n>.raw

    @property
    def volid(self) -> str:
        return f"{self.storage}:{self.vmid}/{self.name}"

    def relpath(self) -> Path:
        return Path("images", str(self.vmid), self.name)


_VOLID = re.compile(r"^([^:\s]+):(\d+)/(vm-(\d+)-disk-(\d+)\.raw)$")
_VZTMPL = re.compile(r"^([^:\s]+):vztmpl/([^/\s]+)$")


def parse_volid(volid: str) -> Volume:
    match = _VOLID.match(volid)
    if not match:
        raise StorageError(f"unable to parse volume ID '{volid}'")
    return Volume(match.group(1), int(match.group(2)), match.group(3))


def parse_size_gib(text: str) -> float:
    """`<storage>:<size>` as pct/qm take it: size in GiB (a number)."""
    try:
        size = float(text)
    except ValueError:
        raise StorageError(f"unable to parse size '{text}'") from None
    if size <= 0:
        raise StorageError(f"invalid size '{text}' (must be > 0)")
    return size


def format_size(gib: float) -> str:
    """PVE's format_size for a disk: whole GiB as `8G`, else whole MiB as `512M`."""
    mib = round(gib * 1024)
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def size_bytes(text: str) -> int:
    """`size=` of a volume (`1G`, `512M`, `4T`, bytes) in bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


# -- the node's view --------------------------------------------------------------------
@dataclass
class Storages:
    """storage.cfg in the node's /etc/pve (``pve_root``), and this node's mounts of it."""

    pve_root: Path = PVE_ROOT
    info: nodeinfo.NodeInfo | None = None
    mounted: set[str] = field(default_factory=set)

    @property
    def etc(self) -> EtcPve:
        return EtcPve(self.pve_root, self.info.timing if self.info is not None else None)

    def _stored(self) -> dict[str, dict[str, str]]:
        try:
            return parse(self.etc.read(STORAGE_CFG) or "")
        except CfsError as exc:
            raise StorageError(str(exc)) from None

    def read(self) -> dict[str, dict[str, str]]:
        return with_local(self._stored())

    def write(self, sections: dict[str, dict[str, str]]) -> None:
        try:
            self.etc.write(STORAGE_CFG, render(sections))
        except CfsError as exc:
            raise StorageError(str(exc)) from None

    def get(self, storeid: str) -> dict[str, str]:
        cfg = self.read().get(storeid)
        if cfg is None:
            raise StorageError(f"storage '{storeid}' does not exist")
        return cfg

    def path(self, storeid: str) -> Path:
        cfg = self.get(storeid)
        return Path(cfg.get("path") or f"/mnt/pve/{storeid}")

    def supports(self, storeid: str, content: str) -> bool:
        return content in self.get(storeid).get("content", "").split(",")

    # -- add / remove ----------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, failed: str) -> Iterator[None]:
        """PVE edits storage.cfg under `cfs_lock_file('storage.cfg')`: the cluster lock
        `file-storage_cfg`, so two nodes' edits cannot lose one another."""
        try:
            with self.etc.lock("file-storage_cfg"):
                yield
        except CfsError as exc:
            raise StorageError(f"{failed}: {exc}") from None

    def add(self, kind: str, storeid: str, opts: dict[str, str]) -> None:
        if kind not in TYPES:
            raise StorageError(f"storage type '{kind}' is not supported by the embedded "
                               f"lab (supported: {', '.join(TYPES)})")
        if not _ID.match(storeid):
            raise StorageError(f"storage ID '{storeid}' contains illegal characters")
        props = {"type": kind}
        for key in ("path", "server", "export", "content", "nodes", "options"):
            if opts.get(key):
                props[key] = str(opts[key])
        if kind == "nfs":
            for key in ("server", "export"):
                if key not in props:
                    raise StorageError(f"missing value for required option '{key}'")
            props.setdefault("path", f"/mnt/pve/{storeid}")
        if kind == "dir" and "path" not in props:
            raise StorageError("missing value for required option 'path'")
        if "content" in props:
            bad = [c for c in props["content"].split(",") if c not in CONTENT]
            if bad:
                raise StorageError(f"content: invalid format - unknown content type "
                                   f"'{bad[0]}'")
        else:
            props["content"] = "images" if kind == "nfs" else "images,rootdir"
        with self._locked("create storage failed"):
            sections = self.read()
            if storeid in sections:
                raise StorageError(f"create storage failed: storage ID '{storeid}' already "
                                   "defined")
            sections[storeid] = props
            self.write(sections)

    def remove(self, storeid: str) -> None:
        with self._locked("delete storage failed"):
            sections = self._stored()
            if storeid not in sections:
                raise StorageError(f"delete storage failed: storage '{storeid}' does not "
                                   "exist")
            path = Path(sections.pop(storeid).get("path") or f"/mnt/pve/{storeid}")
            self.write(sections)
        if mounted(path):
            subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)

    # -- activation ------------------------------------------------------------------
    def activate(self, storeid: str) -> Path:
        """Make the storage usable on this node and return its path."""
        cfg = self.get(storeid)
        path = self.path(storeid)
        if cfg["type"] == "nfs":
            if not nfs_wire.answers(cfg.get("server", ""),
                                    timeout_s=self._timing().s(CHECK_CONNECTION_S)):
                raise StorageError(f"storage '{storeid}' is not online")
            if not mounted(path):
                self._mount_nfs(storeid, cfg["server"], path)
        elif storeid == "local" and not os.path.ismount(path):
            raise StorageError(
                f"storage 'local' ({path}) is not provided on embedded nodes (it would "
                "be the host's directory, shared by every node); put guests on an nfs "
                "storage, e.g. 'pvesm add nfs shared --server <addr> --export /export "
                "--content rootdir,images'")
        elif not path.is_dir():
            raise StorageError(f"unable to activate storage '{storeid}' - directory "
                               f"'{path}' does not exist")
        return path

    def _timing(self):
        if self.info is None:
            self.info = nodeinfo.load()
        return self.info.timing

    def _mount_nfs(self, storeid: str, server: str, path: Path) -> None:
        if self.info is None:
            self.info = nodeinfo.load()
        export = self.info.nfs_export
        export.mkdir(parents=True, exist_ok=True)
        node_private_mnt(self.info)
        if not path.is_relative_to("/mnt"):
            raise StorageError(f"storage '{storeid}': path '{path}' must lie under /mnt "
                               "on the embedded lab (nodes share the host's other "
                               "directories)")
        path.mkdir(parents=True, exist_ok=True)
        log = open(f"/var/log/nfs-client-{storeid}.log", "ab")  # noqa: SIM115 - the child's
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pvemu.nfs_client", server, str(export), str(path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this command; the node's init reaps it
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        finally:
            log.close()
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not mounted(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StorageError(f"mount error: mount.nfs: {server}:{export} did not mount "
                                   f"on {path} (read /var/log/nfs-client-{storeid}.log)")
            time.sleep(0.02)

    def status(self) -> list[dict]:
        """`pvesm status` rows: activates what it can, like pvestatd does."""
        rows = []
        for storeid, cfg in self.read().items():
            row = {"storage": storeid, "type": cfg["type"], "active": False, "total": 0,
                   "used": 0, "avail": 0, "enabled": cfg.get("disable") != "1"}
            try:
                path = self.activate(storeid)
                st = statvfs_bounded(path, self._timing().s(DF_TIMEOUT_S))
                row.update(active=True, total=st.f_blocks * st.f_frsize,
                           avail=st.f_bavail * st.f_frsize,
                           used=(st.f_blocks - st.f_bfree) * st.f_frsize)
            except (StorageError, OSError):
                pass
            rows.append(row)
        return rows

    # -- volumes ---------------------------------------------------------------------
    def alloc(self, storeid: str, vmid: int, content: str) -> Volume:
        """A new, empty disk file for vmid on storeid (PVE's next free disk number)."""
        if not self.supports(storeid, content):
            what = "container directories" if content == "rootdir" else "VM images"
            raise StorageError(f"storage '{storeid}' does not support {what}")
        base = self.activate(storeid)
        folder = base / "images" / str(vmid)
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            volume = Volume(storeid, vmid, f"vm-{vmid}-disk-{n}.raw")
            try:
                fd = os.open(base / volume.relpath(), os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                             0o640)
            except FileExistsError:
                continue
            os.close(fd)
            return volume
        raise StorageError(f"unable to allocate an image name for VM {vmid} in storage "
                           f"'{storeid}'")

    def template_path(self, volid: str) -> Path:
        """The file of a container template `<storage>:vztmpl/<name>`
        (`<path>/template/cache/<name>`, PVE::Storage::Plugin's path for vztmpl); dies as
        pve-storage src/PVE/Storage.pm `abs_filesystem_path` does when it is no file:
        `can't find file '<volid>'`. A volid that is no volume is taken as a path, as
        there."""
        match = _VZTMPL.match(volid)
        path = (self.activate(match.group(1)) / "template" / "cache" / match.group(2)
                if match else Path(volid))
        if not path.is_file():
            raise StorageError(f"can't find file '{volid}'")
        return path

    def volume_path(self, volid: str) -> Path:
        volume = parse_volid(volid)
        return self.activate(volume.storage) / volume.relpath()

    def free(self, volid: str) -> None:
        path = self.volume_path(volid)
        path.unlink(missing_ok=True)
        for extra in path.parent.glob(path.name + ".*"):
            extra.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass


def node_private_mnt(info: nodeinfo.NodeInfo) -> None:
    """/mnt must be the node's own (its init mounts an overlay there), so /mnt/pve/<id>
    mount points stay off the host."""
    if not os.path.ismount("/mnt"):
        raise StorageError(f"/mnt is not private to node {info.name}: refusing to mount "
                           "storages on the host's /mnt (is this an embedded lab node?)")


def mounted(path: Path) -> bool:
    """Whether something is mounted on ``path``, from the mount table: os.path.ismount
    would stat the mount's root, which blocks on a stalled NFS mount."""
    target = os.path.abspath(path)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        fields = line.split()
        if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == target:
            return True
    return False


def statvfs_bounded(path: Path, timeout_s: float) -> os.statvfs_result:
    """statvfs in a thread with a bound, as PVE's `df` runs it in a forked child with a
    timeout: a stalled mount raises OSError (the thread stays blocked until the server
    answers, or this short-lived command exits)."""
    result: list[os.statvfs_result] = []
    thread = threading.Thread(target=lambda: result.append(os.statvfs(path)), daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not result:
        raise OSError(f"statvfs {path}: no answer within {timeout_s:g} s")
    return result[0]
