"""A runner killed mid-fault leaves nothing behind: its lab's guardian removes the lab
(lab/embedded/guardian.py); `pvechaos lab cleanup --all` removes a lab whose owner is
gone and keeps one whose owner runs.

Each runner (tests/integration/guardian_runner.py) is a process of its own that starts
an embedded lab, applies a fault, says "ready" and is then killed by the test; it never
closes its lab. Labs grd1..grd4 on 198.18.171-174.0/24.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from harness.errors import PvechaosError
from harness.waits import NotYet, wait_until
from lab.embedded import remove_leftovers
from lab.embedded.config import STATE_ROOT, EmbeddedConfig
from lab.embedded.provision import REPO_ROOT
from lab.embedded.state import LabState
from lab.processes import process_alive
from tests.integration.conftest import leftovers

READY_S = 120.0  # three labs booting at once on a small shared host
GONE_S = 10.0  # the brief's bound on the guardian's teardown

CASES = {  # signal: (lab name, subnet, the fault the runner applies before "ready")
    signal.SIGKILL: ("grd1", "198.18.171.0/24", "power-cut"),
    signal.SIGTERM: ("grd2", "198.18.172.0/24", "partition"),
    signal.SIGINT: ("grd3", "198.18.173.0/24", "netem"),
}


def config(name: str, subnet: str) -> EmbeddedConfig:
    return EmbeddedConfig(name=name, subnet=subnet)


def start_runner(name: str, subnet: str, fault: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.guardian_runner", name, subnet, fault],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def wait_ready(runners: dict[str, subprocess.Popen], timeout_s: float = READY_S) -> None:
    """Every runner has printed "ready" (bounded); a runner that ended says why."""
    out = {name: b"" for name in runners}
    deadline = time.monotonic() + timeout_s
    while not all(b"ready\n" in seen for seen in out.values()):
        pending = {r.stdout.fileno(): n for n, r in runners.items() if b"ready\n" not in out[n]}
        left = deadline - time.monotonic()
        assert left > 0, f"runners {sorted(pending.values())} not ready within " \
                         f"{timeout_s:g} s: {out}"
        readable, _, _ = select.select(list(pending), [], [], min(left, 1.0))
        for fd in readable:
            chunk = os.read(fd, 65536)
            name = pending[fd]
            out[name] += chunk
            if not chunk:
                runners[name].wait(timeout=10)
                pytest.fail(f"runner {name} ended (exit {runners[name].returncode}) "
                            f"before it was ready:\n{out[name].decode(errors='replace')}")


# other labs on this shared host start and stop meanwhile (the test files run two at a
# time): embedded labs' links (`pvc-*`), the libvirt lab's and qemu bed's bridges
# (`pvcv*`), their guests' taps (`vnet*`) and libvirtd's own nft tables (LIBVIRT_* chains)
OTHER_LABS = ("pvc", "vnet", "virbr")


def host_network() -> dict[str, list[str]]:
    """The host's own links, routes and nft ruleset, without any lab's objects."""
    views = {}
    for what, argv in {"links": ["ip", "-o", "link"], "routes": ["ip", "route"],
                       "nft": ["nft", "list", "ruleset"]}.items():
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
        text = done.stdout
        if what == "nft":  # whole tables: libvirtd's come and go with its networks
            text = "\n".join(t for t in re.split(r"\n(?=table )", text)
                             if "LIBVIRT" not in t and "pvcv" not in t)
        views[what] = [line for line in text.splitlines()
                       if not any(mark in line for mark in OTHER_LABS)]
    return views


def gone(configs: list[EmbeddedConfig]):
    def check():
        left = [x for c in configs for x in leftovers(c)]
        return True if not left else NotYet(left)
    return check


def guardian_log(cfg: EmbeddedConfig) -> str:
    try:
        return cfg.guardian_log.read_text()
    except OSError:
        return "(no guardian log)"


@pytest.fixture
def runners():
    """Runners the test starts; any still running at the end is killed and its lab
    removed, so a failed test leaves nothing either."""
    made: dict[str, tuple[subprocess.Popen, EmbeddedConfig]] = {}

    def start(name: str, subnet: str, fault: str) -> subprocess.Popen:
        cfg = config(name, subnet)
        assert leftovers(cfg) == [], f"lab {name} exists before the test: {leftovers(cfg)}"
        cfg.guardian_log.unlink(missing_ok=True)
        made[name] = (start_runner(name, subnet, fault), cfg)
        return made[name][0]

    yield start
    for proc, _cfg in made.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    for _proc, cfg in made.values():
        try:
            wait_until(f"lab {cfg.name} removed", gone([cfg]), timeout_s=GONE_S)
        except PvechaosError:  # the test has failed already, or says so below
            remove_leftovers(cfg)
        assert leftovers(cfg) == []


def test_a_killed_runner_leaves_nothing_behind(runners):
    before = host_network()
    procs = {CASES[sig][0]: runners(*CASES[sig]) for sig in CASES}
    wait_ready(procs)
    configs = {sig: config(name, subnet) for sig, (name, subnet, _f) in CASES.items()}
    for cfg in configs.values():  # the lab and its fault are there, the owner runs
        state = LabState(cfg.lab_dir)
        assert state.load() and state.owner_alive() == procs[cfg.name].pid
        assert state.guardian is not None and process_alive(
            state.guardian["pid"], state.guardian["start"]), f"{cfg.name}: no guardian"
        assert any(x.startswith("process ") for x in leftovers(cfg))
    # the netem fault took effect: node2's netem qdisc (or, on a kernel without sch_netem
    # like this one, the NFQUEUE delayer's queue rule) and its random-loss rule, and
    # node3's dead cable
    netem = configs[signal.SIGINT]
    inside = {what: subprocess.run(["ip", "netns", "exec", netem.netns("node2"), *argv],
                                   capture_output=True, text=True, timeout=10).stdout
              for what, argv in (("tc", ["tc", "qdisc", "show"]),
                                 ("nft", ["nft", "list", "ruleset"]))}
    assert "netem" in inside["tc"] or " queue " in inside["nft"], inside
    assert "numgen random" in inside["nft"], inside["nft"]
    link = subprocess.run(["ip", "-o", "link", "show", netem.veth("node3")],
                          capture_output=True, text=True, timeout=10).stdout
    assert "state DOWN" in link or "<BROADCAST,MULTICAST>" in link, link
    killed = {}
    for sig, cfg in configs.items():
        procs[cfg.name].send_signal(sig)
        killed[sig] = time.monotonic()
    for sig, cfg in configs.items():
        procs[cfg.name].wait(timeout=10)
        assert procs[cfg.name].returncode != 0, f"{cfg.name} ended cleanly on {sig!r}"
    took = {}
    for sig, cfg in configs.items():
        try:
            wait_until(f"lab {cfg.name} removed after {sig.name}", gone([cfg]),
                       timeout_s=GONE_S, interval_s=0.1)
        except Exception as exc:
            raise AssertionError(f"{exc}\nguardian log:\n{guardian_log(cfg)}") from None
        took[sig.name] = round(time.monotonic() - killed[sig], 2)
        log = guardian_log(cfg)
        assert f"owner pid {procs[cfg.name].pid} ended without closing the lab" in log, log
        assert "removed in" in log, log
    print(f"owner killed -> nothing left, seconds: {took}")
    assert host_network() == before


def test_cleanup_all_keeps_a_running_owner_and_removes_a_gone_one(runners):
    kept_cfg, gone_cfg = config("grd1", "198.18.171.0/24"), config("grd4", "198.18.174.0/24")
    kept = runners(kept_cfg.name, kept_cfg.subnet, "none")
    old = runners(gone_cfg.name, gone_cfg.subnet, "none")
    wait_ready({kept_cfg.name: kept, gone_cfg.name: old})
    state = LabState(gone_cfg.lab_dir)
    assert state.load() and state.guardian is not None
    guardian = state.guardian
    os.kill(guardian["pid"], signal.SIGKILL)  # an old run: no guardian to remove its lab
    wait_until("the guardian killed", lambda: not process_alive(guardian["pid"],
                                                                guardian["start"]),
               timeout_s=5, interval_s=0.05)
    old.kill()
    old.wait(timeout=10)
    assert leftovers(gone_cfg), "the lab of a killed runner without a guardian is left"

    # the command as a user runs it, listing only: other runs share this host's labs
    listed = subprocess.run(
        [sys.executable, "-m", "lab.cli", "lab", "cleanup", "--all", "--dry-run"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert listed.returncode == 0, listed.stderr
    assert f"  grd1: kept: owner pid {kept.pid} runs" in listed.stdout, listed.stdout
    assert (f"  grd4: would be removed: owner pid {old.pid} is gone, its guardian pid "
            f"{guardian['pid']} too") in listed.stdout, listed.stdout
    assert leftovers(gone_cfg), "--dry-run removed something"

    # the same code removing, limited to this test's two labs
    from lab import lab_cli

    lines: list[str] = []
    assert lab_cli.cleanup_all(STATE_ROOT, only={"grd1", "grd4"}, say=lines.append) == 0
    text = "\n".join(lines)
    assert f"  grd1: kept: owner pid {kept.pid} runs" in text, text
    assert f"  grd4: removed: owner pid {old.pid} is gone" in text, text
    assert "pvechaos: removed 1, kept 1" in text, text
    assert leftovers(gone_cfg) == []
    assert LabState(kept_cfg.lab_dir).load() and leftovers(kept_cfg), "a running lab was taken"

    kept.terminate()  # its guardian removes it
    kept.wait(timeout=10)
    wait_until("lab grd1 removed by its guardian", gone([kept_cfg]), timeout_s=GONE_S,
               interval_s=0.1)

