"""A node's mount of an nfs storage: a FUSE passthrough that stalls like an NFS hard mount.

The files live in the lab's one export directory (NodeInfo.nfs_export, on the host); the
node sees them at the storage's path (/mnt/pve/<id>) through this FUSE daemon, which runs
inside the node (its mount and network namespaces). Every operation first needs the NFS
server to answer (pvemu/nfs_wire.py): a thread keeps a connection to server:2049 and
sends a heartbeat every HEARTBEAT_S; an answer missing for ANSWER_S marks the server
unreachable, the next answer reachable again.

While the server is unreachable every operation blocks and retries, indefinitely, as
with nfs(5)'s default `hard` mount ("NFS requests are retried indefinitely"); only
SIGKILL interrupts it, as nfs(5) says of `hard` mounts since 2.6.25. The caller sleeps in
the kernel's FUSE wait, which no signal interrupts once this daemon has read the request
(fs/fuse/dev.c `request_wait_answer`), so the daemon watches the caller itself: a
SIGKILL pending on it (/proc/<pid>/status SigPnd/ShdPnd) ends the operation with EINTR,
and the caller dies. The daemon logs the kernel's own messages,
"nfs: server X not responding, still trying" and "nfs: server X OK" (Linux
net/sunrpc/clnt.c `call_timeout` / `call_decode`).

Guess: the heartbeat's period and bound (HEARTBEAT_S, ANSWER_S) are ours; a real client
has no heartbeat, an RPC in flight simply waits for its answer (timeo=600 for TCP). So an
operation begun within ANSWER_S of a cut may still complete here.

Run as ``python -m pvemu.nfs_client <server> <source-dir> <mountpoint>``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import threading

import mfusepy as fuse

from pvemu.nfs_wire import PORT

HEARTBEAT_S = 0.1  # Guess: see the module docstring
ANSWER_S = 0.5  # Guess
WAIT_SLICE_S = 0.1  # a blocked operation re-checks its caller and stop flag this often
SIGKILL_BIT = 1 << 8  # signal 9 in /proc/<pid>/status's pending masks

log = logging.getLogger("nfs")


class ServerLink:
    """Whether the NFS server answers, kept by a heartbeat thread."""

    def __init__(self, server: str, port: int = PORT) -> None:
        self.server, self.port = server, port
        self.reachable = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        conn: socket.socket | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = socket.create_connection((self.server, self.port),
                                                    timeout=ANSWER_S)
                    conn.settimeout(ANSWER_S)
                conn.sendall(b"h")
                if conn.recv(1) != b"h":
                    raise OSError("no answer")
                self._set(True)
            except OSError:
                if conn is not None:
                    conn.close()
                    conn = None
                self._set(False)
            self.stop.wait(HEARTBEAT_S)

    def _set(self, up: bool) -> None:
        if up and not self.reachable.is_set():
            log.info("nfs: server %s OK", self.server)
            self.reachable.set()
        elif not up and self.reachable.is_set():
            log.warning("nfs: server %s not responding, still trying", self.server)
            self.reachable.clear()

    def wait(self, caller: int | None = None) -> None:
        """Return once the server answers; indefinitely, as a `hard` mount (nfs(5)).
        Each slice is bounded; the caller's SIGKILL ends the wait with EINTR, the
        daemon's end (unmount) with EIO."""
        while not self.reachable.wait(WAIT_SLICE_S):
            if self.stop.is_set():
                raise fuse.FuseOSError(errno.EIO)
            if caller and killed(caller):
                raise fuse.FuseOSError(errno.EINTR)


def killed(pid: int) -> bool:
    """A SIGKILL is pending on the task (it dies as soon as its syscall returns)."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except OSError:
        return True  # gone already
    for line in status.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & SIGKILL_BIT:
            return True
    return False


def _caller() -> int | None:
    """The requesting process (valid inside a FUSE request's thread only)."""
    return fuse.fuse_get_context()[2] or None


def _errno(exc: OSError) -> fuse.FuseOSError:
    return fuse.FuseOSError(exc.errno or errno.EIO)


class Passthrough(fuse.Operations):
    """The export directory, operation by operation, each gated on the server."""

    def __init__(self, root: str, link: ServerLink, caller=None) -> None:
        self.root, self.link = root, link
        self.caller = caller or _caller  # the pid of the process whose request this is

    def _wait(self) -> None:
        self.link.wait(self.caller())

    def _path(self, path: str) -> str:
        self._wait()
        return os.path.join(self.root, path.lstrip("/"))

    def _do(self, fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            raise _errno(exc) from None

    def getattr(self, path, fh=None):
        st = self._do(os.lstat, self._path(path))
        return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid",
                                            "st_size", "st_atime", "st_mtime", "st_ctime")}

    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def readdir(self, path, fh):
        return [".", "..", *self._do(os.listdir, self._path(path))]

    def readlink(self, path):
        return self._do(os.readlink, self._path(path))

    def mkdir(self, path, mode):
        return self._do(os.mkdir, self._path(path), mode) or 0

    def rmdir(self, path):
        return self._do(os.rmdir, self._path(path)) or 0

    def unlink(self, path):
        return self._do(os.unlink, self._path(path)) or 0

    def rename(self, old, new):
        return self._do(os.rename, self._path(old), self._path(new)) or 0

    def symlink(self, target, source):
        return self._do(os.symlink, source, self._path(target)) or 0

    def chmod(self, path, mode):
        return self._do(os.chmod, self._path(path), mode) or 0

    def chown(self, path, uid, gid):
        return self._do(os.chown, self._path(path), uid, gid) or 0

    def truncate(self, path, length, fh=None):
        return self._do(os.truncate, self._path(path), length) or 0

    def utimens(self, path, times=None):
        target = self._path(path)
        self._do(lambda: os.utime(target, ns=times) if times else os.utime(target))
        return 0

    def statfs(self, path):
        st = self._do(os.statvfs, self._path(path))
        return {k: getattr(st, k) for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree",
                                            "f_bavail", "f_files", "f_ffree", "f_favail",
                                            "f_flag", "f_namemax")}

    def open(self, path, flags):
        return self._do(os.open, self._path(path), flags)

    def create(self, path, mode, fi=None):
        return self._do(os.open, self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def read(self, path, size, offset, fh):
        self._wait()
        return self._do(os.pread, fh, size, offset)

    def write(self, path, data, offset, fh):
        self._wait()
        return self._do(os.pwrite, fh, data, offset)

    def flush(self, path, fh):
        self._wait()
        return 0

    def fsync(self, path, datasync, fh):
        self._wait()
        return self._do(os.fdatasync if datasync else os.fsync, fh) or 0

    def release(self, path, fh):
        # Guess: closing needs no answer (a real client's close flushes, which waits)
        return self._do(os.close, fh) or 0


def main(argv: list[str] | None = None) -> None:
    server, source, mountpoint = argv or sys.argv[1:4]
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s nfs-client[%(process)d]: %(message)s")
    link = ServerLink(server)
    threading.Thread(target=link.run, daemon=True).start()
    log.info("mounting %s:%s on %s (hard)", server, source, mountpoint)
    try:
        fuse.FUSE(Passthrough(source, link), mountpoint, foreground=True, nothreads=False,
                  fsname=f"{server}:{source}")
    except RuntimeError as exc:
        if exc.args != (8,):  # libfuse's "loop ended with an error": SIGTERM, unmount
            raise
    finally:
        link.stop.set()


if __name__ == "__main__":
    main()
