"""The embedded lab's QDevice arbiter: a "qnetd host" of its own on the lab bridge.

It is one more namespace set (network, pid, mount, uts) at the lab's ``.10`` address,
running the real Debian ``corosync-qnetd`` (TCP 5403, as the ``coroqnetd`` user, as
Debian's unit runs it) and an sshd taking the lab's root key, so that a node's `pvecm
qdevice setup <addr>` reaches it as PVE's does (pve-operations.md §1.2). Its /etc,
/tmp and /root are overlays of the host's, and /etc/corosync/qnetd is its own empty
directory in which the init script below makes the NSS database and CA exactly as the
package's postinst does (``corosync-qnetd-certutil -i -G``): the host's own database (made
by the host's install) is never used.

"qnetd lost" is its link to the bridge going down (``set_link``): every TCP connection
to 5403 stalls, as when the arbiter host or its network dies. Layout under
``<lab_dir>/qnetd/``: etc/, tmp/, root/ (upper layers and their .*-work), qnetd/ (its
/etc/corosync/qnetd), log/ (its /var/log), script.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.errors import LabError
from lab.embedded import provision
from lab.embedded.config import EmbeddedConfig
from lab.embedded.network import delete_link, delete_netns
from lab.embedded.state import LabState
from lab.embedded.system import sh

PORT = 5403  # corosync-qnetd's default (man corosync-qnetd)
PROCESS = "qnetd"  # its key in the lab state's processes

# PID 1 of the qnetd host: its own files mounted, the NSS DB made as the postinst makes
# it, then sshd and corosync-qnetd (Type=notify, User=coroqnetd, `-f`) until killed.
SCRIPT = """\
set -eu
root="$1" address="$2"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$root/etc,workdir=$root/.etc-work" /etc
mkdir -p /etc/corosync/qnetd
mount -t overlay overlay -o "lowerdir=/tmp,upperdir=$root/tmp,workdir=$root/.tmp-work" /tmp
mount -t overlay overlay -o "lowerdir=/root,upperdir=$root/root,workdir=$root/.root-work" /root
mount --bind "$root/qnetd" /etc/corosync/qnetd
mount --bind "$root/log" /var/log
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/corosync-qnetd
chown coroqnetd:coroqnetd /run/corosync-qnetd
hostname qnetd
if [ ! -e /etc/corosync/qnetd/nssdb/cert9.db ]; then
  chown root:coroqnetd /etc/corosync/qnetd && chmod 0750 /etc/corosync/qnetd
  corosync-qnetd-certutil -i -G >> /var/log/qnetd-certutil.log 2>&1
fi
/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config >> /var/log/sshd.log 2>&1 &
setpriv --reuid=coroqnetd --regid=coroqnetd --init-groups \\
  corosync-qnetd -f -l "$address" -p {port} >> /var/log/corosync-qnetd.log 2>&1 &
wait
"""


def qnetd_dir(config: EmbeddedConfig) -> Path:
    return config.lab_dir / "qnetd"


def create_network(config: EmbeddedConfig) -> None:
    """Its namespace and veth on the lab bridge (network.create_node_network's recipe)."""
    ns, veth = config.netns(config.QNETD), config.qnetd_veth
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", veth, "master", config.bridge)
    sh("ip", "-n", ns, "addr", "add", f"{config.qnetd_address}/{config.network.prefixlen}",
       "dev", "eth0")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    set_link(config, up=True)


def set_link(config: EmbeddedConfig, *, up: bool) -> None:
    sh("ip", "link", "set", config.qnetd_veth, "up" if up else "down")


def provision_host(config: EmbeddedConfig, lab_key: Path) -> None:
    """Its files: host key, sshd config taking the lab's key, empty dotfiles."""
    root = qnetd_dir(config)
    for sub in ("etc", ".etc-work", "tmp", ".tmp-work", "root", ".root-work", "qnetd", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for dotfile in (".bashrc", ".profile"):
        (root / "root" / dotfile).write_text("# the embedded lab's qnetd host\n")
    key = root / "etc/ssh/ssh_host_ed25519_key"
    key.parent.mkdir(parents=True, exist_ok=True)
    if not key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@qnetd", "-f", str(key))
    (root / "etc/hostname").write_text("qnetd\n")
    (root / "etc/ssh/sshd_config").write_text(
        provision.sshd_config("qnetd host", config.qnetd_address))
    (root / "etc/ssh/pvechaos_authorized_keys").write_text(
        lab_key.with_suffix(".pub").read_text())
    (root / "script").write_text(SCRIPT.replace("{port}", str(PORT)))
    # every node knows the qnetd host's key, by name and address (`ssh root@<addr>`)
    line = f"qnetd,{config.qnetd_address} {key.with_suffix('.pub').read_text().strip()}\n"
    for node in config.node_names:
        known = provision.node_dir(config, node) / "etc/ssh/pvechaos_known_hosts"
        with known.open("a") as out:
            out.write(line)


def check_installed() -> None:
    for tool in ("corosync-qnetd", "corosync-qnetd-certutil", "corosync-qdevice",
                 "corosync-qdevice-net-certutil", "certutil"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise LabError(f"--qdevice needs `{tool}`, which is not installed",
                           hint="run the README's setup command (bash .ci/setup): it "
                                "installs corosync-qnetd and corosync-qdevice")


def start(config: EmbeddedConfig, state: LabState) -> subprocess.Popen:
    """Boot the qnetd host; its pid (the launcher) is listed in the lab state."""
    root = qnetd_dir(config)
    log = open(root / "init.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{config.netns(config.QNETD)}", "--",
             "unshare", "--pid", "--fork", "--mount", "--uts", "--mount-proc",
             "--kill-child", "sh", str(root / "script"), str(root), config.qnetd_address],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    finally:
        log.close()
    state.set_process(PROCESS, proc.pid)
    return proc


def stop(proc: subprocess.Popen | None, state: LabState) -> None:
    """Kill the qnetd host (unshare --kill-child takes its pid namespace with it)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    state.set_process(PROCESS, None)


def remove_network(config: EmbeddedConfig) -> None:
    """Its veth (both ends) and namespace; nothing when it has none."""
    delete_link(config.qnetd_veth)
    delete_netns(config.netns(config.QNETD))


def describe(config: EmbeddedConfig) -> dict[str, str]:
    return {"qdevice.qnetd": f"{config.qnetd_address}:{PORT}"} if config.qdevice else {}

