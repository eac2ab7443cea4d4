"""The embedded lab's `ready` state: a formed cluster, saved once, booted again in seconds.

The libvirt lab snapshots its VMs once the harness has formed the cluster and added the
shared storage (harness/formation.py ``bring_up``); the next start reverts to it. The
embedded lab has no memory to snapshot, so its `ready` state is what a node keeps across
a power cycle, taken after a clean shutdown of every node (the HA daemons release their
locks, as they do when PVE powers off): each node's own files (its /etc overlay with
corosync.conf and authkey, /var/lib/corosync, the pmxcfs database, /root, /mnt), and on
the host the lab's SSH key, the shared-model pmxcfs directory (``<lab_dir>/pmxcfs``) and
the NFS stand-in's export (``<lab_dir>/nfs``). Not kept: logs, the overlays' work
directories, and what provisioning writes on every start (bin/, boot.json; node.json,
hosts and the sshd files are written again over the restored ones).

It lives in ``<state_root>/.ready/<lab name>/`` (a lab name starts with a letter, so no
lab directory is ever called that), outlives the lab directory, and is booted only by a
lab whose key matches (``key``): the same node names and addresses, PVE versions, cluster
name, pmxcfs model, QDevice host or not, and emulator code. The versions saved are those
the nodes run when saved (a node the upgrade verb switched runs another than the lab
was made with), so only a lab made with those versions boots the state. A state whose key does not
match is removed when found; `pvechaos lab cleanup` removes them all. Each xdist worker
has its own lab name, so its own state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LabError
from lab.embedded import upgrade
from lab.embedded.config import EmbeddedConfig
from lab.embedded.provision import REPO_ROOT, node_dir
from lab.options import LAB_NAME
from pvemu import corosync_conf

log = logging.getLogger("pvechaos.lab")

FORMAT = 1  # bump when the layout of a saved state changes
# the code whose change may change what a formed node holds
CODE = ("pvemu", "lab/embedded", "harness/formation.py", "harness/shared_storage.py")
LAB_SAVED = ("id_ed25519", "id_ed25519.pub", "pmxcfs", "nfs")
NODE_SKIPPED = frozenset({"log", "bin", "boot.json", ".etc-work", ".tmp-work", ".root-work",
                          ".mnt-work"})
META = "meta.json"
FILES = "files"


def root(state_root: Path) -> Path:
    return state_root / ".ready"


def path_of(config: EmbeddedConfig) -> Path:
    return root(config.state_root) / config.name


def code_fingerprint(repo: Path = REPO_ROOT) -> str:
    """sha256 over the emulator's and formation's source: a change makes a new key."""
    digest = hashlib.sha256()
    for entry in CODE:
        base = repo / entry
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for file in files:
            digest.update(str(file.relative_to(repo)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def key(config: EmbeddedConfig, code: str | None = None, *,
        versions: dict[str, str] | None = None) -> dict[str, object]:
    """What a saved state must match to be booted by this lab; ``versions``: what each
    node runs (default: the versions the lab makes its nodes with)."""
    running = versions or {}
    return {
        "format": FORMAT,
        "node_count": config.node_count,
        "nodes": {n: [config.node_address(n), running.get(n, config.version_of(n))]
                  for n in config.node_names},
        "subnet": config.subnet,
        "cluster_name": config.cluster_name,
        "pmxcfs": config.pmxcfs_model,
        "qdevice": config.qdevice,  # the qnetd host is not saved: a state is made without it
        "code": code if code is not None else code_fingerprint(),
    }


def differences(saved: dict, wanted: dict) -> list[str]:
    """The key's fields that differ, by name (the log says why a state was not booted)."""
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))


def saved_paths(config: EmbeddedConfig) -> list[Path]:
    """The lab directory's entries a ready state holds, relative to it."""
    lab = config.lab_dir
    paths = [Path(name) for name in LAB_SAVED if (lab / name).exists()]
    for node in config.node_names:
        here = node_dir(config, node)
        paths += sorted(p.relative_to(lab) for p in here.iterdir()
                        if p.name not in NODE_SKIPPED)
    return paths


def _copy(source: Path, target: Path) -> None:
    """cp -a: whiteouts (character devices), modes, owners and overlay xattrs kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["cp", "-a", "--", str(source), str(target)], capture_output=True,
                          text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise LabError(f"copying {source} to {target} failed: {done.stderr.strip()}",
                       hint=f"check the free space and permissions under {target.parent}")


def check_formed(config: EmbeddedConfig) -> None:
    """Refuse to save what is not the cluster the key names (every node's corosync.conf:
    the config's cluster name, every node listed)."""
    for node in config.node_names:
        conf_path = node_dir(config, node) / "etc/corosync/corosync.conf"
        try:
            conf = corosync_conf.parse(conf_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise LabError(f"{node} has no readable corosync.conf ({exc}): not a formed "
                           "cluster, nothing saved", hint="save_ready after formation") from None
        name = conf.get("totem", {}).get("cluster_name")
        members = len(corosync_conf.nodes(conf))
        if name != config.cluster_name or members != config.node_count:
            raise LabError(f"{node}'s corosync.conf names cluster {name!r} of {members} "
                           f"nodes, not {config.cluster_name!r} of {config.node_count}",
                           hint="give the lab the cluster name bring_up forms "
                                "(EmbeddedConfig.cluster_name, --cluster-name)")


def save(config: EmbeddedConfig, *, now: float | None = None) -> Path:
    """Copy the powered-off lab's state to its ready directory (replacing an older one)."""
    check_formed(config)
    final = path_of(config)
    partial = final.with_name(f".{config.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    for rel in saved_paths(config):
        _copy(config.lab_dir / rel, partial / FILES / rel)
    versions = {n: upgrade.running_version(config, n) for n in config.node_names}
    meta = {"key": key(config, versions=versions), "saved_at": time.time() if now is None else now}
    (partial / META).write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


@dataclass(frozen=True)
class Ready:
    path: Path
    saved_at: float

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.saved_at))


def find(config: EmbeddedConfig) -> Ready | None:
    """The lab's ready state if its key matches; one that does not match is removed."""
    where = path_of(config)
    try:
        meta = json.loads((where / META).read_text())
        saved, saved_at = meta["key"], float(meta["saved_at"])
    except FileNotFoundError:
        shutil.rmtree(where, ignore_errors=True)  # a directory without meta: never whole
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.info("lab %s: its ready state is unreadable (%s): removed", config.name, exc)
        shutil.rmtree(where, ignore_errors=True)
        return None
    changed = differences(saved, key(config))
    if changed:
        log.info("lab %s: its ready state was made for another %s: removed; the cluster is "
                 "formed afresh", config.name, ", ".join(changed))
        shutil.rmtree(where, ignore_errors=True)
        return None
    return Ready(where, saved_at)


def restore(ready: Ready, config: EmbeddedConfig) -> None:
    """The saved files into the (new, empty) lab directory, before provisioning."""
    config.lab_dir.mkdir(parents=True, exist_ok=True)
    for entry in sorted((ready.path / FILES).iterdir()):
        _copy(entry, config.lab_dir / entry.name)


def remove(state_root: Path, names: list[str] | None = None) -> list[str]:
    """Remove the ready states of the labs named (all with None); the names removed."""
    base = root(state_root)
    if not base.is_dir():
        return []
    found = sorted(p.name for p in base.iterdir() if LAB_NAME.fullmatch(p.name))
    chosen = found if names is None else [n for n in found if n in names]
    for name in chosen:
        shutil.rmtree(base / name, ignore_errors=True)
    if names is None:
        shutil.rmtree(base, ignore_errors=True)  # partial copies of killed runs too
    return chosen
