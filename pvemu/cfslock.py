"""PVE's `cfs_lock_file` / `cfs_lock_domain` (pve-model.md §14.4) on a node's /etc/pve.

mkdir of `priv/lock/<name>`, retried for up to 10 s, each failed try sending an unlock
request (utime 0) so that a lock left expired is freed; the lock is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path


class CfsLockError(Exception):
    """Worded as PVE words it: `cfs-lock '<name>' error: ...`."""


@contextlib.contextmanager
def cfs_lock(root: Path, name: str, timeout_s: float = 10.0,
             retry_s: float = 0.2) -> Iterator[None]:
    lock = Path(root) / "priv" / "lock" / name
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
                raise CfsLockError(f"cfs-lock '{name}' error: got lock request timeout"
                                   ) from None
            time.sleep(retry_s)
        except PermissionError:
            raise CfsLockError("cluster not ready - no quorum?") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.rmdir()
