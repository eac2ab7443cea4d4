"""`pvechaos-lab libvirt build-gateway`: the gateway's disk from Debian packages.
debootstrap, openssl and chroot are stood in for by a recorder that does what they would
to the files; the disk writer (lab/libvirt/bootdisk.py) is recorded, not run; the pool is
the test driver's. tests/qemu/test_libvirt_real.py builds and boots the real thing."""

from __future__ import annotations

import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.errors import LabError
from lab.libvirt import gateway
from lab.libvirt.gateway import NETWORK_UNIT, GatewayBuilder, exports_line

HASH = "$6$salt$hashedpassword"


class Tools:
    """debootstrap lays out a root with a shadow file, a kernel and an initramfs;
    openssl hashes what it reads on stdin; chroot systemctl records what it enables."""

    def __init__(self, *, debootstrap_rc: int = 0, stderr: str = "",
                 timeout: bool = False) -> None:
        self.debootstrap_rc, self.stderr, self.timeout = debootstrap_rc, stderr, timeout
        self.calls: list[list[str]] = []
        self.stdin: list[str | None] = []

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        self.stdin.append(kwargs.get("input"))
        assert kwargs.get("timeout"), "every step is bounded"
        if argv[0] == "debootstrap":
            if self.timeout:
                raise subprocess.TimeoutExpired(argv, kwargs["timeout"])
            root = Path(argv[-2])
            (root / "etc").mkdir(parents=True)
            (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n"
                                             "daemon:*:19000:0:99999:7:::\n")
            (root / "root").mkdir()
            (root / "boot").mkdir()
            (root / "boot/vmlinuz-6.1.0-50-amd64").write_bytes(b"kernel")
            (root / "boot/initrd.img-6.1.0-50-amd64").write_bytes(b"initrd")
            return subprocess.CompletedProcess(argv, self.debootstrap_rc, "", self.stderr)
        if argv[0] == "openssl":
            return subprocess.CompletedProcess(argv, 0, HASH + "\n", "")
        assert argv[0] == "chroot"
        return subprocess.CompletedProcess(argv, 0, "", "")


class Disk:
    """bootdisk.write recorded: what the root held when it was written."""

    def __init__(self) -> None:
        self.seen: dict[str, object] = {}

    def __call__(self, out: Path, *, syslinux_root, boot, tree: Path, **kwargs) -> Path:
        export = tree / "srv/pvechaos"
        self.seen = {
            "exports": (tree / "etc/exports").read_text(),
            "network": (tree / "etc/systemd/network/10-pvechaos.network").read_text(),
            "hostname": (tree / "etc/hostname").read_text(),
            "fstab": (tree / "etc/fstab").read_text(),
            "shadow": (tree / "etc/shadow").read_text(),
            "key": (tree / "root/.ssh/authorized_keys").read_text(),
            "key_mode": stat.S_IMODE((tree / "root/.ssh/authorized_keys").stat().st_mode),
            "template": tarfile.open(export / "template/cache/"
                                     "pvechaos-guest_1.0_amd64.tar.xz").getnames(),
            "hook_mode": stat.S_IMODE((export / "snippets/pvechaos-guest.sh").stat().st_mode),
            "boot": boot, "fs": kwargs.get("fs_type"),
        }
        out.write_bytes(b"gateway disk")
        return out


@pytest.fixture
def disk(monkeypatch) -> Disk:
    recorder = Disk()
    monkeypatch.setattr(gateway.bootdisk, "write", recorder)
    monkeypatch.setattr(gateway.bootdisk, "unpack", lambda cache, packages: cache / "root")
    return recorder


def tools_on_path(name: str) -> str | None:
    return f"/usr/bin/{name}"


def builder(config, host, tools, tmp_path, which=tools_on_path):
    return GatewayBuilder(config, host, run=tools, which=which, progress=lambda line: None,
                          cache=tmp_path / "cache")


def test_the_gateway_root_is_configured_and_its_disk_lands_in_the_pool(config, host, disk,
                                                                     tmp_path, monkeypatch):
    tools = Tools()
    refreshed = []  # libvirt learns of the new volume only when the pool is refreshed
    real_call = host.call

    def call(what, fn, *args):
        if what.startswith("refresh pool"):
            refreshed.append((what, (config.pool_path / "gw-debian12.qcow2").is_file()))
        return real_call(what, fn, *args)
    monkeypatch.setattr(host, "call", call)
    made = builder(config, host, tools, tmp_path).build("http://mirror.test/debian")
    assert made == config.pool_path / "gw-debian12.qcow2"
    debootstrap = tools.calls[0]
    assert debootstrap[:2] == ["debootstrap", "--variant=minbase"]
    assert debootstrap[-3] == "bookworm" and debootstrap[-1] == "http://mirror.test/debian"
    assert "nfs-kernel-server" in debootstrap[2] and "linux-image-amd64" in debootstrap[2]
    assert tools.calls[2][:2] == ["chroot", debootstrap[-2]]
    assert tools.calls[2][2:] == ["systemctl", "enable", "systemd-networkd", "nfs-server",
                                  "ssh"]
    # the password reaches openssl on stdin, never a command line; only its hash is kept
    assert tools.stdin[1] == "lab-secret-1\n"
    assert all("lab-secret-1" not in a for call in tools.calls for a in call)
    assert disk.seen["shadow"].splitlines()[0] == f"root:{HASH}:19000:0:99999:7:::"
    assert "lab-secret-1" not in disk.seen["shadow"]
    assert disk.seen["exports"] == exports_line(config)
    assert disk.seen["network"] == NETWORK_UNIT
    assert disk.seen["hostname"] == "pvechaos-t-gw\n"
    assert disk.seen["fstab"].startswith("/dev/vda2 / ext4")
    assert disk.seen["key"] == config.ssh_key.with_name(
        config.ssh_key.name + ".pub").read_text().strip() + "\n"
    assert disk.seen["key_mode"] == 0o600
    assert "./sbin/init" in disk.seen["template"]
    assert disk.seen["hook_mode"] & 0o111
    assert disk.seen["boot"].kernel.name == "vmlinuz-6.1.0-50-amd64"
    assert "root=/dev/vda2" in disk.seen["boot"].append and disk.seen["fs"] == "ext4"
    assert not [p for p in config.pool_path.iterdir() if p.name.startswith("pvechaos-gw-")]
    assert refreshed == [("refresh pool pvechaos", True)]  # once, with the disk in place


def test_one_disk_serves_every_workers_lab(config):
    """DHCP (the management network reserves .2 for the gateway's MAC in each lab) and an
    export to the whole allowed range: nothing in the disk names one lab's subnet."""
    assert exports_line(config) == ("/srv/pvechaos 198.18.0.0/15"
                                    "(rw,sync,no_subtree_check,no_root_squash)\n")
    assert "DHCP=ipv4" in NETWORK_UNIT and "Address=" not in NETWORK_UNIT
    worker3 = config.for_worker(3)
    assert worker3.management.subnet_of(config.allowed_range)


def test_a_failed_debootstrap_keeps_the_old_disk_and_names_the_mirror(config, host, disk,
                                                                      tmp_path):
    config.pool_path.mkdir(parents=True, exist_ok=True)
    old = config.pool_path / "gw-debian12.qcow2"
    old.write_bytes(b"old gateway")
    tools = Tools(debootstrap_rc=1, stderr="E: Failed getting release file "
                  "http://mirror.test/debian/dists/bookworm/Release")
    with pytest.raises(LabError) as info:
        builder(config, host, tools, tmp_path).build("http://mirror.test/debian")
    text = str(info.value)
    assert "debootstrap failed (exit 1)" in text and "Release" in text
    assert "check that http://mirror.test/debian is reachable" in text
    assert old.read_bytes() == b"old gateway"
    assert disk.seen == {}
    assert not [p for p in config.pool_path.iterdir() if p.name.startswith("pvechaos-gw-")]


def test_a_debootstrap_that_hangs_is_bounded(config, host, disk, tmp_path):
    with pytest.raises(LabError, match="did not finish within 30 min"):
        builder(config, host, Tools(timeout=True), tmp_path).build()


def test_missing_tools_name_the_fix(config, host, disk, tmp_path):
    with pytest.raises(LabError, match="needs debootstrap, chroot") as info:
        builder(config, host, Tools(), tmp_path, which=lambda name: None).build()
    assert "apt-get install debootstrap" in str(info.value)
