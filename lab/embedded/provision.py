"""A node's own files, prepared on the host before its first boot.

Each node sees the host's /etc through an overlay whose upper layer is the node's own
directory, so what is written here (hostname, hosts, sshd config, keys) is that node's
alone, and survives its power cycles. Node layout under ``<lab_dir>/nodes/<node>/``:

    etc/            upper layer of the node's /etc
    tmp/            upper layer of the node's /tmp
    .etc-work/      overlay work directories (and .tmp-work/)
    corosync/       the node's /var/lib/corosync
    log/            the node's /var/log
    bin/            the node's /usr/local/sbin: pvecm, pveversion, systemctl, ...
    pmxcfs-db/      the node's own copy of the pmxcfs database (pvemu/dcdb.py; beside it
                    pmxcfs-db.meta.json), kept across power cycles as config.db is
    boot.json       what the node's init needs to boot
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from lab.embedded.config import EmbeddedConfig
from lab.embedded.system import sh

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {  # name in the node's PATH -> module implementing it
    "pvecm": "pvemu.cli.pvecm",
    "pveversion": "pvemu.cli.pveversion",
    "systemctl": "pvemu.cli.systemctl",
    "ha-manager": "pvemu.cli.ha_manager",
    "pvesh": "pvemu.cli.pvesh",
    "pct": "pvemu.cli.pct",
    "qm": "pvemu.cli.qm",
    "pvesm": "pvemu.cli.pvesm",
    "journalctl": "pvemu.cli.journalctl",
    "date": "pvemu.cli.date",  # the node's own wall clock (pvemu/wallclock.py)
    "poweroff": "pvemu.cli.systemctl poweroff",
    "reboot": "pvemu.cli.systemctl reboot",
}
KERNEL = {8: "6.8.12-9-pve", 9: "6.14.8-2-pve"}


def release(version: str) -> dict[str, str]:
    """What a node's node.json says of its PVE release: the version and the kernel that
    version boots (provisioning writes it; the upgrade verb rewrites it: lab/embedded/
    upgrade.py)."""
    major = int(version.split(".")[0])
    return {"pve_version": version, "kernel": KERNEL.get(major, KERNEL[8])}


# the embedded test guest's template: an empty file on the lab's shared storage (the
# emulated `pct create` checks that it exists and unpacks nothing)
CT_TEMPLATE_FILE = "debian-12-standard_12.7-1_amd64.tar.zst"
CT_TEMPLATE = f"shared:vztmpl/{CT_TEMPLATE_FILE}"


def node_dir(config: EmbeddedConfig, node: str) -> Path:
    return config.lab_dir / "nodes" / node


def make_lab_key(config: EmbeddedConfig) -> Path:
    key = config.lab_dir / "id_ed25519"
    if not key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pvechaos-{config.name}",
           "-f", str(key))
    return key


def _whiteout(path: Path) -> None:
    """Hide a file of the host's /etc from the node (an overlayfs whiteout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def sshd_config(who: str, address: str, *extra: str) -> str:
    """The sshd_config of a lab host (a node, the qnetd host): key-only root login on its
    lab address, with the lab's key (pvechaos_authorized_keys); ``extra`` lines added."""
    return "\n".join([
        f"# pvechaos {who}: key-only root login on the lab address",
        f"ListenAddress {address}",
        "Port 22",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "AuthorizedKeysFile /etc/ssh/pvechaos_authorized_keys",
        "PidFile /run/sshd.pid",
        *extra,
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ])


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def node_json(config: EmbeddedConfig, node: str) -> Path:
    """The node's /etc/pvechaos/node.json as the host sees it (its /etc's upper layer)."""
    return node_dir(config, node) / "etc/pvechaos/node.json"


def host_key(config: EmbeddedConfig, node: str) -> str:
    return (node_dir(config, node) / "etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()


def provision_node(config: EmbeddedConfig, node: str, lab_key: Path) -> Path:
    root = node_dir(config, node)
    etc = root / "etc"
    for sub in ("etc", ".etc-work", "tmp", ".tmp-work", "mnt", ".mnt-work", "root",
                ".root-work", "corosync",
                "log/corosync", "bin", "pmxcfs-db"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    # root's own dotfiles: the host's (a pyenv init that rehashes on every shell, say) must
    # not run for every command the harness sends over SSH
    for dotfile in (".bashrc", ".profile"):
        _write(root / "root" / dotfile, "# an embedded PVE node's root shell\n")
    address = config.node_address(node)
    version = config.version_of(node)

    _write(etc / "hostname", f"{node}\n")
    hosts = ["127.0.0.1 localhost"] + [
        f"{config.node_address(n)} {n}.pvechaos.lab {n}" for n in config.node_names]
    _write(etc / "hosts", "\n".join(hosts) + "\n")
    # A PVE node that is not in a cluster has no corosync config: hide the host's.
    for name in ("corosync.conf", "authkey"):
        _whiteout(etc / "corosync" / name)
    (etc / "pve").mkdir(exist_ok=True)

    key = etc / "ssh/ssh_host_ed25519_key"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node}", "-f", str(key))
    # many sessions at once: the harness's watchers, probes and fault commands
    _write(etc / "ssh/sshd_config", sshd_config("embedded node", address,
                                                "MaxStartups 100:30:200", "MaxSessions 50"))
    _write(etc / "ssh/pvechaos_authorized_keys", lab_key.with_suffix(".pub").read_text())
    _write(etc / "ssh/pvechaos_id_ed25519", lab_key.read_text(), 0o600)
    _write(etc / "ssh/ssh_config.d/pvechaos.conf", "\n".join([
        "Host *",
        "  IdentityFile /etc/ssh/pvechaos_id_ed25519",
        "  UserKnownHostsFile /etc/ssh/pvechaos_known_hosts",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 5",
        "",
    ]))

    # the test guest's template, on the shared storage (pct create needs it to exist)
    _write(config.lab_dir / "nfs" / "template" / "cache" / CT_TEMPLATE_FILE, "")
    _write(node_json(config, node), json.dumps({
        "name": node,
        "address": address,
        "prefixlen": config.network.prefixlen,
        **release(version),
        "local_db": str(root / "pmxcfs-db"),
        "pmxcfs": config.pmxcfs_model,
        # the one directory every node serves in the "shared" model
        "cluster_db": str(config.lab_dir / "pmxcfs" / "cluster"),
        "nfs_export": str(config.lab_dir / "nfs"),
        "timescale": config.timescale.factor,  # the node's timers: pvemu/timing.py
        # --emulation-bug: the HA stack made unsafe on purpose (pvemu/nodeinfo.py)
        "bugs": list(config.emulation_bugs),
    }, indent=1) + "\n")

    for command, module in COMMANDS.items():
        _write(root / "bin" / command,
               f"#!/bin/sh\nPYTHONPATH={REPO_ROOT} exec {sys.executable} -m {module} \"$@\"\n",
               0o755)

    boot = root / "boot.json"
    boot.write_text(json.dumps({"name": node, "node_dir": str(root),
                                "python": sys.executable, "repo": str(REPO_ROOT)}) + "\n")
    return boot


def write_known_hosts(config: EmbeddedConfig) -> None:
    """Every node knows every node's host key, by name and address (as PVE merges them)."""
    lines = [f"{n},{config.node_address(n)} {host_key(config, n)}" for n in config.node_names]
    for node in config.node_names:
        _write(node_dir(config, node) / "etc/ssh/pvechaos_known_hosts", "\n".join(lines) + "\n")
