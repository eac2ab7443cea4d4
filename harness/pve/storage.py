"""Typed views of PVE's storage facts: /etc/pve/storage.cfg, `pvesm status`, the volumes
of a guest's config and the HA resources of `ha-manager config`.

Which storage is shared: a type in PVE's @SHARED_STORAGE (pve-storage
src/PVE/Storage/Plugin.pm; PVE 8 lists glusterfs too, HEAD dropped it) is shared by
nature, any other only with `shared 1` (a directory or LVM the admin says every node
sees). A section header is ``TYPE: ID``, its properties are tab-indented ``KEY VALUE``
lines; a flag written alone (``disable``) is set (PVE::SectionConfig).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ParseError

SHARED_TYPES = frozenset({"iscsi", "nfs", "cifs", "rbd", "cephfs", "iscsidirect",
                          "glusterfs", "zfs", "drbd", "pbs"})
_HEADER = re.compile(r"^(\w[\w-]*):\s+(\S+)\s*$")
_PROPERTY = re.compile(r"^\s+(\S+)(?:\s+(.*?))?\s*$")
# the keys of a guest's config that hold volumes (pve-container src/PVE/LXC/Config.pm,
# qemu-server PVE/QemuServer/Drive.pm); unusedN are not in use and stay out
_VOLUME_KEY = re.compile(r"^(rootfs|mp\d+|ide\d+|sata\d+|scsi\d+|virtio\d+|efidisk\d+|"
                         r"tpmstate\d+)$")
_SID = re.compile(r"^(vm|ct):(\d+)\s*$")


@dataclass(frozen=True)
class StorageDef:
    storage_id: str
    type: str
    shared: bool
    disabled: bool
    nodes: tuple[str, ...]  # () = every node

    def on(self, node: str) -> bool:
        """Whether the storage is meant to be active on ``node``."""
        return not self.disabled and (not self.nodes or node in self.nodes)


def _flag(props: dict[str, str], key: str) -> bool:
    return key in props and props[key] not in ("0", "")


def parse_storage_cfg(text: str) -> dict[str, StorageDef]:
    sections: dict[str, tuple[str, dict[str, str]]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            current = {}
            sections[header[2]] = (header[1], current)
            continue
        prop = _PROPERTY.match(line)
        if prop is None or current is None:
            raise ParseError("/etc/pve/storage.cfg", f"unexpected line {line!r}", text)
        current[prop[1]] = "1" if prop[2] is None else prop[2]
    return {sid: StorageDef(sid, kind, kind in SHARED_TYPES or _flag(props, "shared"),
                            _flag(props, "disable"),
                            tuple(n for n in props.get("nodes", "").split(",") if n))
            for sid, (kind, props) in sections.items()}


def parse_pvesm_status(text: str) -> dict[str, str]:
    """storage id -> its Status column (`active`, `inactive`, `disabled`)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].split()[:3] != ["Name", "Type", "Status"]:
        raise ParseError("pvesm status", "no 'Name Type Status' header", text)
    return {fields[0]: fields[2] for fields in map(str.split, lines[1:]) if len(fields) >= 3}


def guest_volumes(config: str) -> tuple[tuple[str, str], ...]:
    """(key, volume) of every volume the guest uses now (its snapshots' sections, after
    the first ``[name]`` line, are left out); a volume is ``storage:name``, a path, or
    ``none`` (an empty CD drive)."""
    volumes = []
    for line in config.splitlines():
        if line.startswith("["):
            break
        key, sep, value = line.partition(":")
        if not sep or not _VOLUME_KEY.match(key.strip()):
            continue
        first = value.strip().split(",")[0]
        volume = first.split("=", 1)[1] if first.startswith(("volume=", "file=")) else first
        if volume and volume != "none":
            volumes.append((key.strip(), volume))
    return tuple(volumes)


def volume_storage(volume: str) -> str | None:
    """The storage id of ``storage:name``; None for a path (a bind mount or a device)."""
    if volume.startswith("/") or ":" not in volume:
        return None
    return volume.split(":", 1)[0]


def parse_ha_resources(text: str) -> tuple[tuple[str, int], ...]:
    """(type, vmid) of every resource `ha-manager config` lists (`vm:100`, `ct:101`)."""
    return tuple((m[1], int(m[2])) for m in map(_SID.match, text.splitlines()) if m)
