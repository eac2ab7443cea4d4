"""`pvechaos-lab libvirt build-gateway`: the gateway VM's disk, built from Debian packages.

debootstrap (minbase) makes a Debian 12 root from the package registry with systemd,
udev, Debian's kernel, openssh-server and nfs-kernel-server. Into that directory go: the
export with the test guest's template and hookscript in a PVE storage's layout,
/etc/exports, DHCP on its NIC with systemd-networkd (the management network reserves
`.2` for the gateway's MAC in every lab, so one disk serves every xdist worker's lab),
root's password (hashed with `openssl passwd -6`, read from stdin) and the harness's SSH
key, host name and fstab; `systemctl enable` (offline, in debootstrap's chroot) turns on
networkd, NFS and SSH. lab/libvirt/bootdisk.py then writes the tree as partition 2 of a
disk whose partition 1 boots Debian's kernel and initramfs with syslinux. Nothing is
mounted. The result is put into the pool under the name the config gives; each lab then
boots an overlay of it.

The qemu test bed (tests/qemu/test_libvirt_real.py) builds it and boots it: DHCP gives it
`.2`, nfs-server runs, the export is listed to the allowed range with the template in it,
and a node reaches its NFS port.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import LabError
from lab.guest_template import write_storage_files
from lab.libvirt import bootdisk
from lab.libvirt.build import ensure_pool
from lab.libvirt.config import LibvirtConfig
from lab.libvirt.host import Host

SUITE = "bookworm"  # Debian 12
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("systemd-sysv", "udev", "linux-image-amd64", "openssh-server",
            "nfs-kernel-server", "iproute2", "kmod")
SERVICES = ("systemd-networkd", "nfs-server", "ssh")
DEBOOTSTRAP_TIMEOUT_S = 30 * 60  # downloads and unpacks about 150 MB of packages
CACHE = Path("/var/cache/pvechaos/gateway")
APPEND = "root=/dev/vda2 ro console=ttyS0,115200 net.ifnames=0"
TOOLS = ("debootstrap", "chroot", "openssl", "mke2fs", "mkfs.vfat", "mcopy", "sfdisk",
         "qemu-img", "apt-get")


def exports_line(config: LibvirtConfig) -> str:
    """/etc/exports: the nodes may mount it read-write as root (PVE creates its
    directories and the containers' files as root); every lab's management subnet lies
    inside ``allowed_range``."""
    return (f"{config.gateway.export} {config.allowed_range}"
            "(rw,sync,no_subtree_check,no_root_squash)\n")


# systemd-networkd: DHCP on the one Ethernet NIC, whatever its name
NETWORK_UNIT = "[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n"


def debootstrap_argv(root: Path, mirror: str, cache: Path) -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            f"--cache-dir={cache}", SUITE, str(root), mirror]


def configure_root(root: Path, config: LibvirtConfig, password_hash: str) -> None:
    """Everything the gateway needs written into its root directory (no chroot)."""
    def write(path: str, text: str, mode: int = 0o644) -> None:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    name = f"pvechaos-{config.name}-gw"
    write("/etc/hostname", name + "\n")
    write("/etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
    write("/etc/fstab", "/dev/vda2 / ext4 errors=remount-ro 0 1\n")
    write("/etc/exports", exports_line(config))
    write("/etc/systemd/network/10-pvechaos.network", NETWORK_UNIT)
    public_key = config.ssh_key.with_name(config.ssh_key.name + ".pub").read_text()
    write("/root/.ssh/authorized_keys", public_key.strip() + "\n", 0o600)
    (root / "root").chmod(0o700)
    (root / "root/.ssh").chmod(0o700)
    write_storage_files(root / config.gateway.export.lstrip("/"),
                        storage_id=config.guest.storage_id, port=config.guest.port)
    shadow = root / "etc/shadow"
    lines = shadow.read_text().splitlines()
    if not any(line.startswith("root:") for line in lines):
        raise LabError(f"{shadow} has no root entry (debootstrap did not finish?)")
    shadow.write_text("\n".join(
        f"root:{password_hash}:{line.split(':', 2)[2]}" if line.startswith("root:")
        else line for line in lines) + "\n")


class GatewayBuilder:
    def __init__(self, config: LibvirtConfig, host: Host, *,
                 run: Callable[..., Any] = subprocess.run,
                 which: Callable[[str], str | None] = shutil.which,
                 progress: Callable[[str], None] = print, cache: Path = CACHE) -> None:
        self.config, self.host = config, host
        self.run, self.which, self.progress = run, which, progress
        self.cache = cache

    @property
    def image(self) -> Path:
        return self.config.pool_path / self.config.gateway.image

    def check_prerequisites(self) -> None:
        missing = [t for t in TOOLS if self.which(t) is None]
        if missing:
            raise LabError(f"building the gateway needs {', '.join(missing)}",
                           hint="apt-get install debootstrap openssl e2fsprogs dosfstools "
                                "mtools fdisk qemu-utils (bash .ci/setup installs them)")

    def build(self, mirror: str = DEFAULT_MIRROR) -> Path:
        """The gateway's disk in the pool (replacing an older one only once the new one is
        complete); returns its path."""
        self.check_prerequisites()
        pool = ensure_pool(self.host, self.config)
        self.cache.mkdir(parents=True, exist_ok=True)
        (self.cache / "debs").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="pvechaos-gw-",
                                         dir=self.config.pool_path) as tmp:
            root = Path(tmp) / "root"
            self.progress(f"pvechaos: debootstrap {SUITE} from {mirror} with "
                          f"{', '.join(PACKAGES)} (minutes: about 150 MB of packages)")
            self._step("debootstrap", debootstrap_argv(root, mirror, self.cache / "debs"),
                       DEBOOTSTRAP_TIMEOUT_S, hint=f"check that {mirror} is reachable "
                       "from this host (or give --mirror)")
            password_hash = self._step(
                "hashing the root password", ["openssl", "passwd", "-6", "-stdin"], 60,
                input_text=self.config.root_password + "\n").strip()
            configure_root(root, self.config, password_hash)
            self._step("enabling networkd, NFS and SSH",
                       ["chroot", str(root), "systemctl", "enable", *SERVICES], 120)
            kernels = sorted((root / "boot").glob("vmlinuz-*"))
            initrds = sorted((root / "boot").glob("initrd.img-*"))
            if not kernels or not initrds:
                raise LabError(f"debootstrap left no kernel or initramfs in {root}/boot")
            syslinux = bootdisk.unpack(self.cache / "syslinux", bootdisk.SYSLINUX_PACKAGES)
            self.progress(f"pvechaos: writing {self.image.name}")
            bootdisk.write(self.image, syslinux_root=syslinux, tree=root, fs_type="ext4",
                           label="pvechaos-gw", spare_mib=256,
                           boot=bootdisk.Boot(kernels[-1], initrds[-1], APPEND))
        self.host.call(f"refresh pool {self.config.pool}", pool.refresh, 0)
        self.progress(f"pvechaos: gateway disk {self.image} ready")
        return self.image

    def _step(self, what: str, argv: list[str], timeout_s: float, *,
              hint: str | None = None, input_text: str | None = None) -> str:
        try:
            done = self.run(argv, capture_output=True, text=True, timeout=timeout_s,
                            input=input_text)
        except subprocess.TimeoutExpired:
            raise LabError(f"{what} did not finish within {timeout_s / 60:g} min",
                           hint="run the command by hand to see where it hangs: "
                                + " ".join(argv[:3])) from None
        if done.returncode != 0:
            raise LabError(f"{what} failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-600:]}", hint=hint)
        return done.stdout
