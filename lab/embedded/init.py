"""PID 1 of an embedded node: mounts the node's own files, starts its services, reaps.

Run as ``python -m lab.embedded.init <boot.json>`` inside fresh pid, mount and uts
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
from pathlib import Path

CONTROL_SOCKET = "/run/pvechaos/init.sock"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Service:
    def __init__(self, name: str, argv: list[str], log: str, condition: str | None = None,
                 ready_mount: str | None = None) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.condition, self.ready_mount = condition, ready_mount
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
            self.proc.wait(timeout=10)
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
    mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run")
    mount("-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm")
    for path in ("/run/sshd", "/run/pvechaos", "/run/corosync"):
        os.makedirs(path, exist_ok=True)
    socket.sethostname(name)


def services(python: str) -> dict[str, Service]:
    return {
        "corosync": Service("corosync", ["/usr/sbin/corosync", "-f"],
                            "/var/log/corosync/corosync.log",
                            condition="/etc/corosync/corosync.conf"),
        "pve-cluster": Service("pve-cluster", [python, "-m", "lab.embedded.pve.pmxcfs"],
                               "/var/log/pve-cluster.log", ready_mount="/etc/pve"),
        "ssh": Service("ssh", ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"],
                       "/var/log/sshd.log"),
    }


ALIASES = {"sshd": "ssh", "pmxcfs": "pve-cluster"}


def handle(command: str, units: dict[str, Service]) -> str:
    words = command.split()
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


def serve(units: dict[str, Service]) -> None:
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
                try:
                    request = conn.recv(4096).decode()
                    conn.sendall((handle(request, units) + "\n").encode())
                except OSError:
                    pass
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
    units = services(boot["python"])
    for name in ("corosync", "pve-cluster", "ssh"):
        print(f"{boot['name']}: {name}: {units[name].start()}", flush=True)
    serve(units)


if __name__ == "__main__":
    main()
