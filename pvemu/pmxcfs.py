"""Emulated pmxcfs: the node's /etc/pve as a FUSE filesystem (pve-model.md §14.4).

What it reproduces (pve-faults.md §4, §2.2; CL = proxmox/pve-cluster `src/pmxcfs/`):
- every node serves its OWN copy of the cluster database (pvemu/dcdb.py), kept under its
  lab directory across power cycles as config.db is;
- every change (create, write, truncate, unlink, mkdir, rmdir, rename, utime, lock
  renewals and unlock requests) is a message multicast through the real corosync's CPG in
  agreed order (pvemu/cpg.py) and applied by every member, the writer included; the FUSE
  call returns once its own message came back (pvemu/dcdb_sync.py, `dfsm.c`). So a node cut
  off from the others reaches nobody with its writes, a paused corosync blocks writes while
  reads work (§4.2), and every membership change runs a state exchange in which the highest
  version's tree wins (§4.5);
- without quorum every write, create, mkdir, rename, unlink and mtime change fails with
  EACCES before it is sent, and stat shows files 0444 and directories 0555; reads come from
  the node's own copy: what it had when it lost contact (§4.4, `dcdb_send_fuse_message`);
- quorum is learnt from the real corosync through libquorum's notifications, as pmxcfs's
  quorum.c does (pvemu/quorum.py);
- a node with no /etc/corosync/corosync.conf when pmxcfs starts (standalone) has no CPG,
  applies its changes at once and is always quorate. Guess: the standalone decision is
  taken once at start-up (`pvecm create` and `pvecm add` restart pve-cluster);
- corosync gone: pmxcfs keeps serving read-only and retries CPG every 5 s (§4.1, loop.c);
- the node symlinks `local`, `qemu-server`, `lxc`; the virtual status files `.members`
  (online = the current CPG members, `status.c`) and `.vmlist` (pvemu/pmxcfs_status.py);
- corosync.conf in /etc/pve is copied to /etc/corosync/corosync.conf when its
  config_version is newer, and corosync is told to reload (`corosync-cfgtool -R`);
- lock ages on each node's own wall clock, restarted by every sync (pvemu/pmxcfs_locks.py).
The lab may instead choose main's shared-directory model (nodeinfo `pmxcfs: shared`,
pvemu/pmxcfs_shared.py), which it does under a timescale < 1: see that module for why.
Guess: one CPG group (`pve_dcdb_v1`) serves both the files and `.members`, where pmxcfs
has a second group (`pve_kvstore_v1`) for status; both hold the same pmxcfs processes.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import mfusepy as fuse

from pvemu import corosync_conf, cpg, nodeinfo, pmxcfs_status, wallclock
from pvemu.dcdb import Database, lock_name
from pvemu.dcdb_sync import WAIT_PVE_S, Replica
from pvemu.etc_pve import PVE_ROOT, atomic_write
from pvemu.pmxcfs_locks import LockTable
from pvemu.quorum import Membership

MOUNTPOINT = str(PVE_ROOT)
HOST_COROSYNC_CONF = Path("/etc/corosync/corosync.conf")
CPG_GROUP = "pve_dcdb_v1"  # dcdb.c
SYNC_INTERVAL_S = 1.0
SYNC_DELAY_S = 0.2  # a new corosync.conf reaches corosync shortly after it is written
NODE_DIRS_WAIT_S = 120.0
VIRTUAL = ("/.members", "/.vmlist")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND
log = logging.getLogger("pmxcfs")


class Pmxcfs(fuse.Operations):
    use_ns = True  # times in nanoseconds, both in getattr and utimens

    def __init__(self, db: Database, node: str, quorum, replica: Replica) -> None:
        self.db, self.node, self.quorum, self.replica = db, node, quorum, replica
        self._virtual: dict[int, bytes] = {}
        self._next_fh = 1 << 30
        self._version = 0
        self._fh_lock = threading.Lock()
        self.links = {
            "/local": f"nodes/{node}",
            "/qemu-server": f"nodes/{node}/qemu-server",
            "/lxc": f"nodes/{node}/lxc",
            "/openvz": f"nodes/{node}/openvz",
        }

    # -- quorum ----------------------------------------------------------------------
    def standalone(self) -> bool:
        return self.replica.send is None

    def quorate(self) -> bool:
        return self.standalone() or self.quorum.quorate()

    def _writable(self) -> None:
        if not self.quorate():
            raise fuse.FuseOSError(errno.EACCES)

    def _submit(self, op: dict) -> int:
        self._writable()
        result = self.replica.submit(op)
        if result:
            raise fuse.FuseOSError(result)
        return 0

    # -- reading: the node's own copy -------------------------------------------------
    def _lstat(self, path: str) -> os.stat_result:
        with self.db.lock:
            return os.lstat(self.db.real(path))

    def getattr(self, path, fh=None):
        if path in self.links or path in VIRTUAL:
            st = self._lstat("/")
            virtual = path in VIRTUAL
            mode = (stat.S_IFREG | 0o440) if virtual else (stat.S_IFLNK | 0o777)
            size = len(self.virtual_content(path)) if virtual else len(self.links[path])
            mtime = time.time_ns() if virtual else st.st_mtime_ns
            return {"st_mode": mode, "st_nlink": 1, "st_size": size, "st_mtime": mtime,
                    "st_ctime": st.st_ctime_ns, "st_atime": mtime, "st_uid": 0,
                    "st_gid": 33}
        try:
            st = self._lstat(path)
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
            with self.db.lock:
                names = os.listdir(self.db.real(path))
        except FileNotFoundError:
            raise fuse.FuseOSError(errno.ENOENT) from None
        extra = [p[1:] for p in (*self.links, *VIRTUAL)] if path == "/" else []
        return [".", "..", *sorted(names), *extra]

    def readlink(self, path):
        if path in self.links:
            return self.links[path]
        raise fuse.FuseOSError(errno.EINVAL)

    def virtual_content(self, path: str) -> bytes:
        self._version += 1
        with self.db.lock:
            if path == "/.members":
                data = pmxcfs_status.members(self.node, self.db.root, self.quorate(),
                                             self.replica.online(), self._version)
            else:
                data = pmxcfs_status.vmlist(self.db.root, self._version)
        return pmxcfs_status.render(data)

    def _new_fh(self) -> int:
        with self._fh_lock:
            self._next_fh += 1
            return self._next_fh

    def open(self, path, flags):
        if path in VIRTUAL:
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise fuse.FuseOSError(errno.EACCES)
            fh = self._new_fh()
            self._virtual[fh] = self.virtual_content(path)
            return fh
        if flags & WRITE_FLAGS:
            self._writable()
        try:
            st = self._lstat(path)
        except FileNotFoundError:
            raise fuse.FuseOSError(errno.ENOENT) from None
        if stat.S_ISDIR(st.st_mode) and flags & WRITE_FLAGS:
            raise fuse.FuseOSError(errno.EISDIR)
        if flags & os.O_TRUNC and st.st_size:
            self._submit({"op": "truncate", "path": path, "length": 0})
        return self._new_fh()

    def read(self, path, size, offset, fh):
        if fh in self._virtual:
            return self._virtual[fh][offset:offset + size]
        try:
            with self.db.lock:
                fd = os.open(self.db.real(path), os.O_RDONLY)
                try:
                    return os.pread(fd, size, offset)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise fuse.FuseOSError(exc.errno) from None

    def release(self, path, fh):
        self._virtual.pop(fh, None)
        return 0

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        return 0

    def statfs(self, path):
        st = os.statvfs(self.db.root)
        return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree",
                                            "f_bavail", "f_files", "f_ffree", "f_namemax")}

    # -- writing: refused without quorum, else replicated -------------------------------
    def create(self, path, mode, fi=None):
        self._submit({"op": "create", "path": path})
        return self._new_fh()

    def write(self, path, data, offset, fh):
        self._submit(self.replica.write_op(path, bytes(data), offset))
        return len(data)

    def truncate(self, path, length, fh=None):
        return self._submit({"op": "truncate", "path": path, "length": length})

    def unlink(self, path):
        return self._submit({"op": "unlink", "path": path})

    def mkdir(self, path, mode):
        return self._submit({"op": "mkdir", "path": path})

    def rmdir(self, path):
        return self._submit({"op": "rmdir", "path": path})

    def rename(self, old, new):
        return self._submit({"op": "rename", "path": old, "new": new})

    def utimens(self, path, times=None):
        mtime_ns = times[1] if times else int(wallclock.now() * 1e9)
        if lock_name(path) and mtime_ns == 0:  # utime(lock, 0, 0): an unlock request
            self._writable()
            try:
                self._lstat(path)
            except FileNotFoundError:
                raise fuse.FuseOSError(errno.ENOENT) from None
            self.replica.request_unlock(path)
            return 0
        return self._submit({"op": "mtime", "path": path, "mtime_ns": mtime_ns})

    def chmod(self, path, mode):
        raise fuse.FuseOSError(errno.EPERM)

    def chown(self, path, uid, gid):
        raise fuse.FuseOSError(errno.EPERM)

    def symlink(self, target, source):
        raise fuse.FuseOSError(errno.EPERM)


def sync_corosync_conf(db: Database) -> bool:
    """Copy a newer /etc/pve/corosync.conf to /etc/corosync and reload corosync."""
    try:
        with db.lock:
            text = Path(db.real("/corosync.conf")).read_text()
    except OSError:
        return False
    try:
        current = corosync_conf.config_version(HOST_COROSYNC_CONF.read_text())
    except OSError:
        return False  # not part of a cluster yet: `pvecm add` writes the first copy
    if corosync_conf.config_version(text) <= current:
        return False
    atomic_write(HOST_COROSYNC_CONF, text)
    log.info("corosync.conf version %s copied to %s", corosync_conf.config_version(text),
             HOST_COROSYNC_CONF)
    subprocess.run(["corosync-cfgtool", "-R"], capture_output=True, timeout=10, check=False)
    return True


NODE_DIRS = ("priv", "priv/lock", "nodes", "nodes/{node}", "nodes/{node}/qemu-server",
             "nodes/{node}/lxc", "nodes/{node}/priv")  # parents first


def ensure_node_dirs(ops: Pmxcfs, stop: threading.Event) -> None:
    """The node's own directories, made through the replication once it can write.
    Guess: PVE's pve-cluster unit makes them after start (`pvecm updatecerts`)."""
    deadline = time.monotonic() + NODE_DIRS_WAIT_S
    while not stop.is_set() and time.monotonic() < deadline:
        if ops.quorate() and ops.replica.mode in ("synced", "local"):
            for sub in NODE_DIRS:
                path = "/" + sub.format(node=ops.node)
                if not os.path.isdir(ops.db.real(path)):
                    result = ops.replica.submit({"op": "mkdir", "path": path})
                    if result not in (0, errno.EEXIST):
                        log.warning("mkdir %s failed: %s", path, os.strerror(result))
            return
        stop.wait(0.5)


def _sync_loop(db: Database, changed: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        changed.wait(SYNC_INTERVAL_S)
        changed.clear()
        if stop.wait(SYNC_DELAY_S):
            return
        try:
            sync_corosync_conf(db)
        except Exception:  # noqa: BLE001 - keep the daemon alive, say why
            log.exception("corosync.conf sync failed")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pmxcfs[%(process)d]: %(message)s")
    info = nodeinfo.load()
    if info.pmxcfs == "shared":
        from pvemu import pmxcfs_shared  # the lab's choice under a timescale < 1

        pmxcfs_shared.main(info)
        return
    db = Database(info.local_db)
    quorum = Membership()  # libquorum notifications, as quorum.c
    locks = LockTable(info.timing.lock_lifetime)  # memdb.c CFS_LOCK_TIMEOUT, scaled
    conf_changed = threading.Event()

    def on_change(path: str) -> None:
        if path == "/corosync.conf":
            conf_changed.set()  # copied by the sync thread, as pmxcfs does it: later

    group = None
    if HOST_COROSYNC_CONF.exists():
        group = cpg.Cpg(CPG_GROUP, lambda nodeid, pid, data: replica.deliver(nodeid, data),
                        lambda members: replica.confchg(tuple(m[0] for m in members)))
    replica = Replica(db, info.name, group.mcast_joined if group else None, quorum.quorate,
                      locks, clock=wallclock.now, on_change=on_change,
                      wait_s=info.timing.s(WAIT_PVE_S))
    ops = Pmxcfs(db, info.name, quorum, replica)
    if os.path.ismount(MOUNTPOINT):
        subprocess.run(["umount", "-l", MOUNTPOINT], check=False)
    stop = threading.Event()
    threading.Thread(target=_sync_loop, args=(db, conf_changed, stop), daemon=True).start()
    threading.Thread(target=ensure_node_dirs, args=(ops, stop), daemon=True).start()
    if group is not None:
        threading.Thread(target=quorum.run, args=(stop,), daemon=True).start()
        threading.Thread(target=cpg.run_loop, args=(group, stop, replica.connected,
                                                    replica.disconnected), daemon=True).start()
    log.info("serving %s from %s (%s)", MOUNTPOINT, db.root,
             "cluster" if group else "standalone")
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


if __name__ == "__main__":
    main()
