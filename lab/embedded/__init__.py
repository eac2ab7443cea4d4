"""The embedded lab: nodes as Linux namespaces on one machine, each running the real
corosync and sshd plus the emulated PVE node stack (see pvemu/).

Per node: its own pid, mount, uts and network namespaces; one address on the lab bridge;
its own /etc (an overlay of the host's), /var/lib/corosync, /var/log, /run, /tmp and
/dev/shm. A power cut SIGKILLs the node's init (the kernel then kills every process in
its pid namespace) and drops its link; power on boots it again. A freeze stops every
process of the node at once, its clocks running on (lab/embedded/freeze.py). The shared
storage's server is a stand-in process on the host (lab/embedded/nfs_server.py); a
storage outage stops it, and every node's mount of it stalls like an NFS hard mount.
With ``formed="reuse"`` the lab saves its formed cluster (``save_ready``) and a later start
boots it again instead of a blank one (lab/embedded/ready.py).
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time

from harness.errors import ConfigError, InterlockError, LabError
from harness.lab_api import (
    Capability,
    GuestRecipe,
    LabNode,
    RefusesWhatItLacks,
    SharedStorage,
    unsupported,
)
from lab.embedded import (
    freeze,
    network,
    nfs_server,
    preflight,
    provision,
    qnetd,
    ready,
    upgrade,
)
from lab.embedded.config import EmbeddedConfig
from lab.embedded.node import NodePower
from lab.embedded.provision import CT_TEMPLATE
from lab.embedded.state import LabState, kill_recorded, remove_cgroups, sweep

__all__ = ["EmbeddedConfig", "EmbeddedLab", "remove_leftovers"]

GUEST_OFFSET = 20  # guest addresses start at .20 (host .1, nodes .11..)
log = logging.getLogger("pvechaos.lab")


def _guardian():
    """lab/embedded/guardian.py, imported when used: it runs as `python -m
    lab.embedded.guardian`, which imports this package first."""
    from lab.embedded import guardian

    return guardian


def remove_leftovers(config: EmbeddedConfig, *, take_detached: bool = False) -> bool:
    """Remove what a lab of this name left behind; True when its state directory was
    there. Everything its state file lists goes (state.sweep: the guardian, cgroups
    thawed and emptied, processes SIGKILLed, links, namespaces, the directory), then the
    kernel objects named for it that no state file lists (a run killed early). The one
    teardown of a lab nobody closed: a lab's next start, `pvechaos lab cleanup|down` and
    the lab's guardian all run it. A live owner refuses it (state.sweep)."""
    found = sweep(config.lab_dir, take_detached=take_detached)
    EmbeddedLab(config)._remove_stray_kernel_objects()
    return found


class EmbeddedLab(RefusesWhatItLacks):
    kind = "embedded"
    capabilities = (Capability.POWER | Capability.PARTITION | Capability.FREEZE
                    | Capability.STORAGE | Capability.SNAPSHOT | Capability.QDEVICE
                    | Capability.UPGRADE)

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        self.name = config.name
        self.state = LabState(config.lab_dir)
        self._power = {n: NodePower(config, n, self.state) for n in config.node_names}
        self._started = False
        self._nfs: subprocess.Popen | None = None
        self._qnetd: subprocess.Popen | None = None  # the QDevice arbiter (--qdevice)
        self._storage_out = False
        self._ready: ready.Ready | None = None  # the ready state this start booted
        self._guardian: subprocess.Popen | None = None  # lab/embedded/guardian.py
        if config.formed == "never":  # no ready state: neither booted nor saved
            self.capabilities &= ~Capability.SNAPSHOT
        if not config.qdevice:  # no qnetd host (--qdevice)
            self.capabilities &= ~Capability.QDEVICE

    @classmethod
    def from_options(cls, **options: object) -> EmbeddedLab:
        known = set(EmbeddedConfig.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown embedded lab option(s) {unknown}",
                              hint=f"valid options: {', '.join(sorted(known))}")
        return cls(EmbeddedConfig(**options))  # type: ignore[arg-type]

    # -- the Lab protocol -------------------------------------------------------------
    def nodes(self) -> tuple[LabNode, ...]:
        key = self.config.lab_dir / "id_ed25519"
        return tuple(
            LabNode(name=n, address=self.config.node_address(n), ssh_key=key,
                    link0=self.config.node_address(n),
                    host_key=provision.host_key(self.config, n) if self._started else None)
            for n in self.config.node_names)

    def prepared(self) -> bool:
        """True when this start booted a saved formed cluster (lab/embedded/ready.py)."""
        return self._ready is not None

    def keeps_changes(self) -> bool:
        return False  # every start is fresh, or its ready state (which holds no guest)

    def join_password(self) -> str | None:
        return None  # nodes share root's SSH key: `pvecm add --use_ssh`

    def start(self) -> None:
        preflight.check_host()
        if self.config.emulation_bugs:  # loud: a lab that is unsafe on purpose
            log.warning("lab '%s' starts with emulation bug %s switched on: its HA stack "
                        "breaks PVE's safety on purpose (a self-test switch, never for "
                        "anything else)", self.name, ", ".join(self.config.emulation_bugs))
        if remove_leftovers(self.config):
            print(f"pvechaos: removed what an earlier run of lab '{self.name}' left behind")
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _remove_stray_kernel_objects(self) -> None:
        """Objects named for this lab but listed in no state file (a run killed early)."""
        network.remove_lab_network(self.config)
        qnetd.remove_network(self.config)
        for node in self.config.node_names:
            path = freeze.cgroup_path(self.name, node)
            if path is not None:
                freeze.remove(path)

    def _build(self) -> None:
        config = self.config
        self.state.claim()
        # before anything is made: an owner killed from here on leaves nothing behind
        self._guardian = _guardian().start(config, self.state, provision.REPO_ROOT)
        self._check_subnet_free()
        self._ready = ready.find(config) if config.formed == "reuse" else None
        if self._ready is not None:  # before provisioning: it keeps the restored keys
            ready.restore(self._ready, config)
        self.state.add("links", config.bridge)
        network.create_bridge(config)
        self._nfs = nfs_server.start(config.host_address, config.lab_dir, provision.REPO_ROOT)
        self.state.set_process("nfs-server", self._nfs.pid)
        for node in config.node_names:
            self.state.add("netns", config.netns(node))
            self.state.add("links", config.veth(node))
            network.create_node_network(config, node)
        lab_key = provision.make_lab_key(config)
        for node in config.node_names:
            provision.provision_node(config, node, lab_key)
        provision.write_known_hosts(config)
        if config.qdevice:
            self._start_qnetd(lab_key)
        for node in config.node_names:
            self._power[node].boot()
        self._wait_for_ssh(config.node_names)
        if config.qdevice:
            self._wait_for_ssh([config.QNETD])
        self._started = True

    def save_ready(self) -> None:
        """Save the formed cluster as the lab's ready state: every node powered off
        cleanly (in parallel, bounded), its files copied, every node booted again; returns
        when each answers SSH (the harness then waits for quorum)."""
        if Capability.SNAPSHOT not in self.capabilities:
            raise LabError(f"lab '{self.name}' keeps no ready state (formed=never)",
                           hint="make it with formed='reuse' (--lab-formed reuse)")
        names = self.config.node_names
        deadline = time.monotonic() + 20.0
        for request in [self._power[n].request_poweroff() for n in names]:
            if request is not None:
                try:
                    request.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    request.kill()
                    request.wait(timeout=5)
        unclean = [n for n in names if not self._power[n].wait_off(deadline)]
        if unclean:
            print(f"pvechaos: lab '{self.name}': {', '.join(unclean)} did not power off "
                  "in time and lost power instead; saving the ready state anyway")
        try:
            ready.save(self.config)
        finally:  # the module goes on with its cluster even when nothing was saved
            for node in names:
                self._power[node].boot()
            self._wait_for_ssh(names)

    def _start_qnetd(self, lab_key) -> None:
        qnetd.check_installed()
        self.state.add("netns", self.config.netns(self.config.QNETD))
        self.state.add("links", self.config.qnetd_veth)
        qnetd.create_network(self.config)
        qnetd.provision_host(self.config, lab_key)
        self._qnetd = qnetd.start(self.config, self.state)

    def _check_subnet_free(self) -> None:
        out = network.sh("ip", "-o", "-4", "addr", "show").stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[1] != self.config.bridge:
                address = fields[3].split("/")[0]
                import ipaddress
                if ipaddress.ip_address(address) in self.config.network:
                    raise ConfigError(
                        f"lab subnet {self.config.subnet} is already used on {fields[1]} "
                        f"({address})", hint="give this lab another --lab-subnet")

    def _wait_for_ssh(self, names, timeout_s: float = 20.0) -> None:
        pending = set(names)
        deadline = time.monotonic() + timeout_s
        while pending:
            for node in sorted(pending):
                try:
                    address = self.config.qnetd_address if node == self.config.QNETD \
                        else self.config.node_address(node)
                    with socket.create_connection((address, 22),
                                                  timeout=0.5) as conn:
                        if conn.recv(4).startswith(b"SSH"):
                            pending.discard(node)
                except OSError:
                    pass
            if pending and time.monotonic() > deadline:
                logs = ", ".join(str(self.config.lab_dir / "nodes" / n / "log")
                                 for n in sorted(pending))
                raise LabError(f"sshd on {', '.join(sorted(pending))} did not answer within "
                               f"{timeout_s:g} s", hint=f"read the node logs in {logs}")
            if pending:
                time.sleep(0.1)

    def close(self) -> None:
        """Power everything off and remove namespaces, links and the lab directory."""
        _guardian().stop(self._guardian, self.state)  # first: it never races the close
        self._guardian = None
        errors = []
        for power in self._power.values():
            try:
                power.cut()
            except LabError as exc:
                errors.append(exc)
        self._stop_nfs_server()
        qnetd.stop(self._qnetd, self.state)
        self._qnetd = None
        try:
            remove_cgroups(self.state.data.get("cgroups", []))
            kill_recorded(self.state.data.get("processes", {}))
        except LabError as exc:
            errors.append(exc)
        network.remove_lab_network(self.config)
        qnetd.remove_network(self.config)
        if self.config.lab_dir.exists():
            import shutil
            shutil.rmtree(self.config.lab_dir, ignore_errors=True)
        self._started = False
        if errors:
            raise LabError("lab teardown was incomplete: " + "; ".join(map(str, errors)))

    def _stop_nfs_server(self) -> None:
        if self._nfs is not None:
            self._nfs.kill()  # SIGKILL ends a stopped (outage) server too
            self._nfs.wait(timeout=10)
            self._nfs = None
            self.state.set_process("nfs-server", None)
        self._storage_out = False

    @classmethod
    def running(cls, config: EmbeddedConfig) -> EmbeddedLab:
        """A lab another process started and left running (lab/embedded/detached.py):
        its nodes with their host keys, to reach over SSH; ``lab down`` removes it."""
        lab = cls(config)
        lab._started = True
        return lab

    def detach(self) -> None:
        """Leave the started lab running after this process ends (``pvechaos lab up``).
        Every lab process already runs in its own session, so the end of this one kills
        none of them; the lab's NFS stand-in, which lives as long as the lab, becomes the
        state file's owner, so no later start sweeps the lab while it runs and only
        ``pvechaos lab down`` (a sweep taking detached labs) removes it."""
        if not self._started or self._nfs is None or self._nfs.poll() is not None:
            raise LabError(f"lab '{self.name}' is not running: nothing to leave up",
                           hint="start it first (start())")
        _guardian().stop(self._guardian, self.state)  # the lab outlives this process
        self._guardian = None
        self.state.detach(self._nfs.pid)

    def _check_node(self, node: str) -> NodePower:
        if node not in self._power:
            raise InterlockError(f"refusing to touch {node!r}: it is not a node of lab "
                                 f"'{self.name}'", hint=f"nodes are {', '.join(self._power)}")
        return self._power[node]

    def power_cut(self, node: str) -> None:
        power = self._check_node(node)
        network.set_link(self.config, node, up=False)
        power.cut()

    def power_on(self, node: str) -> None:
        power = self._check_node(node)
        if power.powered:
            return
        network.set_link(self.config, node, up=True)
        power.boot()

    def link_down(self, node: str) -> None:
        """The node's cable pulled: it runs on, alone (its veth to the bridge is down)."""
        self._check_node(node)
        network.set_link(self.config, node, up=False)

    def link_up(self, node: str) -> None:
        self._check_node(node)
        network.set_link(self.config, node, up=True)

    def freeze(self, node: str) -> None:
        """Every process of the node stops; its clocks run on (pve-faults.md §9.3)."""
        self._check_node(node).freeze()

    def thaw(self, node: str) -> None:
        self._check_node(node).thaw()

    def upgrade(self, node: str) -> str:
        """The embedded lab's version switch to --upgrade-to, then a clean reboot
        (lab/embedded/upgrade.py)."""
        return upgrade.upgrade(self.config, self._check_node(node), node)

    def storage_outage(self) -> None:
        """The shared storage's server stops answering (SIGSTOP of the stand-in): every
        node's mount of it stalls, as an NFS hard mount does (pve-faults.md §8.2)."""
        self._signal_nfs(signal.SIGSTOP, "storage outage")
        freeze.stop_all(lambda: [self._nfs.pid])  # in effect once this returns
        self._storage_out = True

    def storage_restore(self) -> None:
        self._signal_nfs(signal.SIGCONT, "storage restore")
        self._storage_out = False

    def _signal_nfs(self, sig: int, verb: str) -> None:
        if self._nfs is None or self._nfs.poll() is not None:
            raise LabError(f"cannot {verb}: lab '{self.name}' has no NFS server running",
                           hint="start the lab first (its start() runs the server)")
        self._nfs.send_signal(sig)

    # -- the QDevice arbiter (--qdevice) ---------------------------------------------
    def qnetd_address(self) -> str | None:
        """Where `pvecm qdevice setup` finds corosync-qnetd; None without --qdevice."""
        return self.config.qnetd_address if self.config.qdevice else None

    def qnetd_lost(self) -> None:
        """The arbiter unreachable: its link down, TCP 5403 stalls (lab/embedded/qnetd.py)."""
        self._require_qnetd("qnetd_lost")
        qnetd.set_link(self.config, up=False)

    def qnetd_back(self) -> None:
        self._require_qnetd("qnetd_back")
        qnetd.set_link(self.config, up=True)

    def _require_qnetd(self, verb: str) -> None:
        if not self.config.qdevice:  # made without --qdevice: QDEVICE is not claimed
            raise unsupported(self.kind, verb, Capability.QDEVICE)
        if self._qnetd is None:
            raise LabError(f"{verb.replace('_', ' ')}: lab '{self.name}' has not started "
                           "its qnetd host", hint="start the lab first")

    def is_powered(self, node: str) -> bool:
        return self._check_node(node).powered

    def shared_storage(self) -> SharedStorage:
        # Every node mounts the lab's one export directory through its own FUSE client
        # (pvemu/nfs_client.py), which needs the stand-in server at `server` to answer.
        return SharedStorage("shared", self.config.host_address, "/export")

    def guest_recipe(self, vmid: int) -> GuestRecipe:
        net = self.config.network
        slots = net.num_addresses - 1 - GUEST_OFFSET  # below the broadcast address
        if not 100 <= vmid < 100 + slots:
            raise ConfigError(f"no address for guest {vmid} in lab subnet {net}",
                              hint=f"use VMIDs 100..{99 + slots}, or a larger --lab-subnet")
        storage = self.shared_storage().storage_id
        return GuestRecipe(
            vmid=vmid, template=CT_TEMPLATE,
            address=str(net.network_address + GUEST_OFFSET + vmid - 100),
            prefixlen=net.prefixlen, bridge="vmbr0", port=8080, storage_id=storage,
            # the emulated guest's root disk is its write log (pve/guest_process.py)
            log_path=f"/mnt/pve/{storage}/images/{vmid}/vm-{vmid}-disk-0.raw",
            # the emulated guest's own knob, read from its description (pvemu/guest_lifecycle.py)
            failing_start=("--description", "pvechaos: fail-start always"))

    def describe(self) -> dict[str, str]:
        return {
            "lab": self.kind, "lab.name": self.name, "lab.subnet": self.config.subnet,
            "pve.version": self.config.pve_version, "nodes": str(self.config.node_count),
            "timescale": f"{self.config.timescale:g}",
            **({"lab.ready": self._ready.when} if self._ready is not None else {}),
            **({"pve.upgrade_to": self.config.upgrade_to} if self.config.upgrade_to else {}),
            **qnetd.describe(self.config),
            **({"emulation.bugs": self._bugs()} if self.config.emulation_bugs else {}),
        }

    def _bugs(self) -> str:
        return f"{', '.join(self.config.emulation_bugs)} (deliberately unsafe)"
