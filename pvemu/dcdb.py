"""One node's copy of the cluster database, and how a delivered change is applied to it.

pmxcfs keeps /etc/pve in memory and on disk (`/var/lib/pve-cluster/config.db`), one copy
per node, changed only by messages delivered through corosync CPG, the sender's own
included (CL `src/pmxcfs/dcdb.c` `dcdb_deliver`, `memdb.c`; pve-faults.md §4.4-4.5). Here
the copy is a directory tree under the node's own lab directory (it survives the node's
power cycles as config.db does), plus a sidecar `<db>.meta.json` holding what memdb keeps
per inode and we cannot keep in a plain directory:

- ``version``: memdb's global version counter, +1 for every change applied (memdb.c
  `memdb->root->version++`); the state exchange picks the copy with the highest one;
- ``owners``: the writer (node name) of each lock directory under `priv/lock/`, which
  memdb keeps as `tree_entry->writer`; only the writer may renew its lock (memdb.c
  `memdb_mtime`).

`apply` takes one change as delivered (a dict, `op` plus arguments, the writer's node
name and the sender's wall-clock `time`, which pmxcfs stamps in every dfsm message and
memdb uses as the new mtime) and returns 0 or an errno, the result the writer's FUSE call
returns. Guess: a whole-file tree is sent on sync where pmxcfs sends only differing
inodes; for a tree of /etc/pve's size the result is the same.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

from pvemu.etc_pve import atomic_write

LOCK_PREFIX = "/priv/lock/"


def lock_name(path: str) -> str | None:
    """`/priv/lock/<name>` -> name; None for any other path."""
    if path.startswith(LOCK_PREFIX) and path != LOCK_PREFIX and \
            "/" not in path[len(LOCK_PREFIX):]:
        return path[len(LOCK_PREFIX):]
    return None


class Database:
    """A node's own copy: ``root`` (a directory) and its meta file. ``lock`` serialises
    every change and every read that must not see a half-replaced tree."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.meta_path = self.root.with_name(self.root.name + ".meta.json")
        self.lock = threading.RLock()
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        self.version: int = int(meta.get("version", 0))
        self.owners: dict[str, str] = dict(meta.get("owners", {}))

    def real(self, path: str) -> str:
        return str(self.root) + path

    def _save(self) -> None:
        atomic_write(self.meta_path, json.dumps({"version": self.version,
                                                 "owners": self.owners}))

    # -- applying one delivered change ------------------------------------------------
    def apply(self, msg: dict) -> int:
        """Apply a change; 0 or an errno. Only a successful change bumps the version."""
        with self.lock:
            try:
                _APPLY[msg["op"]](self, msg)
            except OSError as exc:
                return exc.errno or errno.EIO
            self.version += 1
            self._save()
            return 0

    def _create(self, msg: dict) -> None:
        # memdb_create: EEXIST when the entry exists (first of two racing creates wins)
        os.close(os.open(self.real(msg["path"]), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        self._touch(msg)

    def _write(self, msg: dict) -> None:
        fd = os.open(self.real(msg["path"]), os.O_WRONLY)
        try:
            os.pwrite(fd, base64.b64decode(msg["data"]), msg["offset"])
        finally:
            os.close(fd)
        self._touch(msg)

    def _truncate(self, msg: dict) -> None:
        os.truncate(self.real(msg["path"]), msg["length"])
        self._touch(msg)

    def _unlink(self, msg: dict) -> None:
        os.unlink(self.real(msg["path"]))

    def _mkdir(self, msg: dict) -> None:
        os.mkdir(self.real(msg["path"]), 0o755)
        self._touch(msg)
        name = lock_name(msg["path"])
        if name:
            self.owners[name] = msg["writer"]

    def _rmdir(self, msg: dict) -> None:
        os.rmdir(self.real(msg["path"]))
        name = lock_name(msg["path"])
        if name:
            self.owners.pop(name, None)

    def _rename(self, msg: dict) -> None:
        old = self.real(msg["path"])
        if os.path.isdir(old) and os.listdir(old):  # memdb_rename (pve-model.md §14.4)
            raise OSError(errno.ENOTEMPTY, "pmxcfs cannot rename a non-empty directory")
        os.rename(old, self.real(msg["new"]))

    def _mtime(self, msg: dict) -> None:
        real, mtime_ns = self.real(msg["path"]), int(msg["mtime_ns"])
        name = lock_name(msg["path"])
        if name:
            if not os.path.isdir(real):
                raise FileNotFoundError(errno.ENOENT, "no such lock")
            # Guess: memdb_mtime refuses a renewal by another node, or with an mtime that
            # is not newer, with EACCES (it checks writer and mtime; errno not verified)
            if self.owners.get(name) != msg["writer"] or mtime_ns <= os.stat(real).st_mtime_ns:
                raise PermissionError(errno.EACCES, "not the lock's owner")
        os.utime(real, ns=(mtime_ns, mtime_ns))

    def _touch(self, msg: dict) -> None:
        ns = int(float(msg["time"]) * 1e9)
        os.utime(self.real(msg["path"]), ns=(ns, ns))

    # -- the whole tree (state exchange) ----------------------------------------------
    def tree(self) -> dict[str, list]:
        """path -> ["d", mtime_ns] or ["f", mtime_ns, base64 data]; the root excluded."""
        out: dict[str, list] = {}
        with self.lock:
            for dirpath, dirnames, filenames in os.walk(self.root):
                rel = dirpath[len(str(self.root)):]
                for d in dirnames:
                    out[f"{rel}/{d}"] = ["d", os.stat(os.path.join(dirpath, d)).st_mtime_ns]
                for f in filenames:
                    full = os.path.join(dirpath, f)
                    with open(full, "rb") as fh:
                        data = base64.b64encode(fh.read()).decode()
                    out[f"{rel}/{f}"] = ["f", os.stat(full).st_mtime_ns, data]
        return out

    def digest(self) -> str:
        """A checksum of the tree and the lock owners (memdb_compute_checksum)."""
        blob = json.dumps([sorted(self.tree().items()), sorted(self.owners.items())])
        return hashlib.sha256(blob.encode()).hexdigest()

    def replace(self, tree: dict[str, list], version: int, owners: dict[str, str]) -> None:
        """Replace the whole copy by the leader's (bdb_backend_commit_update: inodes the
        leader lacks are deleted)."""
        with self.lock:
            fresh = self.root.with_name(self.root.name + ".sync")
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir()
            dirs = []
            for path in sorted(tree):
                kind, mtime_ns, *rest = tree[path]
                target = str(fresh) + path
                if kind == "d":
                    os.makedirs(target, exist_ok=True)
                    dirs.append((target, mtime_ns))
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as fh:
                        fh.write(base64.b64decode(rest[0]))
                    os.utime(target, ns=(mtime_ns, mtime_ns))
            for target, mtime_ns in reversed(dirs):
                os.utime(target, ns=(mtime_ns, mtime_ns))
            old = self.root.with_name(self.root.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            self.root.rename(old)
            fresh.rename(self.root)
            shutil.rmtree(old, ignore_errors=True)
            self.version, self.owners = version, dict(owners)
            self._save()


_APPLY = {"create": Database._create, "write": Database._write,
          "truncate": Database._truncate, "unlink": Database._unlink,
          "mkdir": Database._mkdir, "rmdir": Database._rmdir, "rename": Database._rename,
          "mtime": Database._mtime}
