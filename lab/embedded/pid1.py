"""PID 1 of an embedded node: mounts the node's own files, starts its services, reaps.

Run as ``python -m lab.embedded.pid1 <boot.json>`` inside fresh pid, mount and uts
namespaces and the node's network namespace. Killing this process (SIGKILL) takes every
process of the node with it, as a power cut does. Services are started the way a PVE
node's systemd would start them at boot; ``systemctl`` on the node talks to this process
over ``/run/pvechaos/init.sock``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from lab.embedded.softdog_device import SoftdogDevice
from lab.embedded.units import Service
from pvemu import nodeinfo, softdog
from pvemu.etc_pve import PVE_ROOT
from pvemu.nodeinfo import BOOT_ID, CONTROL_SOCKET, SHUTDOWN_FLAG
from pvemu.timing import Timing

QDEVICE_NSSDB = "/etc/corosync/qdevice/net/nssdb/cert9.db"
# corosync-qdevice reads quorum.device from corosync's cmap and exits when it is not there.
# systemd starts it only once corosync (Type=notify) is ready; this init does not wait for
# readiness, and a new corosync.conf reaches a node's cmap here only after pmxcfs's 0.2 s
# poll and a reload: so the start waits (at most 10 s) for the key, then runs the daemon,
# which fails as it would if the key is still missing (a stand-in of ours).
QDEVICE_START = ("mkdir -p -m 0770 /run/corosync-qdevice; for _ in $(seq 100); do "
                 "corosync-cmapctl -g quorum.device.model >/dev/null 2>&1 && break; "
                 "sleep 0.1; done; exec /usr/sbin/corosync-qdevice -f")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def mount_node(node_dir: Path, name: str) -> None:
    def mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True)

    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir=/etc,upperdir={node_dir}/etc,workdir={node_dir}/.etc-work", "/etc")
    mount("--bind", str(node_dir / "corosync"), "/var/lib/corosync")
    mount("--bind", str(node_dir / "log"), "/var/log")
    mount("--bind", str(node_dir / "bin"), "/usr/local/sbin")
    # /tmp is an overlay, not an empty tmpfs: the project (and its Python) may live under
    # the host's /tmp, and the node must still see it; what the node writes stays its own.
    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir=/tmp,upperdir={node_dir}/tmp,workdir={node_dir}/.tmp-work", "/tmp")
    # /root likewise, with the node's own dotfiles on top of the host's home
    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir=/root,upperdir={node_dir}/root,workdir={node_dir}/.root-work", "/root")
    # /mnt likewise: storages are mounted under /mnt/pve/<id> by each node for itself
    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir=/mnt,upperdir={node_dir}/mnt,workdir={node_dir}/.mnt-work", "/mnt")
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm")
    for path in ("/run/sshd", "/run/pvechaos", "/run/corosync"):
        os.makedirs(path, exist_ok=True)
    socket.sethostname(name)


def services(python: str, timing: Timing) -> dict[str, Service]:
    """The node's units in boot order (they stop in the reverse order)."""
    def ha(daemon: str) -> list[str]:
        return [python, "-m", "pvemu.ha.daemon", daemon]

    return {
        "corosync": Service("corosync", ["/usr/sbin/corosync", "-f"],
                            "/var/log/corosync/corosync.log",
                            condition="/etc/corosync/corosync.conf"),
        # Debian's corosync-qdevice.service: Requires=/After=corosync, Restart=on-failure,
        # RuntimeDirectory=corosync-qdevice. Enabled by `pvecm qdevice setup`, disabled by
        # `remove` (which deletes the NSS DB): here the DB's presence stands in for the
        # enablement (a guess of ours; no unit is ever enabled or disabled here).
        "corosync-qdevice": Service(
            "corosync-qdevice", ["sh", "-c", QDEVICE_START],
            "/var/log/corosync-qdevice.log", condition=QDEVICE_NSSDB,
            restart_on_failure=True, restart_s=0.1),
        # Restart=on-failure, RestartSec 100 ms, 5 starts in 10 s (units.py, §2.1)
        "pve-cluster": Service("pve-cluster", [python, "-m", "pvemu.pmxcfs"],
                               "/var/log/pve-cluster.log", ready_mount=str(PVE_ROOT),
                               restart_on_failure=True, restart_s=timing.s(0.1),
                               start_limit_s=timing.s(10)),
        # only its `version-info` broadcast (pvemu/pvestatd.py)
        "pvestatd": Service("pvestatd", [python, "-m", "pvemu.pvestatd"],
                            "/var/log/pvestatd.log"),
        "watchdog-mux": Service("watchdog-mux", [python, "-m", "pvemu.ha.muxd"],
                                "/var/log/watchdog-mux.log"),
        # systemd: pve-ha-crm TimeoutStopSec=65, pve-ha-lrm infinity (bounded here)
        "pve-ha-crm": Service("pve-ha-crm", ha("crm"), "/var/log/pve-ha-crm.log",
                              stop_timeout_s=timing.s(65) + 5),
        "pve-ha-lrm": Service("pve-ha-lrm", ha("lrm"), "/var/log/pve-ha-lrm.log",
                              stop_timeout_s=timing.s(600) + 30),
        "ssh": Service("ssh", ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"],
                       "/var/log/sshd.log"),
    }


ALIASES = {"sshd": "ssh", "pmxcfs": "pve-cluster"}
SHUTDOWN_ORDER = ("pve-ha-lrm", "pve-ha-crm", "watchdog-mux", "ssh", "pve-cluster",
                  "corosync-qdevice", "corosync")


VERBS = ("start", "stop", "restart", "is-active", "status", "kill")


def handle(command: str, units: dict[str, Service]) -> str:
    """One systemctl request. ``kill SIGNO UNIT...`` signals each unit's main process."""
    words = command.split()
    if words and words[0] in ("poweroff", "reboot", "reset"):
        return "ok"  # carried out by serve() once the caller has its answer
    signo = 0
    if words and words[0] == "kill":
        if len(words) < 3 or not words[1].isdigit():
            return "error: usage: kill SIGNO UNIT..."
        signo, words = int(words[1]), [words[0], *words[2:]]
    if len(words) < 2:
        return f"error: usage: {'|'.join(VERBS)} UNIT..."
    verb, names = words[0], [ALIASES.get(w.removesuffix(".service"), w.removesuffix(".service"))
                             for w in words[1:]]
    if verb not in VERBS:
        return f"error: unknown verb {verb!r}"
    unknown = [n for n in names if n not in units]
    if unknown:
        return f"error: Unit {unknown[0]}.service not found."
    replies = []
    for name in names:
        unit = units[name]
        if verb == "start":
            replies.append(unit.start())
        elif verb == "stop":
            replies.append(unit.stop())
        elif verb == "restart":
            unit.stop()
            replies.append(unit.start())
        elif verb == "is-active":
            replies.append(unit.state())
        elif verb == "status":
            replies.append(unit.status())
        else:
            replies.append(unit.kill(signo))
    errors = [r for r in replies if r.startswith("error:")]
    if errors:
        return errors[0]
    return ("\n".join(replies) + "\n.") if verb == "status" else " ".join(replies)


def fresh_network_state() -> None:
    """What a booting kernel starts without: no nft rules, no root qdiscs. The node's
    network namespace outlives its resets and power cycles here (the lab makes it once),
    so the faults' nft rules and qdiscs, which a real reboot loses with the kernel, are
    removed by hand (harness/faults.py ends a fault whose node reset as ended by it)."""
    subprocess.run(["nft", "flush", "ruleset"], check=False, capture_output=True,
                   timeout=10)
    try:
        links = json.loads(subprocess.run(["ip", "-j", "link", "show"], check=False,
                                          capture_output=True, text=True,
                                          timeout=10).stdout or "[]")
    except (ValueError, subprocess.TimeoutExpired):
        links = []
    for link in links:
        if link.get("ifname") not in (None, "lo"):
            subprocess.run(["tc", "qdisc", "del", "dev", link["ifname"], "root"],
                           check=False, capture_output=True, timeout=10)


def boot_node(name: str, units: dict[str, Service]) -> None:
    fresh_network_state()
    Path(BOOT_ID).write_text(str(uuid.uuid4()) + "\n")
    # the node's own boot id where Linux keeps it, so a reset shows as on a real node
    kernel_boot_id = "/proc/sys/kernel/random/boot_id"
    subprocess.run(["umount", kernel_boot_id], check=False, capture_output=True)
    subprocess.run(["mount", "--bind", BOOT_ID, kernel_boot_id], check=False,
                   capture_output=True)
    for unit in units.values():
        print(f"{name}: {unit.name}: {unit.start()}", flush=True)


def kill_everything() -> None:
    """What a reset does to a node's processes: all die at once (PID 1 is spared)."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue


def storage_mounts() -> list[str]:
    """The storages this node mounted under /mnt/pve (deepest first), from the mount
    table: a dead FUSE mount cannot be stat'ed (ENOTCONN)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4].startswith("/mnt/pve/"):
            points.append(fields[4].encode().decode("unicode_escape"))
    return sorted(points, key=len, reverse=True)


def clean_boot_state(units: dict[str, Service]) -> None:
    """A reboot forgets /run (a tmpfs), the mounted /etc/pve and every storage mount.

    The node's mount namespace outlives a reset here, so what a real reboot loses with the
    kernel is unmounted by hand: left in place, a storage's FUSE mount whose client died
    with the reset answers ENOTCONN and, listed in the mount table, is never mounted
    again (its guests then fail to start after the node comes back)."""
    for unit in units.values():
        unit.forget()
    subprocess.run(["umount", "-l", str(PVE_ROOT)], check=False, capture_output=True)
    for point in storage_mounts():
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    for entry in Path("/run").iterdir():
        if entry.name == "pvechaos":
            for sub in entry.iterdir():
                if sub.name not in (Path(CONTROL_SOCKET).name, Path(softdog.DEVICE).name):
                    subprocess.run(["rm", "-rf", str(sub)], check=False)
        else:
            subprocess.run(["rm", "-rf", str(entry)], check=False)
    for path in ("/run/sshd", "/run/pvechaos", "/run/corosync"):
        os.makedirs(path, exist_ok=True)


def power_action(verb: str, name: str, units: dict[str, Service],
                 kernel_restart: Callable[[], None]) -> bool:
    """poweroff, reboot (services stop in order first) or reset (at once, as softdog
    does). Returns whether the node stays up (False: init exits, the node is off).
    ``kernel_restart`` runs once userspace is gone, before the next boot."""
    print(f"--- {time.strftime('%F %T')} {name}: {verb}", flush=True)
    if verb == "reset":
        kill_everything()
    else:
        Path(SHUTDOWN_FLAG).write_text(verb + "\n")
        for unit in SHUTDOWN_ORDER:
            print(f"{name}: stopping {unit}: {units[unit].stop()}", flush=True)
        if verb == "poweroff":
            return False
        kill_everything()
    kernel_restart()
    clean_boot_state(units)
    boot_node(name, units)
    return True


def kernel(line: str) -> None:
    """A kernel line on the node's console (init.log), stamped to the millisecond."""
    now = time.time()
    print(f"{time.strftime('%F %T', time.localtime(now))}.{int(now % 1 * 1000):03d} "
          f"kernel: {line}", flush=True)


class Init:
    """The node's init at work: systemctl requests, reaping (a unit learns that its main
    process died), the restarts that follow, and acting on the softdog timer's expiry (the
    device itself is served on its own thread: lab/embedded/softdog_device.py)."""

    def __init__(self, name: str, units: dict[str, Service], timing: Timing,
                 device: socket.socket) -> None:
        self.name, self.units, self.timing = name, units, timing
        self.device = SoftdogDevice(timing.s(softdog.SOFT_MARGIN), device, kernel)

    def fire_if_expired(self) -> bool:
        """The timer's expiry (softdog_fire): True when the node was reset."""
        reset = self.device.fire_if_expired(time.monotonic(),
                                            os.path.exists(softdog.NOBOOT_FILE))
        if not reset:
            return False
        self.power("reset")
        return True

    def reap(self) -> None:
        """Collect every dead child; a unit whose main process it was is told."""
        for _ in range(1000):
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for unit in self.units.values():
                if unit.owns(pid):
                    unit.reaped(status)

    def restarts(self, now: float) -> float:
        """Start the units whose restart is due; seconds until the next one."""
        wait = 0.5
        for unit in self.units.values():
            due = unit.restart_due(now)
            if due is None:
                continue
            if due <= 0:
                print(f"{self.name}: {unit.name}: restart: {unit.auto_restart()}", flush=True)
            else:
                wait = min(wait, due)
        return wait

    def timeout(self) -> float:
        """How long select may sleep: fine enough for the softdog at any timescale."""
        now = time.monotonic()
        wait = self.restarts(now)
        left = self.device.remaining(now)
        if left is not None:
            wait = min(wait, left)
        return max(0.0, wait)

    def power(self, verb: str) -> bool:
        # The kernel and its watchdog device live until the restart itself: during an
        # orderly poweroff or reboot watchdog-mux keeps its device open and pinging while
        # the HA daemons stop before it (systemd's order; PVE's LRM can take minutes to
        # move its services away).
        return power_action(verb, self.name, self.units, kernel_restart=self.device.reset)


def answer(server: socket.socket, units: dict[str, Service]) -> str:
    conn, _ = server.accept()
    request = ""
    with conn:
        conn.settimeout(5)
        try:
            request = conn.recv(4096).decode()
            conn.sendall((handle(request, units) + "\n").encode())
        except OSError:
            pass
    return request.split()[0] if request.split() else ""


def serve(name: str, units: dict[str, Service], timing: Timing) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(CONTROL_SOCKET)
    server.listen(8)
    device = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    device.bind(softdog.DEVICE)
    device.listen(4)
    init = Init(name, units, timing, device)
    init.device.start()
    wake_r, wake_w = os.pipe()  # SIGCHLD wakes select at once: a death is seen when it happens
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        watched = [server, wake_r]
        try:
            readable, _, _ = select.select(watched, [], [], init.timeout())
        except InterruptedError:
            readable = []
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        # the timer first: after a thaw it fires before anything of the node is looked at
        # (a unit's death)
        if init.fire_if_expired():
            continue
        init.reap()
        if server in readable:
            verb = answer(server, units)
            if verb in ("poweroff", "reboot", "reset") and not init.power(verb):
                return
    for unit in reversed(list(units.values())):
        unit.stop()


def main() -> None:
    boot = json.loads(Path(sys.argv[1]).read_text())
    os.environ.update(PATH=PATH, PYTHONPATH=boot["repo"], HOME="/root", LANG="C.UTF-8")
    os.chdir("/")
    mount_node(Path(boot["node_dir"]), boot["name"])
    # the node's timescale, from its node.json (now under /etc): one place for it
    timing = nodeinfo.load().timing
    units = services(boot["python"], timing)
    boot_node(boot["name"], units)
    serve(boot["name"], units, timing)


if __name__ == "__main__":
    main()
