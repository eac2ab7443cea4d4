"""Creating a guest on one node: its config and new disks.

Mirrors the create calls of PVE::API2::LXC (`pct create`) and PVE::API2::Qemu
(`qm create`): quorum first, a VMID unused cluster-wide, new volumes allocated on the
named storage (`<storage>:<size in GiB>`, PVE::Storage::vdisk_alloc), defaults as PVE
fills them, and the volumes freed again when writing the config fails.
Simplification: only new disks; no import of existing volumes; a container's template
must exist but is not unpacked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from pvemu import nodeinfo
from pvemu.guest_addresses import check_lab_address, random_mac, reserved_addresses
from pvemu.guest_config import (
    VM_DISK_KEYS,
    GuestConfig,
    GuestError,
    description_lines,
    guest_volumes,
    ostype_of,
    print_property_string,
    property_string,
)
from pvemu.guest_store import GuestStore
from pvemu.storage import StorageError, Storages, format_size, parse_size_gib


def free_volumes(storages: Storages, kind: str, conf: GuestConfig) -> None:
    """Free every disk of the config, ignoring those already gone."""
    for volid in guest_volumes(kind, conf):
        try:
            storages.free(volid)
        except StorageError:
            pass


class GuestCreate:
    """`pct create` / `qm create` on the node of ``store``; ``info`` gives the node's
    facts (loaded when an address is first checked)."""

    def __init__(self, store: GuestStore, storages: Storages,
                 info: Callable[[], nodeinfo.NodeInfo]) -> None:
        self.store, self.storages, self.info = store, storages, info

    def _check_address(self, cidr: str, vmid: int) -> None:
        check_lab_address(cidr, self.info(), reserved_addresses(self.store, vmid))

    def _disk(self, spec: str, vmid: int, content: str) -> str:
        """`<storage>:<size GiB>[,opts]` -> a new volume `<volid>,size=<n>G[,opts]`."""
        props = property_string(spec)
        head = props.pop("", "")
        storeid, colon, size = head.partition(":")
        if not colon or not storeid:
            raise GuestError(f"unable to parse disk '{spec}' (give <storage>:<size in GiB>)")
        if "/" in size or not size.replace(".", "", 1).isdigit():
            raise GuestError(f"unable to parse disk '{spec}': only new disks "
                             "(<storage>:<size in GiB>) are supported")
        gib = parse_size_gib(size)
        volume = self.storages.alloc(storeid, vmid, content)
        props["size"] = format_size(gib)
        return print_property_string({"": volume.volid, **props}, ("",))

    def ct(self, vmid: int, ostemplate: str, opts: dict[str, object]) -> GuestConfig:
        self.store.check_quorum()
        self.store.check_vmid_unused(vmid)
        if "rootfs" not in opts:
            raise GuestError("missing 'rootfs' (give --rootfs <storage>:<size in GiB>)")
        # pve-container src/PVE/API2/LXC.pm: the archive is unpacked after the disks are
        # allocated, and a failure frees them and the config again and dies with
        # "unable to create CT <vmid> - <error>"; the error for a missing template is
        # PVE::Storage::abs_filesystem_path's (pve-storage src/PVE/Storage.pm). Checked
        # here first, which leaves the same nothing behind.
        try:
            self.storages.template_path(ostemplate)
        except StorageError as exc:
            raise GuestError(f"unable to create CT {vmid} - {exc}") from None
        values = {"arch": str(opts.get("arch", "amd64")),
                  "hostname": str(opts.get("hostname", f"CT{vmid}")),
                  "memory": str(opts.get("memory", 512)),
                  "swap": str(opts.get("swap", 512)),
                  "ostype": str(opts.get("ostype") or ostype_of(ostemplate))}
        for key in ("cores", "unprivileged", "onboot"):
            if key in opts:
                values[key] = str(int(opts[key]) if isinstance(opts[key], bool)
                                  else opts[key])
        if "net0" in opts:
            net = property_string(str(opts["net0"]))
            net.pop("", None)
            net.setdefault("name", "eth0")
            net.setdefault("hwaddr", random_mac())
            net.setdefault("type", "veth")
            if "ip" in net:
                self._check_address(net["ip"], vmid)
            values["net0"] = print_property_string(net, ("name",))
        values["rootfs"] = self._disk(str(opts["rootfs"]), vmid, "rootdir")
        conf = GuestConfig(values, description_lines(opts.get("description")))
        try:
            self.store.write("ct", vmid, conf, create=True)
        except GuestError:
            free_volumes(self.storages, "ct", conf)
            raise
        return conf

    def vm(self, vmid: int, opts: dict[str, object]) -> GuestConfig:
        self.store.check_quorum()
        try:
            self.store.check_vmid_unused(vmid)
        except GuestError as exc:
            raise GuestError(f"unable to create VM {vmid} - {exc}") from None
        values: dict[str, str] = {}
        for key in ("name", "memory", "cores", "sockets", "ostype", "scsihw", "onboot"):
            if key in opts:
                values[key] = str(int(opts[key]) if isinstance(opts[key], bool)
                                  else opts[key])
        if "net0" in opts:
            net = property_string(str(opts["net0"]))
            model = net.pop("", "virtio")
            mac = net.pop(model, None) or random_mac()
            values["net0"] = print_property_string({model: mac, **net}, (model,))
        if "ipconfig0" in opts:
            ipconf = property_string(str(opts["ipconfig0"]))
            if "ip" in ipconf:
                self._check_address(ipconf["ip"], vmid)
            values["ipconfig0"] = str(opts["ipconfig0"])
        disks = [k for k in VM_DISK_KEYS if k in opts]
        for key in disks:
            values[key] = self._disk(str(opts[key]), vmid, "images")
        boot = [*disks[:1], *(["net0"] if "net0" in values else [])]
        if boot:
            values["boot"] = "order=" + ";".join(boot)
        values["meta"] = f"creation-qemu=9.0.2,ctime={int(time.time())}"
        values["smbios1"] = f"uuid={uuid.uuid4()}"
        values["vmgenid"] = str(uuid.uuid4())
        conf = GuestConfig(values, description_lines(opts.get("description")))
        try:
            self.store.write("vm", vmid, conf, create=True)
        except GuestError as exc:
            free_volumes(self.storages, "vm", conf)
            raise GuestError(f"unable to create VM {vmid} - {exc}") from None
        return conf
