"""The one way into a node's /etc/pve: its root, atomic writes, the quorum rule for
writes, the cluster lock (cfs_lock), the HA daemons' leases, the cluster's status files
(.members, the vmlist) and the readers of the HA files (parsed by pvemu/ha/config.py).

The CLIs, the HA environment, storage and guests go through `EtcPve`; none of them opens
an /etc/pve path by itself. pmxcfs (pvemu/pmxcfs.py) is the filesystem served at
`PVE_ROOT`; this module is how the node's programs use it, as PVE's `PVE::Cluster`
(cfs_read_file, cfs_write_file, check_cfs_quorum, cfs_lock_file) is for PVE's.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pvemu import nodeinfo
from pvemu.ha import config
from pvemu.timing import Timing

PVE_ROOT = Path("/etc/pve")
NO_QUORUM = "cluster not ready - no quorum?"  # PVE::Cluster::check_cfs_quorum's die
WRITE_BIT = 0o200  # the owner's write bit: pmxcfs shows it only while quorate
# the directory of each guest kind: nodes/<node>/<dir>/<vmid>.conf (the one table)
GUEST_DIRS = {"vm": "qemu-server", "ct": "lxc"}


class CfsError(Exception):
    """An /etc/pve operation failed; worded as PVE words it."""


def default_root() -> Path:
    """/etc/pve on a node; the unit tests point PVECHAOS_PVE_ROOT at a directory."""
    return Path(os.environ.get("PVECHAOS_PVE_ROOT", str(PVE_ROOT)))


def atomic_write(path: Path, text: str) -> None:
    """Replace a file whole: a temporary file beside it, then rename (as PVE's
    `file_set_contents` does). The caller maps OSErrors to its own wording. The one
    write-to-temp-then-rename of pvemu (also for files outside /etc/pve)."""
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class EtcPve:
    """A node's view of /etc/pve (``root``: the mount point, or a test directory).
    ``timing``: the node's PVE timers (its cfs_lock waits); by default the node's own,
    from its node.json, and PVE's real ones where there is none (a test directory)."""

    def __init__(self, root: Path | None = None, timing: Timing | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self._timing = timing

    @property
    def timing(self) -> Timing:
        if self._timing is None:
            try:
                self._timing = nodeinfo.load().timing
            except FileNotFoundError:  # not on a lab node: PVE's own seconds
                self._timing = Timing(1.0)
        return self._timing

    def path(self, rel: str) -> Path:
        return self.root / rel

    def display(self, rel: str = "") -> str:
        """The path as PVE's messages (and commands run on a peer) name it."""
        return f"{PVE_ROOT}/{rel}" if rel else str(PVE_ROOT)

    # -- the quorum rule for writes --------------------------------------------------
    def quorate(self) -> bool:
        """PVE::Cluster::check_cfs_quorum: pmxcfs shows the write bit on `local` (and on
        every file) only while the node is quorate. Without a `local` link the root's own
        write bit decides, if the root holds a `nodes` tree (a standalone test directory);
        an empty root is pmxcfs not mounted, which PVE takes for no quorum, and so is a
        mount whose pmxcfs is gone (ENOTCONN while systemd restarts it, as `pvecm add`
        does): the HA env's quorate (PVE2.pm) evals check_cfs_quorum, a death is 0."""
        target = self.path("local")
        if not os.path.lexists(target):
            try:
                standalone = self.path("nodes").is_dir()
            except OSError:  # ENOTCONN: the mount without its pmxcfs (a restart)
                return False  # PVE2.pm quorate: check_cfs_quorum's death is no quorum
            if not standalone:
                return False
            target = self.root
        try:
            return bool(os.stat(target).st_mode & WRITE_BIT)
        except OSError:
            return False

    def check_quorum(self) -> None:
        if not self.quorate():
            raise CfsError(NO_QUORUM)

    # -- files -----------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.path(rel).exists()

    def read(self, rel: str) -> str | None:
        """The file's text, None when it does not exist."""
        try:
            return self.path(rel).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise CfsError(f"unable to read file '{self.display(rel)}' - {exc.strerror}"
                           ) from None

    def write(self, rel: str, text: str, *, create: bool = False) -> None:
        """Replace the file atomically (``create``: it must not exist yet; a
        FileExistsError is the caller's to word). Without quorum pmxcfs refuses with
        EACCES, which PVE reports as no quorum."""
        target = self.path(rel)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if create:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)
            else:
                atomic_write(target, text)
        except PermissionError:
            raise CfsError(NO_QUORUM) from None
        except FileExistsError:
            raise
        except OSError as exc:
            raise CfsError(f"unable to write '{self.display(rel)}' - {exc.strerror}"
                           ) from None

    def rename(self, old: str, new: str) -> None:
        """Move a file inside /etc/pve (a guest's config to another node: PVE's
        migration and HA's steal both rename)."""
        try:
            self.path(old).rename(self.path(new))
        except PermissionError:
            raise CfsError(NO_QUORUM) from None

    def remove(self, rel: str) -> None:
        try:
            self.path(rel).unlink()
        except FileNotFoundError:
            pass
        except PermissionError:
            raise CfsError(NO_QUORUM) from None

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError:
            return []

    def is_within(self, path: Path) -> bool:
        """Whether ``path`` lies inside this /etc/pve."""
        return Path(path).is_relative_to(self.root)

    # -- cluster state (pmxcfs's status files) ---------------------------------------
    def members(self) -> dict | None:
        """`.members` (PVE::Cluster's `members`), None when it cannot be read."""
        try:
            return json.loads(self.path(".members").read_text())
        except (OSError, ValueError):
            return None

    def local_node(self) -> str | None:
        """The node `local` points at (nodes/<name>), None without the link."""
        try:
            return os.readlink(self.path("local")).rstrip("/").split("/")[-1]
        except OSError:
            return None

    def node_names(self) -> list[str]:
        """The cluster's nodes: .members' nodelist, else the nodes/ directories."""
        names = set((self.members() or {}).get("nodelist") or {})
        if not names:
            names = {n for n in self.listdir("nodes") if self.path(f"nodes/{n}").is_dir()}
        return sorted(names)

    def guest_configs(self, node: str) -> list[str]:
        """The guest configs (relative paths) in a node's directory."""
        return [f"nodes/{node}/{sub}/{name}" for sub in GUEST_DIRS.values()
                for name in self.listdir(f"nodes/{node}/{sub}")
                if name.endswith(".conf") and name[:-5].isdigit()]

    # -- the cluster lock ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, timeout_s: float | None = None,
             retry_s: float | None = None) -> Iterator[None]:
        """PVE::Cluster::cfs_lock (`cfs_lock_file` / `cfs_lock_domain`, pve-model.md
        §14.4): mkdir of `priv/lock/<name>`, retried every ``retry_s`` (PVE's `sleep(1)`)
        for up to ``timeout_s`` (PVE's `$timeout = 10`), both at the node's timescale by
        default, each failed try sending an unlock request (utime 0) so that a lock left
        expired is freed; removed after. Scaled like every PVE timer: the CRM master
        takes `domain-ha` in its round, and an unscaled 10 s wait there outlasted its
        watchdog's 60 PVE s at timescale 0.1.

        Every failed mkdir is retried, whatever its errno: EEXIST (held), EACCES (pmxcfs
        without quorum) alike, as cfs_lock's loop does. When the time is up, cfs_lock
        replaces its error with `no quorum!` if the node is not quorate then
        (`$err = "no quorum!\n" if !$got_lock && !check_cfs_quorum(1)`), so a node without
        quorum reports no quorum even when the lock was left held by a node that died
        holding it. PVE sleeps 1 s between tries and prints "trying to acquire cfs lock"
        each time; here the tries come as often but print nothing (the line is left out)."""
        lock = self.path(f"priv/lock/{name}")
        timeout_s = self.timing.cfs_lock_timeout if timeout_s is None else timeout_s
        retry_s = self.timing.cfs_lock_retry if retry_s is None else retry_s
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                lock.parent.mkdir(parents=True, exist_ok=True)
                lock.mkdir()
                break
            except OSError:
                with contextlib.suppress(OSError):
                    os.utime(lock, (0, 0))
                if time.monotonic() > deadline:
                    why = "got lock request timeout" if self.quorate() else "no quorum!"
                    raise CfsError(f"cfs-lock '{name}' error: {why}") from None
                time.sleep(retry_s)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                lock.rmdir()

    # -- the HA leases (PVE::HA::Env::PVE2 get_pve_lock) -----------------------------
    def take_lease(self, name: str, renew: bool, at: float | None = None) -> bool:
        """One try at `priv/lock/<name>`: ``renew`` (the caller still holds it within its
        lifetime) touches it to ``at`` (the caller's clock, PVE2.pm `utime(0, $ctime)`;
        the host's now by default), which only the owner may; otherwise mkdir. A failed
        try sends an unlock request (utime 0), which frees the lock if it has expired.
        A failed renewal sends none (PVE2.pm dies "cfs lock update failed")."""
        path = self.path(f"priv/lock/{name}")
        if renew:
            now_ns = time.time_ns() if at is None else int(at * 1e9)
            try:
                os.utime(path, ns=(now_ns, now_ns))
                return True
            except OSError:
                return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path)
            return True
        except OSError:
            with contextlib.suppress(OSError):
                os.utime(path, (0, 0))
            return False

    def release_lease(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self.path(f"priv/lock/{name}"))

    # -- the HA files (PVE::HA::Config) ----------------------------------------------
    def vmlist(self) -> dict[str, str]:
        """sid (`ct:<id>`, `vm:<id>`) -> the node whose directory holds its config (what
        PVE's `.vmlist` tells), read from the nodes/*/lxc|qemu-server listings."""
        out: dict[str, str] = {}
        for node in self.listdir("nodes"):
            for stype, sub in GUEST_DIRS.items():
                for name in self.listdir(f"nodes/{node}/{sub}"):
                    stem, dot, ext = name.partition(".")
                    if dot and ext == "conf" and stem.isdigit():
                        out[f"{stype}:{stem}"] = node
        return out

    def resources(self) -> dict[str, dict]:
        """resources.cfg as stored (no defaults filled in)."""
        return config.parse_resources(self.read(config.RESOURCES_CFG) or "")

    def groups(self) -> dict[str, dict]:
        return config.parse_groups(self.read(config.GROUPS_CFG) or "")

    def rules(self) -> dict[str, dict]:
        return config.parse_rules(self.read(config.RULES_CFG) or "")

    def datacenter(self) -> dict:
        return config.parse_datacenter(self.read(config.DATACENTER_CFG) or "")

    def manager_status(self) -> dict:
        """ha/manager_status; {} when missing, empty or not JSON."""
        try:
            return config.parse_json(self.read(config.MANAGER_STATUS))
        except ValueError:
            return {}

    def lrm_status(self, node: str) -> dict | None:
        """A node's lrm_status, None when it has none or it cannot be read."""
        try:
            text = self.read(config.lrm_status_path(node))
            return None if text is None else config.parse_json(text)
        except (CfsError, ValueError):
            return None

    # -- directories -----------------------------------------------------------------
    def is_dir(self, rel: str) -> bool:
        return self.path(rel).is_dir()

    def mkdir(self, rel: str) -> None:
        """Create a directory and its parents if missing; without quorum pmxcfs refuses
        with EACCES, reported as no quorum."""
        try:
            self.path(rel).mkdir(parents=True, exist_ok=True)
        except PermissionError:
            raise CfsError(NO_QUORUM) from None
