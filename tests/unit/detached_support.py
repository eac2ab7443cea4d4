"""A lab directory as `pvechaos lab up` leaves it, for tests that need no real lab: its
record, its host keys' file, and a state file owned by a live stand-in process (a
``sleep``, ended when the test ends; a real lab's owner is its NFS stand-in)."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from harness.timescale import Timescale
from lab.embedded.config import EmbeddedConfig
from lab.embedded.detached import RECORD, Running, find
from lab.embedded.state import LabState


def stand_in(request: pytest.FixtureRequest) -> subprocess.Popen:
    proc = subprocess.Popen(["sleep", "120"])
    # reaped at once when killed, as the host's init reaps a real lab's processes (a
    # zombie would still count as alive)
    threading.Thread(target=proc.wait, daemon=True).start()

    def end() -> None:
        proc.kill()
        proc.wait(timeout=10)

    request.addfinalizer(end)
    return proc


def running_lab(tmp_path: Path, request: pytest.FixtureRequest, *, name: str = "cli",
                nodes: int = 3, detached: bool = True, qdevice: bool = False) -> Running:
    config = EmbeddedConfig(name=name, subnet="198.18.60.0/24", node_count=nodes,
                            timescale=Timescale(0.1), state_root=tmp_path, qdevice=qdevice)
    state = LabState(config.lab_dir)
    owner = stand_in(request)
    if detached:
        state.detach(owner.pid)
    else:  # a test run's lab: owned by that run's process
        state.data["owner"] = {"pid": owner.pid, "start": None}
        state.save()
    state.set_process("nfs-server", owner.pid)
    (config.lab_dir / RECORD).write_text(json.dumps({
        "subnet": config.subnet, "allowed_range": config.allowed_range, "nodes": nodes,
        "pve_version": config.pve_version, "timescale": 0.1, "cluster_name": "pvechaos",
        "guest": None, "qdevice": qdevice}))
    (config.lab_dir / "known_hosts").write_text("")
    found = find(EmbeddedConfig(name=name, state_root=tmp_path))
    return found if found is not None else Running(config, "pvechaos", None)
