"""A small bootable VM disk made from Debian packages: the qemu test bed's "golden image".

SeaBIOS boots syslinux (Debian's syslinux, syslinux-common) from a FAT partition; syslinux
loads Debian's kernel (linux-image-amd64) and an initramfs that is the whole system:

- busybox (busybox-static) as init and userland, with `acpid` powering the VM off on the
  ACPI power button (what libvirt's `shutdown` presses);
- this machine's OpenSSH server and GNU `date` (Debian's openssh-server and coreutils,
  with the libraries they link), root logging in with the lab's key;
- the kernel modules for virtio-net, the i6300esb watchdog and the power button;
- a watchdog feeder (`pvechaos-watchdog-feeder`) standing for PVE's watchdog-mux: it
  arms /dev/watchdog with a 10 s timeout (watchdog-mux's, pve-model §9.3) and feeds it
  every second, writing the time of each feed to /run/watchdog-fed;
- an `ifreload` that applies the static `address` stanzas of /etc/network/interfaces.d
  (the subset of ifupdown2 the libvirt lab's corosync NIC setup writes);
- optional extra files (the BMC tests' `pvecm` stand-in).

The management address and host name are written into each node's image, as PVE's
installer writes them into each golden image. Nothing is mounted and nothing is
downloaded beyond Debian's package registry: the FAT partition is written with mtools and
the partition table with sfdisk, all into plain files.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import LabError
from lab.libvirt import bootdisk
from lab.libvirt.bootdisk import run

PACKAGES = ("busybox-static",)
KERNEL_META = "linux-image-amd64"
# virtio_pci brings virtio and its rings; virtio_blk and ext4 (which mounts ext2) the
# disk that keeps /etc (ext4 asks the crypto API for crc32c whatever the features);
# i6300esb is the watchdog libvirt gives a node;
# button + evdev make the ACPI power button an input event busybox acpid reads
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "crc32c_generic", "ext4", "i6300esb",
           "button", "evdev")
WATCHDOG_TIMEOUT_S = 10  # watchdog-mux's timeout (pve-model §9.3)
# what PVE's own tools would be where the lab's scripts call them: OpenSSH's server,
# bash as root's shell (Debian's busybox-static runs its own applets before PATH, so
# under its ash `date` would be busybox's whatever PATH says), GNU date
# (`date -s @SECONDS.FRACTION`, `%N`), iproute2's ip (its `-o link` layout)
HOST_BINARIES = ("/usr/sbin/sshd", "/bin/bash", "/bin/date", "/bin/ip")


# -- Debian packages ------------------------------------------------------------------
@dataclass(frozen=True)
class Unpacked:
    root: Path  # the packages' files, unpacked side by side
    kernel_version: str

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.kernel_version}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.kernel_version


def unpack_packages(cache: Path) -> Unpacked:
    """Debian's kernel, busybox and syslinux, downloaded once into ``cache`` (apt-get
    download: the package registry only) and unpacked there."""
    depends = run(["apt-cache", "depends", KERNEL_META], "apt-cache depends")
    kernel = [line.split()[-1] for line in depends.splitlines()
              if line.strip().startswith("Depends: linux-image-")]
    if not kernel:
        raise LabError(f"apt-cache names no kernel package for {KERNEL_META}",
                       hint="apt-get update")
    root = bootdisk.unpack(cache, (kernel[0], *PACKAGES, *bootdisk.SYSLINUX_PACKAGES))
    return Unpacked(root, kernel[0].removeprefix("linux-image-"))


def _depends(module: Path) -> list[str]:
    """The ``depends=`` entry of a module's .modinfo section (what depmod reads)."""
    data = module.read_bytes()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    value = data[at + 9:data.index(b"\0", at + 9)].decode()
    return [name for name in value.split(",") if name]


def module_order(modules_dir: Path, wanted: tuple[str, ...] = MODULES) -> list[str]:
    """Module paths (relative to ``modules_dir``) in an order insmod can load them:
    each module's dependencies before it, each once."""
    by_name = {p.name.removesuffix(".ko").replace("-", "_"): p
               for p in modules_dir.rglob("*.ko")}
    order: list[str] = []

    def visit(name: str, depth: int = 0) -> None:
        path = by_name.get(name.replace("-", "_"))
        if path is None:
            raise LabError(f"kernel module {name} is not in {modules_dir} (built in, or "
                           "another kernel flavour?)")
        rel = str(path.relative_to(modules_dir))
        if rel in order or depth > 32:
            return
        for dep in _depends(path):
            visit(dep, depth + 1)
        order.append(rel)

    for name in wanted:
        visit(name)
    return order


# -- the initramfs --------------------------------------------------------------------
@dataclass(frozen=True)
class NodeImage:
    """What differs between two VMs' images."""

    hostname: str
    address: str  # management address with prefix, e.g. 198.19.3.11/24
    mac: str  # the management NIC's MAC (the address goes on the NIC with it)
    authorized_key: str  # the lab's public key, one line
    watchdog: bool = True
    extra_files: Mapping[str, str] = field(default_factory=dict)  # path -> text (0755)


INITTAB = """\
::sysinit:/etc/rcS
::respawn:/usr/sbin/sshd -D -e
::respawn:/bin/busybox acpid -f -c /etc/acpi
::ctrlaltdel:/bin/busybox reboot
::shutdown:/bin/busybox sync
"""

RC_S = """\
#!/bin/busybox sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /var/log /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs run /run
mkdir -p /run/sshd
while read -r module args; do insmod "/lib/modules/$module" $args; done < /etc/modules-order
# /etc lives on the disk's second partition, as an installed system's does: what the lab
# writes there (the corosync NIC, /etc/hosts) outlasts a reboot and a power cut (`sync`:
# on disk once written; an installed system commits within seconds, long before a cut)
mount -t ext2 -o sync /dev/vda2 /persist && mount --bind /persist/etc /etc
hostname -F /etc/hostname
ip link set lo up
for dev in /sys/class/net/*; do ip link set "${dev##*/}" up; done
mgmt=$(ip -o link | awk -F': ' 'tolower($0) ~ /@MAC@/ {print $2; exit}')
ip addr add @ADDRESS@ dev "$mgmt"
ifreload -a  # what the boot's networking service applies: /etc/network/interfaces.d
[ -e /dev/watchdog ] && [ -x /usr/sbin/pvechaos-watchdog-feeder ] && \\
    setsid /usr/sbin/pvechaos-watchdog-feeder </dev/null >/dev/null 2>&1 &
echo "pvechaos test bed: $(hostname) up, $(cat /proc/sys/kernel/random/boot_id)" > /dev/console
"""

FEEDER = f"""\
#!/bin/bash
# Feeds /dev/watchdog every second, as PVE's watchdog-mux does, with its {WATCHDOG_TIMEOUT_S} s
# timeout (set as the module's heartbeat). Each feed's time goes to /run/watchdog-fed.
# Killed (its pid is in /run/watchdog-feeder.pid), it does not close the device cleanly:
# the watchdog then fires.
exec 3>/dev/watchdog || exit 1
echo $$ > /run/watchdog-feeder.pid
while :; do
    printf 1 >&3 && date +%s.%N > /run/watchdog-fed.new && \\
        mv /run/watchdog-fed.new /run/watchdog-fed
    sleep 1
done
"""

IFRELOAD = """\
#!/bin/sh
# The test bed's ifreload: applies each `iface X inet static` + `address A/P` stanza of
# /etc/network/interfaces.d (what ifupdown2 does for them); other options are ignored.
for f in /etc/network/interfaces.d/*; do
    [ -f "$f" ] || continue
    awk '$1 == "iface" {dev = $2} $1 == "address" && dev {print dev, $2}' "$f"
done | while read -r dev address; do
    ip link set "$dev" up && ip addr replace "$address" dev "$dev" || exit 1
done
"""

POWER_BUTTON = "#!/bin/sh\nexec /bin/busybox poweroff\n"

SSHD_CONFIG = """\
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/sshd.pid
SetEnv PATH=/usr/sbin:/usr/bin:/sbin:/bin
Subsystem sftp internal-sftp
"""


def _libraries(binary: str) -> list[str]:
    out = run(["ldd", binary], f"ldd {binary}")
    found = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1:
            path = parts[parts.index("=>") + 1]
            if path.startswith("/"):
                found.append(path)
        elif parts and parts[0].startswith("/"):
            found.append(parts[0])  # the dynamic loader
    return found


def _copy(src: str | Path, tree: Path, dest: str | None = None) -> None:
    target = tree / (dest or str(src)).lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), target)


def _write(tree: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = tree / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def initramfs_tree(tree: Path, unpacked: Unpacked, node: NodeImage) -> None:
    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root/.ssh", "proc", "sys",
                "dev", "run", "tmp", "var/log", "etc/network/interfaces.d", "persist"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    _copy(unpacked.root / "bin/busybox", tree, "/bin/busybox")
    (tree / "init").symlink_to("bin/busybox")
    for binary in HOST_BINARIES:
        if not Path(binary).is_file():
            raise LabError(f"{binary} is missing on this machine (the test bed copies it "
                           "into its VMs)",
                           hint="apt-get install openssh-server bash coreutils iproute2")
        _copy(binary, tree)
        for lib in _libraries(binary):
            _copy(lib, tree)
    applets = run([str(unpacked.root / "bin/busybox"), "--list-full"], "busybox --list-full")
    ours = {Path(binary).name for binary in HOST_BINARIES}
    for applet in applets.split():
        link = tree / applet
        if link.name not in ours and not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    modules = module_order(unpacked.modules)
    lines = []
    for rel in modules:
        _copy(unpacked.modules / rel, tree, f"/lib/modules/{rel}")
        args = f" heartbeat={WATCHDOG_TIMEOUT_S}" if rel.endswith("/i6300esb.ko") else ""
        lines.append(f"{rel}{args}")
    _write(tree, "/etc/modules-order", "\n".join(lines) + "\n")
    _write(tree, "/etc/inittab", INITTAB)
    _write(tree, "/etc/rcS", RC_S.replace("@MAC@", node.mac.lower())
           .replace("@ADDRESS@", node.address), 0o755)
    _write(tree, "/etc/hostname", node.hostname + "\n")
    _write(tree, "/etc/hosts", f"127.0.0.1 localhost\n{node.address.split('/')[0]} "
           f"{node.hostname}\n")
    _write(tree, "/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
           "sshd:x:100:65534::/run/sshd:/bin/false\n")
    _write(tree, "/etc/shadow", "root::19000:0:99999:7:::\nsshd:!:19000::::::\n", 0o600)
    _write(tree, "/etc/group", "root:x:0:\nnogroup:x:65534:\n")
    _write(tree, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\n"
           "hosts: files\n")
    _write(tree, "/etc/ssh/sshd_config", SSHD_CONFIG)
    _write(tree, "/root/.ssh/authorized_keys", node.authorized_key.strip() + "\n", 0o600)
    (tree / "root").chmod(0o700)
    _write(tree, "/usr/sbin/ifreload", IFRELOAD, 0o755)
    _write(tree, "/etc/acpi/PWRF/00000080", POWER_BUTTON, 0o755)
    if node.watchdog:
        _write(tree, "/usr/sbin/pvechaos-watchdog-feeder", FEEDER, 0o755)
    for path, text in node.extra_files.items():
        _write(tree, path, text, 0o755)
    key = tree / "etc/ssh/ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node.hostname, "-f",
          str(key)], "ssh-keygen", hint="apt-get install openssh-client")


def newc_archive(tree: Path) -> bytes:
    """``tree`` as a gzip'd cpio archive in the kernel's initramfs format (newc)."""
    chunks: list[bytes] = []
    ino = 1

    def entry(name: str, st: os.stat_result, data: bytes) -> None:
        nonlocal ino
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08X}" for v in (
            ino, st.st_mode, 0, 0, 1, int(st.st_mtime), len(data), 0, 0, 0, 0,
            len(encoded), 0))
        ino += 1
        chunks.append(header.encode() + encoded)
        chunks.append(b"\0" * ((4 - (110 + len(encoded)) % 4) % 4))
        chunks.append(data)
        chunks.append(b"\0" * ((4 - len(data) % 4) % 4))

    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath) / name
            rel = str(path.relative_to(tree))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                entry(rel, st, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                entry(rel, st, b"")
            else:
                entry(rel, st, path.read_bytes())
    trailer = os.stat_result((0,) * 10)
    entry("TRAILER!!!", trailer, b"")
    return gzip.compress(b"".join(chunks), compresslevel=6)


# -- the disk -------------------------------------------------------------------------
APPEND = "console=ttyS0,115200 panic=10 mitigations=off"


def build_disk(out: Path, unpacked: Unpacked, node: NodeImage) -> Path:
    """Writes ``out``: a qcow2 disk SeaBIOS boots into the node described by ``node``;
    its /etc on partition 2 (rcS mounts it over the initramfs's)."""
    with tempfile.TemporaryDirectory(prefix="pvechaos-image-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        initramfs_tree(tree, unpacked, node)
        (work / "initrd.gz").write_bytes(newc_archive(tree))
        (work / "etc-root").mkdir()
        shutil.copytree(tree / "etc", work / "etc-root" / "etc", symlinks=True)
        return bootdisk.write(out, syslinux_root=unpacked.root, boot=bootdisk.Boot(
            unpacked.vmlinuz, work / "initrd.gz", APPEND), tree=work / "etc-root",
            label="pvechaos-etc")
