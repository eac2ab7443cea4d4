"""The qemu test bed: real libvirtd and qemu (TCG), small Debian VMs, the libvirt lab's
own code (lab/qemu_bed/). Each module makes its own bed (name and subnets of its own),
so two modules on two xdist workers never share a domain or a network; libvirtd is
shared and stopped by the last bed out."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lab_api import LabNode
from harness.ssh import SshSession
from harness.waits import NotYet, wait_until

CACHE = Path("/var/cache/pvechaos/qemu-bed")  # the Debian packages, kept between runs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = cannot_run_qemu()
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.qemu)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def cannot_run_qemu() -> str | None:
    """Why this machine cannot run the bed at all; None when it can. Missing packages
    that `bash .ci/setup` installs are not a reason to skip: the bed then fails naming
    them."""
    if os.geteuid() != 0:
        return "the qemu test bed runs a system libvirtd and needs root"
    if shutil.which("qemu-system-x86_64") is None:
        return ("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86; "
                "bash .ci/setup does)")
    return None


def make_bed(name: str, management: str, corosync: str, **kwargs):
    from lab.qemu_bed.bed import QemuBed

    workdir = Path(tempfile.mkdtemp(prefix=f"pvechaos-{name}-"))
    workdir.chmod(0o755)  # qemu runs as libvirt-qemu and opens the disks under it
    return QemuBed(workdir, name=name, management=management, corosync=corosync,
                   cache=CACHE, **kwargs)


@pytest.fixture(scope="module")
def bed_factory() -> Iterator:
    """Call with (name, management, corosync): a prepared bed, torn down after the
    module (the lab's own `destroy`, then the pool and files; libvirtd if last out)."""
    beds = []

    def make(*args, **kwargs):
        bed = make_bed(*args, **kwargs)
        beds.append(bed)
        bed.prepare()
        return bed

    yield make
    for bed in beds:
        bed.teardown(out=lambda line: None)


def run(node: LabNode, command: str, timeout_s: float = 20.0):
    session = SshSession(node)
    try:
        return session.run(command, timeout_s=timeout_s)
    finally:
        session.close()


def out(node: LabNode, command: str, timeout_s: float = 20.0) -> str:
    result = run(node, command, timeout_s)
    assert result.rc == 0, f"{node.name}: {command}: {result.stderr}"
    return result.stdout.strip()


def boot_id(node: LabNode) -> str:
    return out(node, "cat /proc/sys/kernel/random/boot_id")


def wait_answers(node: LabNode, what: str, timeout_s: float = 120.0, *,
                 not_boot: str | None = None) -> str:
    """Waits until ``node`` answers SSH (on a boot other than ``not_boot``); its boot id."""
    from harness.errors import PvechaosError

    def answers() -> str | NotYet:
        try:
            current = boot_id(node)
        except (PvechaosError, AssertionError) as exc:
            return NotYet(str(exc))
        return current if current != not_boot else NotYet("still the old boot")

    return wait_until(what, answers, timeout_s=timeout_s, interval_s=1.0)


class Events:
    """libvirt events of a lab (node, event, detail) with the host's time of arrival."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[float, str, str, str]] = []

    def __call__(self, node: str, event: str, detail: str) -> None:
        with self._lock:
            self.seen.append((time.time(), node, event, detail))

    def since(self, t: float) -> list[tuple[float, str, str, str]]:
        with self._lock:
            return [e for e in self.seen if e[0] >= t]

    def wait_for(self, node: str, event: str, since: float, timeout_s: float = 60.0,
                 detail: str | None = None) -> tuple[float, str, str, str]:
        def arrived():
            for e in self.since(since):
                if e[1] == node and e[2] == event and (detail is None or e[3] == detail):
                    return e
            return NotYet(f"no {event} event of {node} yet; seen: "
                          f"{[e[1:] for e in self.since(since)]}")

        return wait_until(f"libvirt's {event} event of {node}", arrived,
                          timeout_s=timeout_s, interval_s=0.2)
