"""A running guest of an embedded node: a real process with its own network namespace.

Started by guest_runtime.py as ``python -m pvemu.guest_process --sid ct:100 ...``
inside the node (so it lives in the node's pid and mount namespaces and dies with the
node). This launcher:

1. creates a macvlan (mode bridge) on the node's eth0 with the guest's MAC address;
2. creates a new network namespace (unshare(CLONE_NEWNET)), moves the macvlan into it
   (as eth0) and gives it the guest's address, so the guest has its own address on the
   lab bridge; the namespace is owned by the guest process alone and vanishes with it;
3. forks the guest, waits (bounded) until it answers on its port, prints the guest's pid
   and exits. The guest is re-parented to the node's init, which reaps it.

The guest:
- serves TCP (port 8080 unless configured): one line per connection,
  ``<sid> <node> <boot-id> <write-seq>\\n``;
- every 100 ms (real time) appends ``<seq> <node> <boot-id> <monotonic-ns>\\n`` to the
  write log on its disk (the disk image file on the guest's storage) and fsyncs it; the
  sequence continues from the last record on disk, so two copies writing at once show up
  as duplicate sequence numbers (a fork) and lost writes as a gap (see `analyse`);
- sends a gratuitous ARP at start, so the lab bridge and its peers learn where it is now;
- stops on SIGTERM (clean shutdown) or SIGKILL.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

from harness.writelog import (  # noqa: F401 - part of this module's interface
    Boot,
    LogReport,
    Record,
    analyse,
    format_record,
    parse_line,
    parse_log,
)

CLONE_NEWNET = 0x40000000
WRITE_INTERVAL_S = 0.1
READY_TIMEOUT_S = 10.0


# -- the write log -------------------------------------------------------------------
def last_seq(path: Path) -> int:
    """The sequence number of the last complete record on disk (0: none)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    with open(path, "rb") as f:
        for window in (4096, 65536, size):
            f.seek(max(0, size - window))
            # the part after the last newline is a torn record (or empty)
            complete = f.read().decode(errors="replace").split("\n")[:-1]
            if window < size:
                complete = complete[1:]  # the first line may be cut by the window
            for line in reversed(complete):
                record = parse_line(line)
                if record is not None:
                    return record.seq
            if window >= size:
                break
    return 0


def read_log(path: Path) -> LogReport:
    records, torn = parse_log(path.read_text(errors="replace"))
    return analyse(records, torn)


# -- namespaces ----------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def make_netns(parent: str, tmp_name: str, hwaddr: str, cidr: str) -> None:
    """Move this process into a new network namespace holding a macvlan of `parent`."""
    subprocess.run(["ip", "link", "del", tmp_name], capture_output=True, check=False)
    _ip("link", "add", "link", parent, "name", tmp_name, "address", hwaddr,
        "type", "macvlan", "mode", "bridge")
    old = os.open("/proc/self/ns/net", os.O_RDONLY)
    moved = False
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        new = os.open("/proc/self/ns/net", os.O_RDONLY)
        _check(_libc.setns(old, CLONE_NEWNET), "setns(node)")
        _ip("link", "set", "dev", tmp_name, "netns", f"/proc/{os.getpid()}/fd/{new}")
        moved = True
        _check(_libc.setns(new, CLONE_NEWNET), "setns(guest)")
        os.close(new)
    finally:
        if not moved:
            _libc.setns(old, CLONE_NEWNET)
            subprocess.run(["ip", "link", "del", tmp_name], capture_output=True, check=False)
        os.close(old)
    _ip("link", "set", "dev", tmp_name, "name", "eth0")
    _ip("addr", "add", cidr, "dev", "eth0")
    _ip("link", "set", "lo", "up")
    _ip("link", "set", "eth0", "up")


def gratuitous_arp(ifname: str, address: str, hwaddr: str) -> None:
    mac = bytes.fromhex(hwaddr.replace(":", ""))
    ip = socket.inet_aton(address)
    frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x0806) +
             struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((ifname, 0))
        s.send(frame)


# -- the guest -----------------------------------------------------------------------
class Guest:
    def __init__(self, sid: str, node: str, address: str, port: int, disk: Path) -> None:
        self.sid, self.node, self.address, self.port, self.disk = (sid, node, address,
                                                                   port, disk)
        self.boot_id = uuid.uuid4().hex[:12]
        self.seq = 0
        self.stopping = False

    def answer(self) -> bytes:
        return f"{self.sid} {self.node} {self.boot_id} {self.seq}\n".encode()

    def write(self, fd: int) -> None:
        record = Record(self.seq + 1, self.node, self.boot_id, time.monotonic_ns())
        try:
            os.write(fd, format_record(record).encode())
            os.fsync(fd)
            self.seq = record.seq
        except OSError as exc:
            print(f"{self.sid}: write to {self.disk} failed: {exc}", flush=True)

    def open_disk(self) -> int:
        self.seq = last_seq(self.disk)
        fd = os.open(self.disk, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        size = os.fstat(fd).st_size
        if size:
            with open(self.disk, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a record torn by a power cut
                    os.write(fd, b"\n")
        return fd

    def serve(self, ready_fd: int) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            fd = self.open_disk()
            self.write(fd)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("0.0.0.0", self.port))
            listener.listen(64)
            self.self_check(listener)
        except Exception as exc:  # noqa: BLE001 - reported to the launcher
            os.write(ready_fd, f"error: {exc}\n".encode())
            raise SystemExit(1) from None
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
        print(f"{self.sid}: running on {self.node} as {self.address}:{self.port}, "
              f"boot {self.boot_id}, from seq {self.seq}", flush=True)
        next_write = time.monotonic() + WRITE_INTERVAL_S
        while not self.stopping:
            timeout = max(0.0, next_write - time.monotonic())
            try:
                readable, _, _ = select.select([listener], [], [], timeout)
            except InterruptedError:
                readable = []
            if readable:
                self.accept(listener)
            if time.monotonic() >= next_write:
                self.write(fd)
                next_write += WRITE_INTERVAL_S
                if next_write < time.monotonic():  # we fell behind: no burst to catch up
                    next_write = time.monotonic() + WRITE_INTERVAL_S
        listener.close()
        os.close(fd)
        print(f"{self.sid}: shut down at seq {self.seq}", flush=True)

    def accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(1.0)
            try:
                conn.sendall(self.answer())
            except OSError:
                pass

    def self_check(self, listener: socket.socket, timeout_s: float = 2.0) -> None:
        """Answer a connection to our own address before saying we are up. Connections
        from outside that are already queued (a probe) are answered too, in turn."""
        try:
            gratuitous_arp("eth0", self.address, _mac_of("eth0"))
        except OSError as exc:
            print(f"{self.sid}: gratuitous ARP failed: {exc}", flush=True)
        deadline = time.monotonic() + timeout_s
        with socket.create_connection((self.address, self.port), timeout=timeout_s) as client:
            line = ""
            while not line and time.monotonic() < deadline:
                ready, _, _ = select.select([listener, client], [], [],
                                            max(0.0, deadline - time.monotonic()))
                if listener in ready:
                    self.accept(listener)
                if client in ready:
                    line = client.recv(256).decode()
        if not line.startswith(f"{self.sid} {self.node} "):
            raise RuntimeError(f"self-check got {line!r}" if line else "self-check timed out")


def _mac_of(ifname: str) -> str:
    out = subprocess.run(["ip", "-o", "link", "show", ifname], capture_output=True,
                         text=True, timeout=5, check=True).stdout.split()
    return out[out.index("link/ether") + 1]


# -- the launcher --------------------------------------------------------------------
def launch(args: argparse.Namespace) -> int:
    tmp_name = f"pvg{args.vmid}"[:15]
    try:
        make_netns(args.parent, tmp_name, args.hwaddr, args.address)
    except (OSError, RuntimeError) as exc:
        print(f"network setup failed: {exc}", file=sys.stderr)
        return 1
    ip = args.address.split("/")[0]
    guest = Guest(args.sid, args.node, ip, args.port, Path(args.disk))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the guest
        os.close(read_fd)
        os.setsid()
        os.dup2(2, 1)  # stdout is the launcher's pipe to guest_runtime.py: use the log
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        try:
            guest.serve(write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + READY_TIMEOUT_S
    message = b""
    while time.monotonic() < deadline and not message.endswith(b"\n"):
        readable, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(read_fd, 256)
        if not chunk:
            break
        message += chunk
    text = message.decode(errors="replace").strip()
    if text == "ready":
        print(pid, flush=True)
        return 0
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
    print(text.removeprefix("error: ") or f"guest did not answer on port {args.port} "
          f"within {READY_TIMEOUT_S:g} s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="guest_process")
    parser.add_argument("--sid", required=True)
    parser.add_argument("--vmid", required=True, type=int)
    parser.add_argument("--node", required=True)
    parser.add_argument("--address", required=True, help="address/prefix")
    parser.add_argument("--hwaddr", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--disk", required=True)
    parser.add_argument("--parent", default="eth0")
    parser.add_argument("--lab", default="", help="the lab's directory (for cleanup)")
    return launch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
