"""`pvechaos-lab libvirt build-gateway`: the gateway's disk from a cloud image. qemu-img
and virt-customize are stood in for by a recorder that does what they would to the files
(and checks what they would read); the pool is the test driver's."""

from __future__ import annotations

import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.errors import ConfigError, LabError
from lab.libvirt.gateway import NETWORK_UNIT, GatewayBuilder, customize_argv, exports_line


class Tools:
    """qemu-img convert writes the copy; virt-customize checks the staged export and the
    password file it is given, then succeeds or fails as told."""

    def __init__(self, *, customize_rc: int = 0, stderr: str = "",
                 timeout: bool = False) -> None:
        self.customize_rc, self.stderr, self.timeout = customize_rc, stderr, timeout
        self.calls: list[list[str]] = []
        self.seen: dict[str, object] = {}

    def __call__(self, argv, **kwargs):
        self.calls.append(list(argv))
        assert kwargs.get("timeout"), "every step is bounded"
        if argv[:2] == ["qemu-img", "convert"]:
            Path(argv[-1]).write_bytes(Path(argv[-2]).read_bytes() + b" (copied)")
            return subprocess.CompletedProcess(argv, 0, "", "")
        assert argv[0] == "virt-customize"
        if self.timeout:
            raise subprocess.TimeoutExpired(argv, kwargs["timeout"])
        image = Path(argv[argv.index("-a") + 1])
        copied = [a.split(":")[0] for i, a in enumerate(argv) if argv[i - 1] == "--copy-in"]
        password = Path(argv[argv.index("--root-password") + 1].removeprefix("file:"))
        self.seen = {
            "image": image.read_bytes(),
            "template": tarfile.open(Path(copied[0]) / "cache" /
                                     "pvechaos-guest_1.0_amd64.tar.xz").getnames(),
            "hook_mode": stat.S_IMODE((Path(copied[1]) / "pvechaos-guest.sh").stat().st_mode),
            "password": password.read_text(),
            "password_mode": stat.S_IMODE(password.stat().st_mode),
            "staged": copied,
        }
        return subprocess.CompletedProcess(argv, self.customize_rc, "", self.stderr)


def tools_on_path(name: str) -> str | None:
    return f"/usr/bin/{name}"


@pytest.fixture
def cloud_image(tmp_path) -> Path:
    image = tmp_path / "debian-12-genericcloud-amd64.qcow2"
    image.write_bytes(b"debian cloud image")
    return image


def builder(config, host, tools, which=tools_on_path):
    return GatewayBuilder(config, host, run=tools, which=which, progress=lambda line: None)


def test_the_gateway_disk_is_customised_and_lands_in_the_pool(config, host, cloud_image,
                                                              monkeypatch):
    tools = Tools()
    refreshed = []  # libvirt learns of the new volume only when the pool is refreshed
    real_call = host.call

    def call(what, fn, *args):
        if what.startswith("refresh pool"):
            refreshed.append((what, (config.pool_path / "gw-debian12.qcow2").is_file()))
        return real_call(what, fn, *args)
    monkeypatch.setattr(host, "call", call)
    made = builder(config, host, tools).build(cloud_image)
    assert made == config.pool_path / "gw-debian12.qcow2"
    assert made.read_bytes() == b"debian cloud image (copied)"
    assert not list(config.pool_path.glob("*.partial"))
    # virt-customize worked on the copy, with the export's files staged beside it
    assert tools.seen["image"] == b"debian cloud image (copied)"
    assert "./sbin/init" in tools.seen["template"]
    assert tools.seen["hook_mode"] & 0o111
    assert tools.seen["password"] == "lab-secret-1\n" and tools.seen["password_mode"] == 0o600
    assert not any(Path(p).exists() for p in tools.seen["staged"])  # staging removed
    assert all("lab-secret-1" not in a for call in tools.calls for a in call)
    assert refreshed == [("refresh pool pvechaos", True)]  # once, with the disk in place


def test_the_customisation_installs_nfs_and_lays_out_the_export(config, tmp_path):
    argv = customize_argv(config, tmp_path / "gw.qcow2", tmp_path / "staged",
                          tmp_path / "pw")
    options = list(zip(argv[3::2], argv[4::2], strict=False))
    assert ("--install", "nfs-kernel-server") in options
    assert ("--uninstall", "cloud-init") in options
    # virt-customize runs its operations in command-line order: the export exists first
    assert argv.index("--mkdir") < argv.index("--copy-in")
    assert ("--copy-in", f"{tmp_path / 'staged' / 'template'}:/srv/pvechaos") in options
    assert ("--copy-in", f"{tmp_path / 'staged' / 'snippets'}:/srv/pvechaos") in options
    assert ("--ssh-inject", f"root:file:{config.ssh_key}.pub") in options
    assert ("--root-password", f"file:{tmp_path / 'pw'}") in options
    assert ("--write", "/etc/exports:" + exports_line(config)) in options
    assert ("--write", f"/etc/systemd/network/10-pvechaos.network:{NETWORK_UNIT}") in options
    assert ("--run-command", "systemctl enable systemd-networkd nfs-server") in options


def test_one_disk_serves_every_workers_lab(config):
    """DHCP (the management network reserves .2 for the gateway's MAC in each lab) and an
    export to the whole allowed range: nothing in the disk names one lab's subnet."""
    assert exports_line(config) == ("/srv/pvechaos 198.18.0.0/15"
                                    "(rw,sync,no_subtree_check,no_root_squash)\n")
    assert "DHCP=ipv4" in NETWORK_UNIT and "Address=" not in NETWORK_UNIT
    worker3 = config.for_worker(3)
    assert worker3.management.subnet_of(config.allowed_range)


def test_a_failed_customisation_keeps_the_old_disk_and_names_the_cause(config, host,
                                                                       cloud_image):
    config.pool_path.mkdir(parents=True, exist_ok=True)
    old = config.pool_path / "gw-debian12.qcow2"
    old.write_bytes(b"old gateway")
    tools = Tools(customize_rc=1, stderr="virt-customize: error: Temporary failure "
                  "resolving 'deb.debian.org'")
    with pytest.raises(LabError) as info:
        builder(config, host, tools).build(cloud_image)
    text = str(info.value)
    assert "virt-customize failed (exit 1)" in text and "deb.debian.org" in text
    assert "reach the image's Debian mirror" in text
    assert old.read_bytes() == b"old gateway"
    assert not list(config.pool_path.glob("*.partial"))


def test_a_customisation_that_hangs_is_bounded(config, host, cloud_image):
    with pytest.raises(LabError, match="did not finish within 30 min"):
        builder(config, host, Tools(timeout=True)).build(cloud_image)
    assert not list(config.pool_path.glob("*.partial"))


def test_missing_tools_and_a_missing_image_name_the_fix(config, host, cloud_image, tmp_path):
    with pytest.raises(LabError, match="needs virt-customize, qemu-img") as info:
        builder(config, host, Tools(), which=lambda name: None).build(cloud_image)
    assert "apt-get install guestfs-tools qemu-utils" in str(info.value)
    with pytest.raises(ConfigError, match="cloud image .*nope.qcow2 does not exist") as info:
        builder(config, host, Tools()).build(tmp_path / "nope.qcow2")
    assert "--cloud-image" in str(info.value)
