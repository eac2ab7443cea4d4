"""The qemu test bed: the libvirt lab's own code on real libvirtd and qemu (TCG).

``QemuBed.prepare`` writes a libvirt lab file for three nodes and the gateway
(``virt_type: qemu``, ``cpu: qemu64``), starts libvirtd if none runs, makes the lab's
storage pool and puts into it, under the names the lab looks for, one small golden image
per VM (lab/qemu_bed/image.py: Debian's kernel and busybox, sshd, a watchdog feeder; no
PVE); with ``real_gateway`` the gateway's is the lab's own (lab/libvirt/gateway.py:
Debian from debootstrap, serving the NFS export). From there on, tests drive
`LibvirtLab` itself: `start` defines the networks and domains from the lab's XML on
overlays of those images and boots them, every verb is the lab's. ``teardown`` runs the
lab's own `destroy`, then removes the golden images, the pool, the key and the files,
and stops libvirtd if it was the last bed out and a bed started it.

Addresses: the management and corosync networks are libvirt networks on bridges the lab
makes on this machine, with subnets inside the lab range (198.19.170.0/24 and
198.19.171.0/24 by default); nothing else is reached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from harness.errors import LabError
from lab import run_guardian
from lab.libvirt import admin
from lab.libvirt import config as libvirt_config
from lab.libvirt.build import ensure_pool
from lab.libvirt.config import LibvirtConfig
from lab.libvirt.host import Host, libvirt_module
from lab.libvirt.lab import LibvirtLab
from lab.libvirt.plan import GATEWAY, Plan
from lab.qemu_bed import image
from lab.qemu_bed.daemons import Daemons, answers

PASSWORD_ENV = "PVECHAOS_QBED_ROOT_PASSWORD"
ISO_VERSION = "9.1-1"  # only names the golden images: no ISO is involved
URI = "qemu:///system"


def lab_yaml(*, name: str, pool_path: Path, ssh_key: Path, management: str,
             corosync: str, boot_timeout_min: int = 3) -> str:
    return f"""\
# the qemu test bed's libvirt lab (lab/qemu_bed/bed.py): small Debian VMs, no PVE
name: {name}
hosts: [{URI}]
pool: pvechaos-{name}
pool_path: {pool_path}
iso_version: "{ISO_VERSION}"
root_password_env: {PASSWORD_ENV}
ssh_key: {ssh_key}
management: {management}
corosync: {corosync}
forward: none
virt_type: qemu
node: {{memory_mib: 2048, vcpus: 1, disk_gib: 8, cpu: qemu64, watchdog: true}}
gateway: {{image: pvechaos-golden-{name}-gateway.qcow2, memory_mib: 512}}
guest: {{template: "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"}}
boot_timeout_min: {boot_timeout_min}
"""


class QemuBed:
    def __init__(self, workdir: Path, *, name: str = "qbed",
                 management: str = "198.19.170.0/24", corosync: str = "198.19.171.0/24",
                 cache: Path = Path("/var/cache/pvechaos/qemu-bed"),
                 extra_files: Mapping[str, str] | None = None,
                 real_gateway: bool = False) -> None:
        self.workdir = workdir
        self.name = name
        self.management = management
        self.corosync = corosync
        self.cache = cache
        self.extra_files = dict(extra_files or {})
        self.real_gateway = real_gateway  # the lab's own gateway build (debootstrap, NFS)
        self.daemons = Daemons()
        self.config: LibvirtConfig | None = None
        self._guarded = None  # lab/run_guardian.py's record from prepare to teardown

    @property
    def key(self) -> Path:
        return self.workdir / "id_ed25519"

    @property
    def lab_file(self) -> Path:
        return self.workdir / "lab.yaml"

    def prepare(self) -> LibvirtConfig:
        """Everything a `LibvirtLab` needs to `start`; returns its config."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._guarded is None:  # a run killed from here on: its guardian tears down
            self._guarded = run_guardian.guard(
                f"qemu-bed-{self.name}", "lab.qemu_bed.bed:teardown_recorded",
                workdir=str(self.workdir), name=self.name, management=self.management,
                corosync=self.corosync)
        if not self.key.is_file():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            f"pvechaos-{self.name}", "-f", str(self.key)], check=True,
                           timeout=30)
        self.lab_file.write_text(lab_yaml(
            name=self.name, pool_path=self.workdir / "pool", ssh_key=self.key,
            management=self.management, corosync=self.corosync))
        config = self.config = load_config(self.lab_file)
        self.daemons.start()
        unpacked = image.unpack_packages(self.cache)
        host = Host(URI)
        try:
            pool = ensure_pool(host, config)
            self._golden_images(config, unpacked)
            host.call(f"refresh pool {config.pool}", pool.refresh, 0)
            if self.real_gateway:
                from lab.libvirt.gateway import GatewayBuilder

                GatewayBuilder(config, host).build()
        finally:
            host.close()
        return config

    def _golden_images(self, config: LibvirtConfig, unpacked: image.Unpacked) -> None:
        plan = Plan(config)
        public = self.key.with_name(self.key.name + ".pub").read_text()
        prefix = config.management.prefixlen
        for machine in plan.machines():
            gateway = machine.name == GATEWAY
            if gateway and self.real_gateway:
                continue
            volume = (config.gateway.image if gateway
                      else plan.golden(machine.name, config.iso_version))
            node = image.NodeImage(
                hostname=machine.name, address=f"{machine.address}/{prefix}",
                mac=machine.management.mac, authorized_key=public,
                watchdog=not gateway, extra_files={} if gateway else self.extra_files)
            image.build_disk(config.pool_path / volume, unpacked, node)

    def lab(self) -> LibvirtLab:
        if self.config is None:
            raise LabError("the qemu test bed is not prepared", hint="call prepare() first")
        return LibvirtLab(self.config)

    def teardown(self, out=print) -> None:
        """The lab's own `destroy`, then the golden images, the pool and the files; then
        libvirtd, if this bed started it. Safe after a failed prepare."""
        try:
            if self.config is not None and answers():
                admin.destroy(self.config, out=out)
                self._remove_pool(self.config)
        finally:
            self.daemons.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._guarded = run_guardian.release(self._guarded)

    def _remove_pool(self, config: LibvirtConfig) -> None:
        libvirt = libvirt_module()
        host = Host(URI)
        try:
            try:
                pool = host.conn.storagePoolLookupByName(config.pool)
            except libvirt.libvirtError:
                return
            if pool.isActive():
                pool.refresh(0)
                for volume in pool.listAllVolumes(0):
                    volume.delete(0)
                pool.destroy()
            pool.undefine()
        finally:
            host.close()


def teardown_recorded(*, workdir: str, name: str, management: str, corosync: str) -> None:
    """``teardown`` for a run that is gone (lab/run_guardian.py): the bed as recorded,
    its lab file read again (when prepare got that far), torn down the same way."""
    bed = QemuBed(Path(workdir), name=name, management=management, corosync=corosync)
    bed.daemons.join()
    if bed.lab_file.is_file():
        bed.config = load_config(bed.lab_file)
    bed.teardown(out=print)


def load_config(lab_file: Path) -> LibvirtConfig:
    # the lab checks a root password (PVE's `pvecm add` needs it); these VMs take keys only
    return libvirt_config.load(lab_file, environ={PASSWORD_ENV: "pvechaos-qbed", **os.environ})
