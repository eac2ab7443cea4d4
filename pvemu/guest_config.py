"""A guest's config as PVE stores it, and what the emulation reads out of it.

Mirrors PVE::AbstractConfig's file format (PVE::LXC::Config, PVE::QemuServer::Config's
parse_config/write_config): `key: value` lines written sorted, the description as leading
`#` lines, snapshots as `[name]` sections after the current config. Property strings
(`a=1,b=2`) as PVE::JSONSchema's parse_property_string/print_property_string; service ids
(`ct:100`, `vm:100`) as PVE::HA::Config's parse_sid. Which keys hold a guest's NIC and
disks follows PVE::LXC::Config (net0, rootfs, mpN) and PVE::QemuServer (net0 + ipconfig0,
scsiN/virtioN/sataN/ideN, `boot: order=`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pvemu.etc_pve import GUEST_DIRS
from pvemu.storage import Storages

KIND_DIR = dict(sorted(GUEST_DIRS.items()))  # etc_pve's table, containers first
LABEL = {"ct": "CT", "vm": "VM"}
VM_DISK_KEYS = tuple(f"{bus}{n}" for bus, count in (("scsi", 31), ("virtio", 16),
                                                    ("sata", 6), ("ide", 4))
                     for n in range(count))
_KNOB = re.compile(r"^\s*pvechaos:\s*([a-z-]+)\s+(\S+)\s*$")
_SID = re.compile(r"^(ct|vm):([1-9][0-9]{2,8})$")


class GuestError(Exception):
    """An error PVE would `die` with (printed as is, exit code 255)."""


# -- sids ------------------------------------------------------------------------------
def parse_sid(sid: str) -> tuple[str, int]:
    match = _SID.match(sid)
    if not match:
        raise GuestError(f"unable to parse service id '{sid}'")
    return match.group(1), int(match.group(2))


def sid_of(kind: str, vmid: int) -> str:
    return f"{kind}:{vmid}"


# -- guest config files --------------------------------------------------------------
@dataclass
class GuestConfig:
    """`key: value` lines (PVE writes them sorted), the description as leading `#`
    lines, and anything after the first `[section]` (snapshots) kept verbatim."""

    values: dict[str, str]
    description: list[str]
    tail: str = ""

    @classmethod
    def parse(cls, text: str) -> GuestConfig:
        values: dict[str, str] = {}
        description: list[str] = []
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("["):
                return cls(values, description, "\n".join(lines[i:]) + "\n")
            if line.startswith("#"):
                description.append(line[1:])
            elif ":" in line:
                key, _, value = line.partition(":")
                values[key.strip()] = value.strip()
        return cls(values, description)

    def render(self) -> str:
        out = [f"#{line}" for line in self.description]
        out += [f"{k}: {self.values[k]}" for k in sorted(self.values)]
        text = "\n".join(out) + "\n"
        return text + ("\n" + self.tail if self.tail else "")

    def knobs(self) -> dict[str, str]:
        """The `pvechaos: <knob> <value>` lines of the description (see
        guest_lifecycle.py for what each knob does)."""
        found = {}
        for line in self.description:
            match = _KNOB.match(line)
            if match:
                found[match.group(1)] = match.group(2)
        return found


def property_string(text: str) -> dict[str, str]:
    """`a=1,b=2` (a bare first item is returned under the key '')."""
    out = {}
    for i, item in enumerate(filter(None, text.split(","))):
        key, eq, value = item.partition("=")
        if eq:
            out[key.strip()] = value.strip()
        elif i == 0:
            out[""] = key.strip()
    return out


def print_property_string(props: dict[str, str], first: tuple[str, ...] = ()) -> str:
    keys = [k for k in first if k in props] + sorted(k for k in props if k not in first)
    return ",".join(props[k] if k == "" else f"{k}={props[k]}" for k in keys)


def description_lines(description: object) -> list[str]:
    if not description:
        return []
    return str(description).replace("\\n", "\n").split("\n")


def ostype_of(ostemplate: str) -> str:
    """PVE reads the OS type from the template; here from its name."""
    name = ostemplate.rpartition("/")[2].lower()
    for os_name in ("debian", "ubuntu", "alpine", "centos", "fedora", "archlinux",
                    "opensuse", "rockylinux", "almalinux", "gentoo", "nixos", "devuan"):
        if name.startswith(os_name):
            return {"rockylinux": "centos", "almalinux": "centos"}.get(os_name, os_name)
    return "unmanaged"


# -- what a config says about the guest ----------------------------------------------
def guest_network(kind: str, conf: GuestConfig) -> tuple[str | None, str | None]:
    """(address/prefix or None, MAC or None) of the guest's first NIC."""
    net = property_string(conf.values.get("net0", ""))
    if kind == "ct":
        ip, mac = net.get("ip"), net.get("hwaddr")
    else:
        mac = next((v for k, v in net.items() if k in ("virtio", "e1000", "e1000e",
                                                       "rtl8139", "vmxnet3")), None)
        ip = property_string(conf.values.get("ipconfig0", "")).get("ip")
    return ip, mac


def boot_volume(kind: str, conf: GuestConfig) -> str | None:
    """The volume id of the guest's boot disk (CT rootfs; VM first disk in boot order)."""
    if kind == "ct":
        value = conf.values.get("rootfs")
        return property_string(value).get("", property_string(value).get("volume")) \
            if value else None
    order = conf.values.get("boot", "")
    keys = order.removeprefix("order=").split(";") if order.startswith("order=") else []
    for key in [*keys, *VM_DISK_KEYS]:
        value = conf.values.get(key)
        if value and "media=cdrom" not in value:
            return property_string(value).get("")
    return None


def guest_volumes(kind: str, conf: GuestConfig) -> list[str]:
    keys = ["rootfs", *(f"mp{i}" for i in range(256))] if kind == "ct" else VM_DISK_KEYS
    out = []
    for key in keys:
        value = conf.values.get(key)
        if value and "media=cdrom" not in value:
            volid = property_string(value).get("") or property_string(value).get("volume")
            if volid:
                out.append(volid)
    return out


def write_log_path(storages: Storages, conf: GuestConfig, kind: str) -> Path | None:
    """Where a guest's write log is (its boot disk), for checkers running on a node."""
    volid = boot_volume(kind, conf)
    return storages.volume_path(volid) if volid else None
