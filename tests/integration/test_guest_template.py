"""The real-PVE guest service, run for real: the template's rootfs in its own pid, mount,
uts and network namespaces (the container as LXC would give it, with a dummy eth0 and
the shared directory at /pvechaos), queried over TCP inside that namespace, its write log
read with the harness's own parser across a power cut."""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness.waits import NotYet, wait_until
from harness.writelog import analyse, parse_log
from lab.guest_template import build_template

ADDRESS = "198.18.95.20"  # inside the lab range; only in this test's own namespace
PORT = 7000


@pytest.fixture
def container(tmp_path: Path):
    """(start, query, log) for a guest whose rootfs is the template; nothing outlives it."""
    rootfs = tmp_path / "rootfs"
    with tarfile.open(build_template(tmp_path / "t.tar.xz", port=PORT)) as tar:
        tar.extractall(rootfs, filter="fully_trusted")
    (rootfs / "pvechaos" / "node").write_text("node1\n")
    (rootfs / "pvechaos" / "net0").write_text(f"{ADDRESS}/24 \n")
    netns, outer = f"pvechaos-guest-{os.getpid()}", f"pvcg{os.getpid() % 100000}"
    running: list[subprocess.Popen] = []
    subprocess.run(["ip", "netns", "add", netns], check=True)

    def start() -> None:
        running.append(subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "-u", "-m", "-p", "-f",
             f"--mount-proc={rootfs}/proc", "sh", "-c",
             # /dev as LXC gives it, then the container's own init
             f"mount --rbind /dev {rootfs}/dev && exec chroot {rootfs} /bin/sh -c "
             "'hostname chaos100 && exec /sbin/init'"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True))

    def power_cut() -> None:
        proc = running.pop()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def query() -> str:
        done = subprocess.run(["ip", "netns", "exec", netns, "busybox", "nc", "-w", "2",
                               ADDRESS, str(PORT)], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)
        return done.stdout.strip()

    def log():
        path = rootfs / "pvechaos" / "writes.log"
        return parse_log(path.read_text() if path.exists() else "")

    try:
        # the container's eth0; the outer end stays down: nothing leaves the namespace
        subprocess.run(["ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0",
                        "netns", netns], check=True)
        yield start, power_cut, query, log
    finally:
        while running:
            power_cut()
        subprocess.run(["ip", "link", "del", outer], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], check=False)


def records_after(log, count: int):
    def enough():
        records, _ = log()
        return records if len(records) >= count else NotYet(f"{len(records)} records")
    return enough


def test_the_guest_answers_writes_and_goes_on_after_a_power_cut(container):
    start, power_cut, query, log = container
    start()
    wait_until("the guest's first writes", records_after(log, 3), timeout_s=20,
               interval_s=0.1)
    answer = wait_until("the guest to answer on its port",
                        lambda: query() or NotYet("no answer"), timeout_s=20, interval_s=0.2)
    sid, node, boot, seq = answer.split()
    assert (sid, node) == ("ct:100", "node1") and len(boot) == 12 and int(seq) >= 1
    power_cut()
    reached = len(log()[0])
    start()
    wait_until("writes of the second boot", records_after(log, reached + 3), timeout_s=20,
               interval_s=0.1)
    power_cut()
    records, torn = log()
    report = analyse(records, torn)
    assert len(report.boots) == 2
    assert report.boots[0].boot_id == boot
    assert report.boots[1].first_seq == report.boots[0].last_seq + 1  # went on, no gap
    assert report.ok, report
