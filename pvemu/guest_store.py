"""Guest configs in /etc/pve, read, written and moved through the node's `EtcPve`.

Ownership (pve-model.md §14.4): a guest belongs to the node whose directory
nodes/<node>/lxc/<id>.conf (CT) or nodes/<node>/qemu-server/<id>.conf (VM) holds its
config; VMIDs are unique cluster-wide; moving a guest renames its config into another
node's directory.

Mirrors PVE::AbstractConfig's config_file/load_config/write_config (PVE::LXC::Config,
PVE::QemuConfig), PVE::Cluster::check_vmid_unused, the config rename of a migration
(PVE::QemuMigrate / PVE::LXC::Migrate) and of HA's steal, and
PVE::HA::Config::vm_is_ha_managed. The quorum rule and atomic writes are EtcPve's; its
errors (CfsError) come out here worded the same, as GuestError.
"""

from __future__ import annotations

import re

from pvemu.etc_pve import CfsError, EtcPve
from pvemu.guest_config import KIND_DIR, LABEL, GuestConfig, GuestError, parse_sid
from pvemu.ha import config as ha_config


class GuestStore:
    """The guest configs of the cluster as one node (``node``) sees them."""

    def __init__(self, node: str, etc: EtcPve) -> None:
        self.node = node
        self.etc = etc

    # -- where configs live ----------------------------------------------------------
    def kind_dir(self, kind: str, node: str | None = None) -> str:
        return f"nodes/{node or self.node}/{KIND_DIR[kind]}"

    def cfs_path(self, kind: str, vmid: int | str, node: str | None = None) -> str:
        return f"{self.kind_dir(kind, node)}/{vmid}.conf"

    def node_names(self) -> list[str]:
        return self.etc.listdir("nodes")

    def config_stems(self, kind: str, node: str | None = None) -> list[str]:
        """The names (without `.conf`) of the configs in a node's kind directory."""
        return [name[:-len(".conf")] for name in self.etc.listdir(self.kind_dir(kind, node))
                if name.endswith(".conf") and not name.startswith(".")]

    def locate(self, vmid: int) -> tuple[str, str] | None:
        """(node, kind) of the guest's config anywhere in the cluster."""
        for node in self.node_names():
            for kind in KIND_DIR:
                if self.etc.exists(self.cfs_path(kind, vmid, node)):
                    return node, kind
        return None

    def config_node(self, sid: str) -> str | None:
        """The node whose directory holds the config of ``sid``, None if none does."""
        kind, vmid = parse_sid(sid)
        where = self.locate(vmid)
        return where[0] if where and where[1] == kind else None

    # -- reading and writing ---------------------------------------------------------
    def load(self, kind: str, vmid: int) -> GuestConfig:
        """This node's config of the guest (PVE::AbstractConfig::load_config)."""
        try:
            text = self.etc.read(self.cfs_path(kind, vmid))
        except CfsError as exc:
            raise GuestError(str(exc)) from None
        if text is None:
            raise GuestError(f"Configuration file '{self.cfs_path(kind, vmid)}' does not "
                             "exist")
        return GuestConfig.parse(text)

    def read_config(self, kind: str, stem: str, node: str | None = None
                    ) -> GuestConfig | None:
        """A config found by listing, None when it is gone or cannot be read."""
        try:
            text = self.etc.read(self.cfs_path(kind, stem, node))
        except CfsError:
            return None
        return None if text is None else GuestConfig.parse(text)

    def write(self, kind: str, vmid: int, conf: GuestConfig, *, create: bool = False
              ) -> None:
        """Replace this node's config (``create``: it must not exist yet)."""
        try:
            self.etc.write(self.cfs_path(kind, vmid), conf.render(), create=create)
        except FileExistsError:
            raise GuestError(f"{LABEL[kind]} {vmid} already exists on node "
                             f"'{self.node}'") from None
        except CfsError as exc:
            raise GuestError(str(exc)) from None

    def remove(self, kind: str, vmid: int) -> None:
        try:
            self.etc.remove(self.cfs_path(kind, vmid))
        except CfsError as exc:
            raise GuestError(str(exc)) from None

    def move(self, kind: str, vmid: int, target: str, source: str | None = None) -> None:
        """Rename the config into target's directory (what migration and HA's steal do)."""
        if not self.etc.is_dir(f"nodes/{target}"):
            raise GuestError(f"no such cluster node '{target}'")
        try:
            self.etc.mkdir(self.kind_dir(kind, target))
            self.etc.rename(self.cfs_path(kind, vmid, source),
                            self.cfs_path(kind, vmid, target))
        except FileNotFoundError:
            raise GuestError(f"Configuration file '{self.cfs_path(kind, vmid, source)}' "
                             "does not exist") from None
        except CfsError as exc:
            raise GuestError(str(exc)) from None

    # -- rules -----------------------------------------------------------------------
    def quorate(self) -> bool:
        return self.etc.quorate()

    def check_quorum(self) -> None:
        """PVE::Cluster::check_cfs_quorum, worded as PVE words it."""
        try:
            self.etc.check_quorum()
        except CfsError as exc:
            raise GuestError(str(exc)) from None

    def check_vmid_unused(self, vmid: int) -> None:
        where = self.locate(vmid)
        if where:
            raise GuestError(f"{LABEL[where[1]]} {vmid} already exists on node "
                             f"'{where[0]}'")

    def ha_managed(self, sid: str) -> bool:
        """The guest is listed in the HA resources (PVE::HA::Config::vm_is_ha_managed)."""
        try:
            text = self.etc.read(ha_config.RESOURCES_CFG)
        except CfsError:
            return False
        if text is None:
            return False
        kind, vmid = parse_sid(sid)
        return re.search(rf"^{kind}:\s*{vmid}\s*$", text, re.MULTILINE) is not None
