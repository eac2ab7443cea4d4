"""What the embedded lab needs from the host, checked before anything is created."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from harness.errors import LabError

SETUP = ("bash .ci/setup (installs corosync, openssh-server, iproute2, nftables, iptables, "
         "fuse3 and the Python packages)")
TOOLS = {
    "corosync": "corosync", "corosync-quorumtool": "corosync", "corosync-keygen": "corosync",
    "corosync-cfgtool": "corosync", "sshd": "openssh-server", "ssh": "openssh-client",
    "ssh-keygen": "openssh-client", "ip": "iproute2", "nsenter": "util-linux",
    "tc": "iproute2", "nft": "nftables",  # network faults inside the nodes (faults_net)
    # the NFQUEUE delayer's rule (harness/netdelay.py) on kernels without netem, as here
    "iptables": "iptables",
    "unshare": "util-linux", "setpriv": "util-linux", "mount": "mount",
}


BUILDS = "it creates network namespaces, a bridge, and mounts inside each node's namespaces"


def require_root(what: str, rerun: str, why: str = BUILDS) -> None:
    """Refuse a non-root user before anything is made: ``what`` needs root (``why``);
    ``rerun`` is the command to run instead."""
    if os.geteuid() != 0:
        raise LabError(f"{what} needs root: {why}", hint=f"run as root, {rerun}")


def check_host(rerun: str = "e.g. `sudo -E pytest scenarios/` (or use --lab with a lab "
                            "that needs no root)") -> None:
    require_root("the embedded lab", rerun)
    missing = sorted({pkg for tool, pkg in TOOLS.items()
                      if shutil.which(tool, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                      "/usr/bin:/sbin:/bin") is None})
    if missing:
        raise LabError(f"the embedded lab needs the Debian packages {', '.join(missing)}",
                       hint=f"apt-get install {' '.join(missing)}, or run {SETUP}")
    if importlib.util.find_spec("mfusepy") is None:
        raise LabError("the Python package mfusepy (for the emulated pmxcfs) is not installed",
                       hint=f"pip install mfusepy, or run {SETUP}")
    kernel = []
    for ns in ("net", "pid", "mnt", "uts"):
        if not Path(f"/proc/self/ns/{ns}").exists():
            kernel.append(f"{ns} namespaces")
    filesystems = Path("/proc/filesystems").read_text()
    if "overlay" not in filesystems:
        kernel.append("overlayfs (modprobe overlay)")
    if "fuse" not in filesystems or not Path("/dev/fuse").exists():
        kernel.append("FUSE (/dev/fuse; modprobe fuse)")
    if not Path("/sys/module/bridge").exists() and not Path("/sys/class/net").exists():
        kernel.append("bridge networking")
    if kernel:
        raise LabError(f"the kernel lacks what the embedded lab needs: {', '.join(kernel)}",
                       hint="run on a Linux host or VM (not an unprivileged container) with "
                            "these features, or use the libvirt lab")
