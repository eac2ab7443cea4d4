"""PID 1 of an embedded node: mounts the node's own files, starts its services, reaps.

Run as ``python -m lab.embedded.pid1 <boot.json>`` inside fresh pid, mount and uts
namespaces and the node's network namespace. Killing this process (SIGKILL) takes every
process of the node with it, as a power cut does. Services are started the way a PVE
node's systemd would start them at boot; ``systemctl`` on the node talks to this process
over ``/run/pvechaos/init.sock``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pvemu import nodeinfo
from pvemu.etc_pve import PVE_ROOT
from pvemu.nodeinfo import BOOT_ID, CONTROL_SOCKET, SHUTDOWN_FLAG
from pvemu.timing import Timing

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Service:
    def __init__(self, name: str, argv: list[str], log: str, condition: str | None = None,
                 ready_mount: str | None = None, stop_timeout_s: float = 10.0) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.condition, self.ready_mount = condition, ready_mount
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen | None = None

    def active(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> str:
        if self.active():
            return "ok"
        if self.condition and not Path(self.condition).exists():
            return f"skipped: {self.condition} does not exist"
        Path(self.log).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- {time.strftime('%F %T')} starting {self.name}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env={**os.environ})
        if self.ready_mount:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.active():
                if os.path.ismount(self.ready_mount):
                    break
                time.sleep(0.05)
            if not os.path.ismount(self.ready_mount):
                return f"error: {self.name} did not mount {self.ready_mount} (see {self.log})"
        return "ok"

    def stop(self) -> str:
        if not self.active():
            return "ok"
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.ready_mount and os.path.ismount(self.ready_mount):
            subprocess.run(["umount", "-l", self.ready_mount], check=False)
        return "ok"


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
        "pve-cluster": Service("pve-cluster", [python, "-m", "pvemu.pmxcfs"],
                               "/var/log/pve-cluster.log", ready_mount=str(PVE_ROOT)),
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
                  "corosync")


def handle(command: str, units: dict[str, Service]) -> str:
    words = command.split()
    if words and words[0] in ("poweroff", "reboot", "reset"):
        return "ok"  # carried out by serve() once the caller has its answer
    if len(words) < 2:
        return "error: usage: start|stop|restart|is-active UNIT..."
    verb, names = words[0], [ALIASES.get(w.removesuffix(".service"), w.removesuffix(".service"))
                             for w in words[1:]]
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
            replies.append("active" if unit.active() else "inactive")
        else:
            return f"error: unknown verb {verb!r}"
    return " ".join(replies)


def boot_node(name: str, units: dict[str, Service]) -> None:
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


def clean_boot_state(units: dict[str, Service]) -> None:
    """A reboot forgets /run (a tmpfs) and the mounted /etc/pve."""
    for unit in units.values():
        unit.proc = None
    subprocess.run(["umount", "-l", str(PVE_ROOT)], check=False, capture_output=True)
    for entry in Path("/run").iterdir():
        if entry.name == "pvechaos":
            for sub in entry.iterdir():
                if sub.name != Path(CONTROL_SOCKET).name:
                    subprocess.run(["rm", "-rf", str(sub)], check=False)
        else:
            subprocess.run(["rm", "-rf", str(entry)], check=False)
    for path in ("/run/sshd", "/run/pvechaos", "/run/corosync"):
        os.makedirs(path, exist_ok=True)


def power_action(verb: str, name: str, units: dict[str, Service]) -> bool:
    """poweroff, reboot (services stop in order first) or reset (at once, as softdog
    does). Returns whether the node stays up (False: init exits, the node is off)."""
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
    clean_boot_state(units)
    boot_node(name, units)
    return True


def serve(name: str, units: dict[str, Service]) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(CONTROL_SOCKET)
    server.listen(8)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        try:
            readable, _, _ = select.select([server], [], [], 0.5)
        except InterruptedError:
            readable = []
        for _ in readable:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                request = ""
                try:
                    request = conn.recv(4096).decode()
                    conn.sendall((handle(request, units) + "\n").encode())
                except OSError:
                    pass
            verb = request.split()[0] if request.split() else ""
            if verb in ("poweroff", "reboot", "reset") and not power_action(verb, name, units):
                return
        while True:  # reap everything that was re-parented to us
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
    for unit in reversed(list(units.values())):
        unit.stop()


def main() -> None:
    boot = json.loads(Path(sys.argv[1]).read_text())
    os.environ.update(PATH=PATH, PYTHONPATH=boot["repo"], HOME="/root", LANG="C.UTF-8")
    os.chdir("/")
    mount_node(Path(boot["node_dir"]), boot["name"])
    # the node's timescale, from its node.json (now under /etc): one place for it
    units = services(boot["python"], nodeinfo.load().timing)
    boot_node(boot["name"], units)
    serve(boot["name"], units)


if __name__ == "__main__":
    main()
