"""An embedded lab left running for people to explore (`pvechaos lab up|status|ssh|down`).

``up`` boots the lab, forms its cluster the way the ``cluster`` fixture does
(harness/formation.py ``bring_up``), optionally puts the HA test guest on it the way the
scenarios do (harness/ha_guest.py), writes ``lab.json`` (how it was made) and
``known_hosts`` into the lab directory, and hands the lab to its own NFS stand-in
(``EmbeddedLab.detach``); then the command ends and the lab runs on.

What keeps it alive: every lab process (each node's launcher and init, the NFS stand-in)
was started in a session of its own and is a child of no terminal, so the end of ``up``
(or of its terminal) signals none of them; they are re-parented to the host's init. Each
node's ``unshare --kill-child`` launcher lives as long as its node's init. The state
file (lab/embedded/state.py) lists every process, link, namespace and cgroup, and names
the NFS stand-in as the owner, so a later run with the same name is refused instead of
sweeping the running lab.

What ends it: ``down`` (and ``cleanup``) sweeps exactly what the state file lists
(cgroups thawed and emptied, processes SIGKILLed, links and namespaces deleted, the lab
directory removed), then the kernel objects named for the lab. An ``up`` that fails or is
interrupted half way closes the lab it began (``EmbeddedLab.close``).
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.cluster import Cluster
from harness.errors import ConfigError, LabError
from harness.expectations import first_start_bound, read_constants
from harness.fixtures import GUEST_VMID  # the scenarios' test guest
from harness.formation import bring_up
from harness.ha_guest import HaGuest
from harness.timescale import Timescale
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from lab.embedded.provision import node_dir
from lab.embedded.state import LabState
from lab.processes import process_alive

RECORD = "lab.json"
COMMAND_TIMEOUT_S = 20.0  # one `pvecm status` / `ha-manager status` for `status`


@dataclass(frozen=True)
class Running:
    """A lab `up` left running, as its lab directory records it."""

    config: EmbeddedConfig
    cluster_name: str
    guest: str | None  # the HA guest's service id, when `up --guest` made one

    @property
    def key(self) -> Path:
        return self.config.lab_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.config.lab_dir / "known_hosts"

    def address(self, node: str) -> str:
        if node not in self.config.node_names:
            raise ConfigError(f"{node!r} is not a node of lab '{self.config.name}'",
                              hint=f"its nodes are {', '.join(self.config.node_names)}")
        return self.config.node_address(node)

    def ssh_login(self, node: str) -> list[str]:
        """The plain ssh line for root on ``node`` (from the host, which is on the lab
        bridge): the lab's key and its nodes' host keys, nothing of the user's."""
        return ["ssh", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                f"root@{self.address(node)}"]

    def ssh_argv(self, node: str, command: list[str]) -> list[str]:
        """``ssh_login`` bounded in connecting; with a command also never prompting."""
        *options, target = self.ssh_login(node)
        options += ["-o", "ConnectTimeout=5"] + (["-o", "BatchMode=yes"] if command else [])
        return [*options, target, *command]

    def powered(self) -> dict[str, bool]:
        state = LabState(self.config.lab_dir)
        state.load()
        processes = state.data.get("processes", {})
        return {n: n in processes and process_alive(processes[n]["pid"],
                                                    processes[n].get("start"))
                for n in self.config.node_names}


def not_running(name: str) -> LabError:
    return LabError(f"no lab named {name!r} is running",
                    hint=f"start one with: pvechaos lab up --name {name}")


def find(config: EmbeddedConfig) -> Running | None:
    """The running lab of ``config.name`` that `up` left, or None."""
    state = LabState(config.lab_dir)
    try:
        record = json.loads((config.lab_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not state.load() or not state.detached or state.owner_alive() is None:
        return None
    made = EmbeddedConfig(name=config.name, subnet=record["subnet"],
                          allowed_range=record["allowed_range"], node_count=record["nodes"],
                          pve_version=record["pve_version"],
                          timescale=Timescale(record["timescale"]),
                          qdevice=bool(record.get("qdevice", False)),
                          emulation_bugs=tuple(record.get("emulation_bugs", ())),
                          state_root=config.state_root)
    return Running(made, record["cluster_name"], record.get("guest"))


def attach(running: Running) -> EmbeddedLab:
    """The running lab as a Lab the harness can reach (its nodes' host keys pinned), for
    read-only use such as `pvechaos preflight`: it is not this process's to close."""
    return EmbeddedLab.running(running.config)


def require(config: EmbeddedConfig) -> Running:
    running = find(config)
    if running is None:
        raise not_running(config.name)
    return running


@contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """SIGTERM / SIGHUP during `up` end it like Ctrl-C: the half-made lab is removed."""
    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def up(config: EmbeddedConfig, *, cluster_name: str, guest: bool,
       say: Callable[[str], None] = print) -> Running:
    """Boot, form, optionally add the guest, record and detach; a failure or an
    interruption on the way removes everything made so far."""
    lab = EmbeddedLab(config)
    with _signals_end_the_run():
        say(f"pvechaos: booting lab '{config.name}' ({config.node_count} nodes on "
            f"{config.subnet}, PVE {config.pve_version}, timescale {config.timescale:g})")
        lab.start()  # closes what it made when it fails
        try:
            cluster = Cluster(lab)
            try:
                say(f"pvechaos: forming cluster '{cluster_name}'")
                bring_up(cluster, cluster_name)
                sid = _add_guest(lab, cluster, say) if guest else None
                if config.qdevice:
                    say(f"pvechaos: qnetd host at {config.qnetd_address} (corosync-qnetd):"
                        f" set the QDevice up with `pvecm qdevice setup "
                        f"{config.qnetd_address}` on a node")
            finally:
                cluster.close()
            running = leave_running(lab, cluster_name, sid)
        except BaseException:
            say(f"pvechaos: lab '{config.name}' did not come up: removing what was made")
            lab.close()
            raise
    return running


def leave_running(lab: EmbeddedLab, cluster_name: str, guest: str | None) -> Running:
    """Record how the started ``lab`` was made (lab.json, the nodes' known_hosts) and
    detach it: `pvechaos lab ssh/status/down` find it by its name (`up`, and pytest's
    --keep-lab for a failed scenario's lab)."""
    config = lab.config
    shutil.copyfile(node_dir(config, config.node_names[0]) /
                    "etc/ssh/pvechaos_known_hosts", config.lab_dir / "known_hosts")
    (config.lab_dir / RECORD).write_text(json.dumps({
        "subnet": config.subnet, "allowed_range": config.allowed_range,
        "nodes": config.node_count, "pve_version": config.pve_version,
        "timescale": config.timescale.factor, "cluster_name": cluster_name,
        "guest": guest, "qdevice": config.qdevice,
        "emulation_bugs": list(config.emulation_bugs)}, indent=1) + "\n")
    lab.detach()
    return Running(config, cluster_name, guest)


def _add_guest(lab: EmbeddedLab, cluster: Cluster, say: Callable[[str], None]) -> str:
    the_guest = HaGuest(cluster, lab.guest_recipe(GUEST_VMID), lab.shared_storage())
    first = cluster.names[0]
    say(f"pvechaos: creating the HA test guest {the_guest.sid} on {first}")
    constants = read_constants(cluster.node(first), lab.config.timescale, len(cluster.names))
    the_guest.set_up(first, timeout_s=first_start_bound(constants))
    return the_guest.sid


def how_to_reach(running: Running) -> list[str]:
    name, first = running.config.name, running.config.node_names[0]
    flag = f" --name {name}"
    raw = shlex.join(running.ssh_login(first))
    lines = [f"lab '{name}' is up: nodes "
             + ", ".join(f"{n} {running.config.node_address(n)}"
                         for n in running.config.node_names)]
    if running.guest:
        r = EmbeddedLab(running.config).guest_recipe(GUEST_VMID)
        lines.append(f"HA guest {running.guest} at {r.address}:{r.port}")
    lines += [f"  shell:  pvechaos lab ssh{flag} {first}",
              f"  run:    pvechaos lab ssh{flag} {first} ha-manager status",
              f"  status: pvechaos lab status{flag}",
              f"  raw:    {raw}",
              f"  down:   pvechaos lab down{flag}"]
    return lines


def status(running: Running) -> tuple[list[str], bool]:
    """What `lab status` prints, and whether the cluster answered quorate."""
    powered = running.powered()
    lines = [f"lab '{running.config.name}': {running.config.node_count} nodes on "
             f"{running.config.subnet}, cluster '{running.cluster_name}', timescale "
             f"{running.config.timescale:g}"]
    if running.config.emulation_bugs:
        lines.append(f"  emulation bug {', '.join(running.config.emulation_bugs)} "
                     "(deliberately unsafe)")
    lines += [f"  {n:<8} {running.config.node_address(n):<15} "
              f"{'powered' if on else 'off'}" for n, on in powered.items()]
    asked = next((n for n, on in powered.items() if on), None)
    if asked is None:
        return [*lines, "no node is powered"], False
    quorate = False
    for argv in (["pvecm", "status"], ["ha-manager", "status"]):
        result = _run(running, asked, argv)
        lines.append(f"{' '.join(argv)} on {asked} (exit {result.returncode}):")
        out = (result.stdout + result.stderr).strip()
        if argv[0] == "pvecm":
            line = next((x for x in out.splitlines() if x.startswith("Quorate:")), None)
            quorate = line is not None and line.split(":", 1)[1].strip() == "Yes"
            out = line or out
        lines += [f"  {x}" for x in out.splitlines()] or ["  (nothing)"]
    return lines, quorate


def _run(running: Running, node: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(running.ssh_argv(node, argv), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"no answer within "
                                           f"{COMMAND_TIMEOUT_S:g} s")


def down(config: EmbeddedConfig) -> bool:
    """Remove the lab of ``config.name``, running or left over; True when there was one.
    A lab another live process owns (a test run) is refused (state.sweep)."""
    from lab.embedded import remove_leftovers

    running = find(config)
    return remove_leftovers(running.config if running else config,  # its node count
                            take_detached=True)
