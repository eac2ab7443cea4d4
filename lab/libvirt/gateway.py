"""`pvechaos-lab libvirt build-gateway`: the gateway VM's disk, from a Debian cloud image.

virt-customize (guestfs-tools) edits a copy of the image offline, before it ever boots:
nfs-kernel-server installed from the image's own apt sources (this one step needs the
runner to reach a Debian mirror), the export with the test guest's template and
hookscript in a PVE storage's layout, DHCP on its NIC (systemd-networkd; the management
network's reservation for the gateway's MAC gives it `.2` of whichever lab boots it, so
one disk serves every xdist worker's lab), root's password and the harness's SSH key
for a look inside, cloud-init removed (nothing would configure it). The result is put
into the pool under the name the config gives; each lab then boots an overlay of it.

Written from virt-customize's manual; not yet run against a real cloud image here (this
machine has no KVM): the network and package steps are the guesses to check first.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, LabError
from lab.guest_template import write_storage_files
from lab.libvirt.build import ensure_pool
from lab.libvirt.config import LibvirtConfig
from lab.libvirt.host import Host

PACKAGES = ("nfs-kernel-server",)
CUSTOMIZE_TIMEOUT_S = 30 * 60  # a package install in a TCG appliance can be slow


def exports_line(config: LibvirtConfig) -> str:
    """/etc/exports: the nodes may mount it read-write as root (PVE creates its
    directories and the containers' files as root); every lab's management subnet lies
    inside ``allowed_range``."""
    return (f"{config.gateway.export} {config.allowed_range}"
            "(rw,sync,no_subtree_check,no_root_squash)\n")


# systemd-networkd: DHCP on the one Ethernet NIC, whatever its name
NETWORK_UNIT = "[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\n"


def customize_argv(config: LibvirtConfig, image: Path, staged: Path,
                   password_file: Path) -> list[str]:
    """virt-customize's command line; ``staged`` holds the export's files, the password
    is read from a file (never on a command line other users can see)."""
    export = config.gateway.export
    public_key = config.ssh_key.with_name(config.ssh_key.name + ".pub")
    return [
        "virt-customize", "-a", str(image), "--format", "qcow2",
        "--hostname", f"pvechaos-{config.name}-gw",
        "--install", ",".join(PACKAGES),
        "--uninstall", "cloud-init",
        "--mkdir", export,
        "--copy-in", f"{staged / 'template'}:{export}",
        "--copy-in", f"{staged / 'snippets'}:{export}",
        "--write", f"/etc/exports:{exports_line(config)}",
        "--write", f"/etc/systemd/network/10-pvechaos.network:{NETWORK_UNIT}",
        "--run-command", "systemctl enable systemd-networkd nfs-server",
        "--root-password", f"file:{password_file}",
        "--ssh-inject", f"root:file:{public_key}",
    ]


class GatewayBuilder:
    def __init__(self, config: LibvirtConfig, host: Host, *,
                 run: Callable[..., Any] = subprocess.run,
                 which: Callable[[str], str | None] = shutil.which,
                 progress: Callable[[str], None] = print) -> None:
        self.config, self.host = config, host
        self.run, self.which, self.progress = run, which, progress

    @property
    def image(self) -> Path:
        return self.config.pool_path / self.config.gateway.image

    def check_prerequisites(self, cloud_image: Path) -> None:
        if not cloud_image.is_file():
            raise ConfigError(f"the cloud image {cloud_image} does not exist",
                              hint="download a Debian 12 generic cloud image (qcow2) onto "
                                   "this host and give its path with --cloud-image")
        missing = [t for t in ("virt-customize", "qemu-img") if self.which(t) is None]
        if missing:
            raise LabError(f"building the gateway needs {', '.join(missing)}",
                           hint="apt-get install guestfs-tools qemu-utils")

    def build(self, cloud_image: Path) -> Path:
        """The gateway's disk in the pool (replacing an older one only once the new one is
        complete); returns its path."""
        cloud_image = Path(cloud_image)
        self.check_prerequisites(cloud_image)
        pool = ensure_pool(self.host, self.config)
        partial = self.image.with_name(self.image.name + ".partial")
        try:
            with tempfile.TemporaryDirectory(prefix="pvechaos-gw-") as tmp:
                staged = Path(tmp) / "export"
                write_storage_files(staged, storage_id=self.config.guest.storage_id,
                                    port=self.config.guest.port)
                password_file = Path(tmp) / "root-password"
                password_file.touch(mode=0o600)
                password_file.write_text(self.config.root_password + "\n")
                self._step("copying the cloud image", ["qemu-img", "convert", "-O", "qcow2",
                                                       str(cloud_image), str(partial)], 600)
                self.progress(f"pvechaos: customising {partial.name} (installs "
                              f"{', '.join(PACKAGES)} from the image's Debian mirror; "
                              "a few minutes)")
                self._step("virt-customize", customize_argv(self.config, partial, staged,
                                                            password_file),
                           CUSTOMIZE_TIMEOUT_S,
                           hint="virt-customize needs the runner to reach the image's "
                                "Debian mirror (it installs nfs-kernel-server)")
            partial.replace(self.image)
        finally:
            partial.unlink(missing_ok=True)
        self.host.call(f"refresh pool {self.config.pool}", pool.refresh, 0)
        self.progress(f"pvechaos: gateway disk {self.image} ready")
        return self.image

    def _step(self, what: str, argv: list[str], timeout_s: float, *,
              hint: str | None = None) -> None:
        try:
            done = self.run(argv, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise LabError(f"{what} did not finish within {timeout_s / 60:g} min",
                           hint="run the command by hand with -v to see where it hangs: "
                                + " ".join(argv[:3])) from None
        if done.returncode != 0:
            raise LabError(f"{what} failed (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-600:]}", hint=hint)
