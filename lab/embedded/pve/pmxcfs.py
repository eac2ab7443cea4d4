"""Emulated pmxcfs: the node's /etc/pve as a FUSE filesystem (pve-model.md §14.4).

What it reproduces:
- one cluster database seen by every member (here a directory shared by the lab's nodes,
  standing in for pmxcfs's replication over corosync CPG);
- without quorum every write, create, mkdir, rename, unlink and mtime change fails with
  EACCES, and stat shows files 0444 and directories 0555; a node with no corosync.conf
  (standalone) is always quorate;
- quorum is asked of the real corosync through libquorum, as pmxcfs does;
- the node symlinks `local`, `qemu-server`, `lxc`;
- corosync.conf in /etc/pve is copied to /etc/corosync/corosync.conf when its
  config_version is newer, and corosync is told to reload (`corosync-cfgtool -R`).

Known difference (a guess we accept): a node without quorum reads the latest state of the
shared database, where real pmxcfs would serve the state it had when it lost quorum.
Locks (`priv/lock/`) and `.members` come with the HA stack.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

import mfusepy as fuse

from lab.embedded.pve import corosync_conf, nodeinfo
from lab.embedded.pve.quorum import CorosyncQuorum

MOUNTPOINT = "/etc/pve"
SYNC_INTERVAL_S = 1.0
log = logging.getLogger("pmxcfs")


class Pmxcfs(fuse.Operations):
    use_ns = True  # times in nanoseconds, both in getattr and utimens

    def __init__(self, db: Path, node: str, quorum: CorosyncQuorum) -> None:
        self.db = db
        self.node = node
        self.quorum = quorum
        self.links = {
            "/local": f"nodes/{node}",
            "/qemu-server": f"nodes/{node}/qemu-server",
            "/lxc": f"nodes/{node}/lxc",
            "/openvz": f"nodes/{node}/openvz",
        }

    # -- quorum ----------------------------------------------------------------------
    def standalone(self) -> bool:
        return not (self.db / "corosync.conf").exists()

    def quorate(self) -> bool:
        return self.standalone() or self.quorum.quorate()

    def _writable(self) -> None:
        if not self.quorate():
            raise fuse.FuseOSError(errno.EACCES)

    def _real(self, path: str) -> str:
        return str(self.db) + path

    # -- reading -----------------------------------------------------------------------
    def getattr(self, path, fh=None):
        if path in self.links:
            st = os.lstat(self.db)
            return {"st_mode": stat.S_IFLNK | 0o777, "st_nlink": 1, "st_size":
                    len(self.links[path]), "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns,
                    "st_atime": st.st_atime_ns, "st_uid": 0, "st_gid": 33}
        try:
            st = os.lstat(self._real(path))
        except FileNotFoundError:
            raise fuse.FuseOSError(errno.ENOENT) from None
        quorate = self.quorate()
        if stat.S_ISDIR(st.st_mode):
            mode = stat.S_IFDIR | (0o755 if quorate else 0o555)
        else:
            mode = stat.S_IFREG | (0o640 if quorate else 0o444)
        return {"st_mode": mode, "st_nlink": st.st_nlink, "st_size": st.st_size,
                "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns,
                "st_atime": st.st_atime_ns, "st_uid": 0, "st_gid": 33}

    def readdir(self, path, fh):
        try:
            names = os.listdir(self._real(path))
        except FileNotFoundError:
            raise fuse.FuseOSError(errno.ENOENT) from None
        extra = [p[1:] for p in self.links] if path == "/" else []
        return [".", "..", *sorted(names), *extra]

    def readlink(self, path):
        if path in self.links:
            return self.links[path]
        raise fuse.FuseOSError(errno.EINVAL)

    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            self._writable()
        try:
            return os.open(self._real(path), flags)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno) from None

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        os.close(fh)
        return 0

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        return 0

    def statfs(self, path):
        st = os.statvfs(self.db)
        return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree",
                                            "f_bavail", "f_files", "f_ffree", "f_namemax")}

    # -- writing: all refused without quorum --------------------------------------------
    def _do(self, fn, *args):
        self._writable()
        try:
            return fn(*args)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno) from None

    def create(self, path, mode, fi=None):
        return self._do(os.open, self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                        0o640)

    def write(self, path, data, offset, fh):
        self._writable()
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        self._do(os.truncate, fh if fh is not None else self._real(path), length)
        return 0

    def unlink(self, path):
        return self._do(os.unlink, self._real(path))

    def mkdir(self, path, mode):
        return self._do(os.mkdir, self._real(path), 0o755)

    def rmdir(self, path):
        return self._do(os.rmdir, self._real(path))

    def rename(self, old, new):
        result = self._do(os.rename, self._real(old), self._real(new))
        if new == "/corosync.conf":
            sync_corosync_conf(self.db)
        return result

    def utimens(self, path, times=None):
        if times is None:
            return self._do(os.utime, self._real(path))
        return self._do(os.utime, self._real(path), None, ns=tuple(times))

    def chmod(self, path, mode):
        raise fuse.FuseOSError(errno.EPERM)

    def chown(self, path, uid, gid):
        raise fuse.FuseOSError(errno.EPERM)

    def symlink(self, target, source):
        raise fuse.FuseOSError(errno.EPERM)


def sync_corosync_conf(db: Path) -> bool:
    """Copy a newer /etc/pve/corosync.conf to /etc/corosync and reload corosync."""
    try:
        text = (db / "corosync.conf").read_text()
    except OSError:
        return False
    local = Path("/etc/corosync/corosync.conf")
    try:
        current = corosync_conf.config_version(local.read_text())
    except OSError:
        return False  # not part of a cluster yet: `pvecm add` writes the first copy
    if corosync_conf.config_version(text) <= current:
        return False
    tmp = local.with_suffix(".new")
    tmp.write_text(text)
    tmp.replace(local)
    log.info("corosync.conf version %s copied to %s", corosync_conf.config_version(text), local)
    subprocess.run(["corosync-cfgtool", "-R"], capture_output=True, timeout=10, check=False)
    return True


def choose_database(info: nodeinfo.NodeInfo) -> Path:
    """A node's own database becomes the cluster's once it holds a corosync.conf."""
    db = info.database()
    if db == info.local_db and (db / "corosync.conf").exists():
        if info.cluster_db.exists() and any(info.cluster_db.iterdir()):
            log.error("a cluster database already exists at %s; serving the local one",
                      info.cluster_db)
            return db
        info.cluster_db.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(info.cluster_db, ignore_errors=True)
        shutil.copytree(db, info.cluster_db, symlinks=True)
        info.use_database("cluster")
        log.info("local database promoted to the cluster database %s", info.cluster_db)
        return info.cluster_db
    return db


def ensure_node_dirs(db: Path, node: str) -> None:
    for sub in ("priv/lock", f"nodes/{node}/qemu-server", f"nodes/{node}/lxc",
                f"nodes/{node}/priv"):
        (db / sub).mkdir(parents=True, exist_ok=True)


def _sync_loop(db: Path, stop: threading.Event) -> None:
    while not stop.wait(SYNC_INTERVAL_S):
        try:
            sync_corosync_conf(db)
        except Exception:  # noqa: BLE001 - keep the daemon alive, say why
            log.exception("corosync.conf sync failed")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pmxcfs[%(process)d]: %(message)s")
    info = nodeinfo.load()
    db = choose_database(info)
    db.mkdir(parents=True, exist_ok=True)
    ops = Pmxcfs(db, info.name, CorosyncQuorum())
    if ops.quorate():
        ensure_node_dirs(db, info.name)
    if os.path.ismount(MOUNTPOINT):
        subprocess.run(["umount", "-l", MOUNTPOINT], check=False)
    stop = threading.Event()
    threading.Thread(target=_sync_loop, args=(db, stop), daemon=True).start()
    log.info("serving %s from %s", MOUNTPOINT, db)
    try:
        fuse.FUSE(ops, MOUNTPOINT, foreground=True, nothreads=False, fsname="pmxcfs")
    finally:
        stop.set()


if __name__ == "__main__":
    main()
