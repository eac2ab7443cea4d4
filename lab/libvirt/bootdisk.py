"""A BIOS-bootable qcow2 disk written into plain files: nothing mounted, no loop devices.

Partition 1 (FAT16, bootable) holds syslinux (Debian's syslinux, syslinux-common, installed
with mtools), a kernel, an initramfs and syslinux.cfg; partition 2 is an ext2/ext4
filesystem made by `mke2fs -d` from a directory. The MBR takes syslinux's mbr.bin.
Used by the gateway build (partition 2 is its Debian root) and by the qemu test bed (its
nodes keep /etc there).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import LabError

PART_OFFSET = 1 << 20  # partition 1 starts at 1 MiB (sector 2048)
SYSLINUX_PACKAGES = ("syslinux", "syslinux-common")


def run(argv: Sequence[str], what: str, *, cwd: Path | None = None, timeout_s: float = 600,
        hint: str | None = None, input_text: str | None = None) -> str:
    """One command; its failure a LabError saying what was attempted and the fix."""
    try:
        done = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True,
                              timeout=timeout_s, input=input_text)
    except FileNotFoundError:
        raise LabError(f"{what}: {argv[0]} is not installed",
                       hint=hint or "bash .ci/setup installs what it needs") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: {argv[0]} did not finish within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        raise LabError(f"{what} failed (exit {done.returncode}): "
                       f"{(done.stderr or done.stdout).strip()[-400:]}", hint=hint)
    return done.stdout


def unpack(cache: Path, packages: Sequence[str]) -> Path:
    """Debian packages downloaded once into ``cache`` (`apt-get download`: the package
    registry only) and unpacked side by side under ``cache/root``."""
    root, done = cache / "root", cache / "root.complete"
    wanted = " ".join(packages)
    if not done.is_file() or done.read_text().splitlines()[0] != wanted:
        debs = cache / "debs"
        shutil.rmtree(debs, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        debs.mkdir(parents=True)
        run(["apt-get", "download", *packages], "apt-get download", cwd=debs,
            hint="apt-get update (the package lists may be stale), and check that "
                 "Debian's registry is reachable")
        for deb in sorted(debs.glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(root)], f"unpacking {deb.name}")
        done.write_text(wanted + "\n")
    return root


@dataclass(frozen=True)
class Boot:
    kernel: Path
    initrd: Path
    append: str  # the kernel's command line


def write(out: Path, *, syslinux_root: Path, boot: Boot, tree: Path, fs_type: str = "ext2",
          label: str = "pvechaos", boot_mib: int = 48, spare_mib: int = 16) -> Path:
    """Writes ``out`` (qcow2): syslinux booting ``boot`` from partition 1, and ``tree``'s
    contents as partition 2 (its size: what the tree holds, plus ``spare_mib``)."""
    with tempfile.TemporaryDirectory(prefix="pvechaos-disk-") as tmp:
        work = Path(tmp)
        cfg = work / "syslinux.cfg"
        cfg.write_text("DEFAULT linux\nTIMEOUT 0\nPROMPT 0\nLABEL linux\n"
                       f"  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND {boot.append}\n")
        part = work / "boot.img"
        run(["mkfs.vfat", "-n", "PVECHAOS", "-C", str(part), str(boot_mib * 1024)],
            "mkfs.vfat", hint="apt-get install dosfstools")
        for src, name in ((boot.kernel, "vmlinuz"), (boot.initrd, "initrd.img"),
                          (cfg, "syslinux.cfg")):
            run(["mcopy", "-i", str(part), str(src), f"::{name}"], f"mcopy {name}",
                hint="apt-get install mtools")
        run([str(syslinux_root / "usr/bin/syslinux"), "--install", str(part)],
            "syslinux --install", hint="apt-get install mtools")
        second = work / "root.img"
        size_mib = _tree_mib(tree) + spare_mib
        run(["mke2fs", "-q", "-t", fs_type, "-L", label, "-d", str(tree), str(second),
             f"{size_mib}M"], "mke2fs", hint="apt-get install e2fsprogs")
        disk = work / "disk.img"
        boot_size = part.stat().st_size
        with disk.open("wb") as f:
            f.truncate(PART_OFFSET + boot_size + second.stat().st_size)
        run(["sfdisk", "--quiet", str(disk)], "sfdisk", hint="apt-get install fdisk",
            input_text=(f"label: dos\nstart=2048, size={boot_size // 512}, type=e, "
                        f"bootable\nstart={2048 + boot_size // 512}, type=83\n"))
        mbr = (syslinux_root / "usr/lib/syslinux/mbr/mbr.bin").read_bytes()[:440]
        with disk.open("r+b") as f:
            f.write(mbr)
            for offset, src in ((PART_OFFSET, part), (PART_OFFSET + boot_size, second)):
                f.seek(offset)
                with src.open("rb") as p:
                    shutil.copyfileobj(p, f)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(disk), str(partial)],
            "qemu-img convert", hint="apt-get install qemu-utils")
        partial.replace(out)
    return out


def _tree_mib(tree: Path) -> int:
    total = 0
    for path in tree.rglob("*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        total += max(st.st_size, 4096) if not path.is_symlink() else 4096
    return int(total * 1.15) // (1 << 20) + 8  # ext metadata, inode tables
