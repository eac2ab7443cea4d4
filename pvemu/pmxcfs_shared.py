"""The shared-directory pmxcfs (main's model, kept as a mode): every node's /etc/pve
serves ONE directory shared by the lab's nodes, gated only on quorum (pve-model.md §14.4).

Used where the lab runs under a timescale < 1 (nodeinfo `pmxcfs: shared`, chosen by
lab/embedded/config.py): pvemu/pmxcfs.py's CPG replication is faithful, but corosync's
timers are not scaled, so its ring re-formation after a node loss (about 8 s without any
delivery, during which every /etc/pve write waits) stalls the scaled HA daemons past their
scaled watchdog. Every write first waits for the local corosync to answer a request
(``Membership.answering``, with the CPG model's 5 PVE s bound and EIO), so a paused
corosync holds writes as CPG does. Known differences of this mode (guesses we accept): a
node without quorum reads the latest state of the shared database, where real pmxcfs
serves the state it had when it lost quorum; a cut node's writes made before its
corosync notices reach the others. Otherwise as before: EACCES without quorum,
0444/0555, `local` links, locks (pvemu/pmxcfs_shared_locks.py), `.members`/`.vmlist`,
corosync.conf copied when newer.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import mfusepy as fuse

from pvemu import corosync_conf, nodeinfo, pmxcfs_status
from pvemu.dcdb_sync import WAIT_PVE_S
from pvemu.etc_pve import PVE_ROOT, atomic_write
from pvemu.nodeinfo import LAB_ETC
from pvemu.pmxcfs_shared_locks import LockStore, LockWatch
from pvemu.quorum import Membership
from pvemu.timing import Timing

MOUNTPOINT = str(PVE_ROOT)
SYNC_INTERVAL_S = 1.0
SYNC_DELAY_S = 0.2  # a new corosync.conf reaches corosync shortly after it is written
LOCK_WATCH_INTERVAL_S = 0.25
VIRTUAL = ("/.members", "/.vmlist")
log = logging.getLogger("pmxcfs")


class Pmxcfs(fuse.Operations):
    use_ns = True  # times in nanoseconds, both in getattr and utimens

    def __init__(self, db: Path, node: str, quorum: Membership,
                 membership: Membership | None = None, *, timing: Timing) -> None:
        self.db = db
        self.node = node
        self.quorum = quorum
        self.membership = membership
        self.locks = LockStore(db)
        # memdb.c CFS_LOCK_TIMEOUT (120 s), at the lab's timescale
        self.lock_watch = LockWatch(self.locks, timing.lock_lifetime)
        self._watched_quorate = False  # quorum at the lock watch's last pass
        self.write_wait_s = timing.s(WAIT_PVE_S)
        self._virtual: dict[int, bytes] = {}
        self._next_fh = 1 << 30
        self._version = 0
        self._fh_lock = threading.Lock()
        self.conf_changed = threading.Event()
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
        # every write of real pmxcfs waits for corosync to deliver it (CPG), so a paused
        # corosync holds it; here it waits for the local corosync to answer, with the CPG
        # model's bound and errno (pvemu/dcdb_sync.py: EIO after 5 PVE s, a Guess there).
        # A cut node's corosync still answers: its writes reach the others (module doc).
        if not self.standalone() and not self.quorum.answering(self.write_wait_s):
            raise fuse.FuseOSError(errno.EIO)

    def _real(self, path: str) -> str:
        return str(self.db) + path

    # -- reading -----------------------------------------------------------------------
    def getattr(self, path, fh=None):
        if path in self.links:
            st = os.lstat(self.db)
            return {"st_mode": stat.S_IFLNK | 0o777, "st_nlink": 1, "st_size":
                    len(self.links[path]), "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns,
                    "st_atime": st.st_atime_ns, "st_uid": 0, "st_gid": 33}
        if path in VIRTUAL:
            st = os.lstat(self.db)
            return {"st_mode": stat.S_IFREG | 0o440, "st_nlink": 1,
                    "st_size": len(self.virtual_content(path)), "st_mtime": time.time_ns(),
                    "st_ctime": st.st_ctime_ns, "st_atime": time.time_ns(), "st_uid": 0,
                    "st_gid": 33}
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
        extra = [p[1:] for p in (*self.links, *VIRTUAL)] if path == "/" else []
        return [".", "..", *sorted(names), *extra]

    def readlink(self, path):
        if path in self.links:
            return self.links[path]
        raise fuse.FuseOSError(errno.EINVAL)

    # -- virtual status files ----------------------------------------------------------
    def virtual_content(self, path: str) -> bytes:
        quorate, members = self.membership.snapshot() if self.membership else (False, ())
        self._version += 1
        if path == "/.members":
            data = pmxcfs_status.members(self.node, self.db, self.quorate(), members,
                                         self._version)
        else:
            data = pmxcfs_status.vmlist(self.db, self._version)
        return pmxcfs_status.render(data)

    def open(self, path, flags):
        if path in VIRTUAL:
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise fuse.FuseOSError(errno.EACCES)
            with self._fh_lock:
                self._next_fh += 1
                self._virtual[self._next_fh] = self.virtual_content(path)
                return self._next_fh
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            self._writable()
        try:
            return os.open(self._real(path), flags)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno) from None

    def read(self, path, size, offset, fh):
        if fh in self._virtual:
            return self._virtual[fh][offset:offset + size]
        return os.pread(fh, size, offset)

    def release(self, path, fh):
        if self._virtual.pop(fh, None) is None:
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
        result = self._do(os.mkdir, self._real(path), 0o755)
        name = self.locks.lock_name(path)
        if name:
            self.locks.created(name, self.node)
            self.lock_watch.observe()  # a node applies its own change at once
        return result

    def rmdir(self, path):
        result = self._do(os.rmdir, self._real(path))
        name = self.locks.lock_name(path)
        if name:
            self.locks.removed(name)
        return result

    def rename(self, old, new):
        result = self._do(os.rename, self._real(old), self._real(new))
        if new == "/corosync.conf":
            self.conf_changed.set()  # copied by the sync thread, as pmxcfs does it: later
        return result

    def utimens(self, path, times=None):
        name = self.locks.lock_name(path)
        if name:
            return self._lock_utime(path, name, times)
        if times is None:
            return self._do(os.utime, self._real(path))
        return self._do(os.utime, self._real(path), None, ns=tuple(times))

    def _lock_utime(self, path: str, name: str, times) -> int:
        """utime on a lock: (0, 0) asks for an unlock, anything else renews it."""
        self._writable()
        real = self._real(path)
        if not os.path.isdir(real):
            raise fuse.FuseOSError(errno.ENOENT)
        mtime_ns = times[1] if times else time.time_ns()
        if mtime_ns == 0:
            self.locks.request_unlock(name)
            return 0
        # Guess: pmxcfs refuses a renewal by another node, or with an mtime that is not
        # newer, with EACCES (memdb.c checks writer and mtime; the errno is not verified).
        if self.locks.owner(name) != self.node or mtime_ns <= os.stat(real).st_mtime_ns:
            raise fuse.FuseOSError(errno.EACCES)
        os.utime(real, ns=(mtime_ns, mtime_ns))
        self.locks.renewed(name)
        # pmxcfs updates its lock table as it applies each change, its own included: a
        # renewal that just got in before quorum was lost still ages from now (without
        # this, the watch thread, already seeing no quorum, first saw it only at the next
        # quorum and the owner's own lock lived a whole lifetime longer)
        self.lock_watch.observe()
        return 0

    def lowest_member(self) -> bool:
        """Whether this node has the lowest node id among the current members."""
        if self.membership is None:
            return True
        _, members = self.membership.snapshot()
        me = node_id(self.db, self.node)
        return me is not None and bool(members) and me == min(members)

    def watch_locks(self) -> None:
        """One pass of the lock bookkeeping a pmxcfs does as changes arrive."""
        quorate, was = self.quorate(), self._watched_quorate
        self._watched_quorate = quorate
        if not quorate:
            # an inquorate node is not in the membership: it hears nothing more. What the
            # others changed before that reached it first (CPG delivers every message of
            # the old membership before the change), so the first pass without quorum
            # takes in what this node had not seen yet: a master's last renewal, made
            # between two passes, then ages from now and not from the next quorum, a
            # whole lifetime later. Guess: a change made by a still-quorate partition in
            # that pass's 0.25 s is taken in too (its lock ages at most that much later).
            if was:
                self.lock_watch.observe()
            return
        self.lock_watch.observe()
        if self.lowest_member():
            for name in self.lock_watch.process_unlock_requests():
                log.info("lock %s expired and was deleted on request", name)

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
    atomic_write(local, text)
    log.info("corosync.conf version %s copied to %s", corosync_conf.config_version(text), local)
    subprocess.run(["corosync-cfgtool", "-R"], capture_output=True, timeout=10, check=False)
    return True


DB_POINTER = LAB_ETC / "pmxcfs-db"  # "local" or "cluster" (`pvecm add` writes it)


def database(info: nodeinfo.NodeInfo) -> Path:
    """The database this node serves: its own, or the cluster's once joined."""
    try:
        which = DB_POINTER.read_text().strip()
    except OSError:
        which = "local"
    return info.cluster_db if which == "cluster" else info.local_db


def use_cluster_database() -> None:
    DB_POINTER.write_text("cluster\n")


def choose_database(info: nodeinfo.NodeInfo) -> Path:
    """A node's own database becomes the cluster's once it holds a corosync.conf."""
    db = database(info)
    if db == info.local_db and (db / "corosync.conf").exists():
        if info.cluster_db.exists() and any(info.cluster_db.iterdir()):
            log.error("a cluster database already exists at %s; serving the local one",
                      info.cluster_db)
            return db
        info.cluster_db.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(info.cluster_db, ignore_errors=True)
        shutil.copytree(db, info.cluster_db, symlinks=True)
        use_cluster_database()
        log.info("local database promoted to the cluster database %s", info.cluster_db)
        return info.cluster_db
    return db


def ensure_node_dirs(db: Path, node: str) -> None:
    for sub in ("priv/lock", f"nodes/{node}/qemu-server", f"nodes/{node}/lxc",
                f"nodes/{node}/priv"):
        (db / sub).mkdir(parents=True, exist_ok=True)


def node_id(db: Path, node: str) -> int | None:
    try:
        conf = corosync_conf.parse((db / "corosync.conf").read_text())
    except (OSError, ValueError):
        return None
    return next((int(n["nodeid"]) for n in corosync_conf.nodes(conf) if n["name"] == node),
                None)


def _sync_loop(ops: Pmxcfs, stop: threading.Event) -> None:
    while not stop.is_set():
        ops.conf_changed.wait(SYNC_INTERVAL_S)
        ops.conf_changed.clear()
        if stop.wait(SYNC_DELAY_S):
            return
        try:
            sync_corosync_conf(ops.db)
        except Exception:  # noqa: BLE001 - keep the daemon alive, say why
            log.exception("corosync.conf sync failed")


def _lock_loop(ops: Pmxcfs, stop: threading.Event) -> None:
    while not stop.wait(LOCK_WATCH_INTERVAL_S):
        try:
            ops.watch_locks()
        except Exception:  # noqa: BLE001 - keep the daemon alive, say why
            log.exception("lock bookkeeping failed")


def main(info: nodeinfo.NodeInfo) -> None:
    db = choose_database(info)
    db.mkdir(parents=True, exist_ok=True)
    membership = Membership()
    ops = Pmxcfs(db, info.name, membership, membership, timing=info.timing)
    if ops.quorate():
        ensure_node_dirs(db, info.name)
    if os.path.ismount(MOUNTPOINT):
        subprocess.run(["umount", "-l", MOUNTPOINT], check=False)
    stop = threading.Event()
    threading.Thread(target=_sync_loop, args=(ops, stop), daemon=True).start()
    threading.Thread(target=membership.run, args=(stop, 1.0), daemon=True).start()
    threading.Thread(target=_lock_loop, args=(ops, stop), daemon=True).start()
    log.info("serving %s from %s", MOUNTPOINT, db)
    try:
        # pmxcfs.c cfs_fuse_open sets fi->direct_io = 1 (keep_cache 0) on every open: a
        # read is never cut at a size the kernel cached up to a second ago (a .vmlist
        # that grew meanwhile came back truncated without it)
        fuse.FUSE(ops, MOUNTPOINT, foreground=True, nothreads=False, fsname="pmxcfs",
                  direct_io=True)
    except RuntimeError as exc:
        # fusepy raises fuse_main's status; 8 is libfuse's "the loop ended with an
        # error", which is how SIGTERM (the node's shutdown) ends it: not a fault
        if exc.args != (8,):
            raise
        log.info("stopped")
    finally:
        stop.set()

