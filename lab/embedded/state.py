"""The lab's state directory: what a run created, so the next run can remove it.

A run killed with SIGKILL cannot clean up after itself. Everything the lab creates
(processes, namespaces, links, directories) is written to ``state.json`` before it is
created; the next start of a lab with the same name sweeps what is listed there first.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

from harness.errors import LabError
from lab.embedded import freeze
from lab.embedded.network import delete_link, delete_netns
from lab.processes import process_alive, process_start_time


class LabState:
    def __init__(self, lab_dir: Path) -> None:
        self.lab_dir = lab_dir
        self.path = lab_dir / "state.json"
        self.data: dict = {"owner": None, "netns": [], "links": [], "processes": {},
                           "cgroups": []}

    def load(self) -> bool:
        try:
            self.data = json.loads(self.path.read_text())
            return True
        except (OSError, ValueError):
            return False

    def save(self) -> None:
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    def claim(self) -> None:
        """This process owns the lab: its pid and start time (/proc/<pid>/stat field 22),
        so a later process given the same pid is not taken for it."""
        pid = os.getpid()
        self.data["owner"] = {"pid": pid, "start": process_start_time(pid)}
        self.save()

    def set_guardian(self, pid: int | None) -> None:
        """The lab's guardian (lab/embedded/guardian.py), recorded with the owner: a sweep
        ends it before it removes the lab."""
        owner = self.data.get("owner") or {}
        if pid is None:
            owner.pop("guardian", None)
        else:
            owner["guardian"] = {"pid": pid, "start": process_start_time(pid)}
        self.data["owner"] = owner
        self.save()

    @property
    def guardian(self) -> dict | None:
        return (self.data.get("owner") or {}).get("guardian")

    def detach(self, pid: int) -> None:
        """Hand the lab to one of its own long-lived processes (``pvechaos lab up``): the
        lab then belongs to a live owner for as long as it runs, so no other run sweeps
        it, and only a sweep that takes detached labs (``lab down``) removes it."""
        self.data["owner"] = {"pid": pid, "start": process_start_time(pid), "detached": True}
        self.save()

    @property
    def detached(self) -> bool:
        return bool((self.data.get("owner") or {}).get("detached"))

    def owner_alive(self) -> int | None:
        owner = self.data.get("owner") or {}
        pid = owner.get("pid")
        if pid and pid != os.getpid() and process_alive(pid, owner.get("start")):
            return pid
        return None

    def add(self, kind: str, name: str) -> None:
        listed = self.data.setdefault(kind, [])
        if name not in listed:
            listed.append(name)
            self.save()

    def set_process(self, key: str, pid: int | None) -> None:
        if pid is None:
            self.data["processes"].pop(key, None)
        else:
            self.data["processes"][key] = {"pid": pid, "start": process_start_time(pid)}
        self.save()


def kill_recorded(processes: dict[str, dict], timeout_s: float = 5.0) -> None:
    for entry in processes.values():
        if process_alive(entry["pid"], entry.get("start")):
            try:
                os.kill(entry["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(process_alive(e["pid"], e.get("start")) for e in processes.values()):
            return
        time.sleep(0.05)
    left = [str(e["pid"]) for e in processes.values() if process_alive(e["pid"], e.get("start"))]
    raise LabError(f"lab processes {', '.join(left)} survived SIGKILL for {timeout_s} s",
                   hint="look for processes stuck in the kernel (ps -o pid,stat,wchan)")


def remove_cgroups(paths: list[str]) -> None:
    """Thaw, empty and remove the nodes' freezer cgroups (lab/embedded/freeze.py)."""
    for path in paths:
        freeze.remove(Path(path))


def lab_names(state_root: Path) -> list[str]:
    """The labs with a directory under the state root (not `.ready`, lab/embedded/ready.py:
    no lab name starts with a dot)."""
    from lab.options import LAB_NAME

    return sorted(p.name for p in state_root.glob("*")
                  if p.is_dir() and LAB_NAME.fullmatch(p.name))


def kernel_objects() -> dict[str, list[str]]:
    """Every embedded lab's kernel objects on this host, by lab name, as readable strings:
    namespaces ``pvechaos-<name>-<node|qnetd>``, links ``pvc-<name>[-<n>|-q]`` and freezer
    cgroups ``pvechaos-<name>-<node>`` (lab/embedded/config.py names them all)."""
    from lab.options import LAB_NAME

    name = f"({LAB_NAME.pattern})"
    found: dict[str, list[str]] = {}
    kinds = [("namespace", Path("/run/netns"), re.compile(rf"pvechaos-{name}-(node\d|qnetd)")),
             ("link", Path("/sys/class/net"), re.compile(rf"pvc-{name}(-\d|-q)?"))]
    root = freeze.cgroup_root()
    if root is not None:
        kinds.append(("cgroup", root, re.compile(rf"pvechaos-{name}-node\d")))
    for kind, where, pattern in kinds:
        try:
            entries = sorted(p.name for p in where.iterdir())
        except OSError:
            continue
        for entry in entries:
            match = pattern.fullmatch(entry)
            if match:
                found.setdefault(match.group(1), []).append(f"{kind} {entry}")
    return found


def sweep(lab_dir: Path, *, take_detached: bool = False) -> bool:
    """Remove everything a previous run of this lab left. True when something was found.
    A lab left running on purpose (``LabState.detach``) is removed only with
    ``take_detached`` (``pvechaos lab down``); any other live owner always refuses."""
    state = LabState(lab_dir)
    if not state.load():
        if lab_dir.exists():
            shutil.rmtree(lab_dir, ignore_errors=True)
            return True
        return False
    owner = state.owner_alive()
    if owner and state.detached and not take_detached:
        raise LabError(f"lab '{lab_dir.name}' is running: `pvechaos lab up` left it up "
                       f"(its process {owner})",
                       hint=f"take it down first (pvechaos lab down --name {lab_dir.name}), "
                            "or give this run another --lab-name and --lab-subnet")
    if owner and not state.detached:
        raise LabError(f"lab directory {lab_dir} belongs to a running process (pid {owner})",
                       hint="wait for that run to end, or give this run another --lab-name "
                            "and --lab-subnet")
    guardian = state.guardian
    if guardian and guardian.get("pid") != os.getpid():  # never races this sweep
        kill_recorded({"guardian": guardian})
    remove_cgroups(state.data.get("cgroups", []))  # thawed first: a frozen v1 task
    kill_recorded(state.data.get("processes", {}))  # ignores SIGKILL until thawed
    for link in state.data.get("links", []):
        delete_link(link)
    for ns in state.data.get("netns", []):
        delete_netns(ns)
    shutil.rmtree(lab_dir, ignore_errors=True)
    return True
