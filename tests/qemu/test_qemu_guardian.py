"""A run killed while it owns a qemu test bed, the libvirt lab on it (one VM powered off
by a power cut, the others running) and BMC servers leaves none of them behind: its
guardian (lab/run_guardian.py) runs their teardowns, the last made first (BMCs, the
lab's VMs off, the bed: domains, networks, pool, files, libvirtd if last out).

The runner (tests/qemu/bed_runner.py) is a process of its own, killed with SIGKILL;
nothing runs after it but the guardian. Bed qgrd on 198.19.178.0/24 and 198.19.179.0/24.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.waits import NotYet, wait_until
from lab import run_guardian
from lab.libvirt.plan import Plan
from lab.processes import process_start_time
from lab.qemu_bed.bed import load_config, teardown_recorded

REPO = Path(__file__).resolve().parents[2]
NAME, MANAGEMENT, COROSYNC = "qgrd", "198.19.178.0/24", "198.19.179.0/24"
READY_S = 600.0  # images, a cold boot of four TCG VMs, two BMC servers
GONE_S = 10.0  # the bound: nothing left within 10 s of the kill
LIBVIRT_ETC = Path("/etc/libvirt")


def left_behind(bed_dir: Path, bmc_dir: Path, bridges: tuple[str, ...]) -> list[str]:
    """Everything of the bed that could outlive the run, as readable strings; read
    without libvirtd (which goes when the last bed leaves): its persistent definitions,
    qemu processes, bridges, directories, the BMC servers' processes."""
    prefix = f"pvechaos-{NAME}"
    found = [str(p) for p in (*LIBVIRT_ETC.glob(f"qemu/{prefix}-*.xml"),
                              *LIBVIRT_ETC.glob(f"qemu/networks/{prefix}-*.xml"),
                              *LIBVIRT_ETC.glob(f"storage/{prefix}.xml"))]
    found += [f"directory {d}" for d in (bed_dir, bmc_dir) if d.exists()]
    found += [f"bridge {b}" for b in bridges if Path("/sys/class/net", b).exists()]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if f"guest={prefix}-" in cmdline or cwd.startswith(str(bmc_dir)):
            found.append(f"process {proc.name}: {cmdline[:120]}")
    return found


def wait_ready(proc: subprocess.Popen) -> list[str]:
    """The runner's "ready" line (bounded); a runner that ended says why."""
    seen = b""
    deadline = time.monotonic() + READY_S
    while b"\n" not in seen.partition(b"ready ")[2]:
        left = deadline - time.monotonic()
        assert left > 0, f"the runner was not ready within {READY_S:g} s: {seen[-3000:]}"
        readable, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
        if readable:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                proc.wait(timeout=10)
                pytest.fail(f"the runner ended (exit {proc.returncode}) before it was "
                            f"ready:\n{seen.decode(errors='replace')[-4000:]}")
            seen += chunk
    return seen.partition(b"ready ")[2].split(b"\n")[0].decode().split()


def test_a_killed_run_leaves_no_bed_lab_or_bmc_behind(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PVECHAOS_BMC_PASSWORD": "qgrd-bmc"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.qemu.bed_runner", NAME,
                             MANAGEMENT, COROSYNC], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    bed_dir = bmc_dir = None
    try:
        bed_dir, bmc_dir = map(Path, wait_ready(proc))
        plan = Plan(load_config(bed_dir / "lab.yaml"))
        bridges = (plan.management_bridge, plan.corosync_bridge)
        guard = run_guardian.owner_dir(run_guardian.ROOT, proc.pid,
                                       process_start_time(proc.pid))
        names = sorted(p.stem.split("-", 2)[-1] for p in run_guardian.records(guard))
        assert names == ["bmc-servers", f"libvirt-{NAME}", f"qemu-bed-{NAME}"], names
        before = left_behind(bed_dir, bmc_dir, bridges)
        assert any("guest=pvechaos-qgrd-node2" in x for x in before), before
        assert not any("guest=pvechaos-qgrd-node1" in x for x in before), before  # cut
        assert any(x.startswith("process") and "sushy" in x for x in before), before
        log = run_guardian.ROOT / f"guardian-{proc.pid}.log"
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

        def nothing_left():
            left = left_behind(bed_dir, bmc_dir, bridges)
            return True if not left and not guard.exists() else NotYet(left or [str(guard)])

        try:
            wait_until("the killed run's bed, lab and BMCs removed", nothing_left,
                       timeout_s=GONE_S, interval_s=0.1)
        except Exception as exc:
            text = log.read_text() if log.exists() else "(no guardian log)"
            raise AssertionError(f"{exc}\nguardian log:\n{text}") from None
        took = time.monotonic() - killed
        text = log.read_text()
        assert "owner ended without removing 3" in text and "done in" in text, text
        assert "failed" not in text, text
        print(f"run killed -> nothing of the bed left in {took:.2f} s\n{text}")
        log.unlink()  # read: a self-test leaves no log of a kill it made on purpose
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        if bed_dir is not None and bed_dir.exists():  # the test failed: clean up anyway
            teardown_recorded(workdir=str(bed_dir), name=NAME, management=MANAGEMENT,
                              corosync=COROSYNC)
