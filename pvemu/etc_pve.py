"""The one way into a node's /etc/pve: its root, atomic writes, the quorum rule for
writes, the cluster lock, and the readers of the HA files.

The CLIs, the HA environment, storage and guests go through `EtcPve`; none of them opens
an /etc/pve path by itself. pmxcfs (pvemu/pmxcfs.py) is the filesystem served at
`PVE_ROOT`; this module is how the node's programs use it, as PVE's `PVE::Cluster`
(cfs_read_file, cfs_write_file, check_cfs_quorum, cfs_lock_file) is for PVE's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pvemu.ha import config

PVE_ROOT = Path("/etc/pve")
NO_QUORUM = "cluster not ready - no quorum?"  # PVE::Cluster::check_cfs_quorum's die
LOCK_TIMEOUT_S = 10.0  # PVE::Cluster::cfs_lock: `$timeout = 10` unless given


class CfsError(Exception):
    """An /etc/pve operation failed; worded as PVE words it."""


def default_root() -> Path:
    """/etc/pve on a node; the unit tests point PVECHAOS_PVE_ROOT at a directory."""
    return Path(os.environ.get("PVECHAOS_PVE_ROOT", str(PVE_ROOT)))


def atomic_write(path: Path, text: str) -> None:
    """Replace a file whole: a temporary file beside it, then rename (as PVE's
    `file_set_contents` does). The caller maps OSErrors to its own wording."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        tmp.write_text(text)
        tmp.rename(path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


class EtcPve:
    """A node's view of /etc/pve (``root``: the mount point, or a test directory)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def path(self, rel: str) -> Path:
        return self.root / rel

    def display(self, rel: str) -> str:
        """The path as PVE's messages show it."""
        return f"{PVE_ROOT}/{rel}"

    # -- the quorum rule for writes --------------------------------------------------
    def quorate(self) -> bool:
        """PVE::Cluster::check_cfs_quorum: pmxcfs shows the write bit on `local` (and on
        every file) only while the node is quorate. Without a `local` link (a standalone
        test directory) the root's own write bit decides."""
        target = self.path("local")
        if not os.path.lexists(target):
            target = self.root
        try:
            return bool(os.stat(target).st_mode & 0o200)
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

    # -- the cluster lock ------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, name: str, timeout_s: float = LOCK_TIMEOUT_S,
             retry_s: float = 0.2) -> Iterator[None]:
        """PVE's `cfs_lock_file` / `cfs_lock_domain` (pve-model.md §14.4): mkdir of
        `priv/lock/<name>`, retried for up to ``timeout_s``, each failed try sending an
        unlock request (utime 0) so that a lock left expired is freed; removed after."""
        lock = self.path(f"priv/lock/{name}")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                lock.parent.mkdir(parents=True, exist_ok=True)
                lock.mkdir()
                break
            except FileExistsError:
                with contextlib.suppress(OSError):
                    os.utime(lock, (0, 0))
                if time.monotonic() > deadline:
                    raise CfsError(f"cfs-lock '{name}' error: got lock request timeout"
                                   ) from None
                time.sleep(retry_s)
            except PermissionError:
                raise CfsError(NO_QUORUM) from None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                lock.rmdir()

    # -- the HA files (PVE::HA::Config) ----------------------------------------------
    def vmlist(self) -> dict[str, str]:
        """sid (`ct:<id>`, `vm:<id>`) -> the node whose directory holds its config (what
        PVE's `.vmlist` tells), read from the nodes/*/lxc|qemu-server listings."""
        return config.vmlist(self.root)

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
        return config.parse_json(self.read(config.MANAGER_STATUS))

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
