"""The libvirt lab: nested PVE nodes and an NFS gateway VM on one libvirt host.

``start`` defines what is missing (storage pool, networks, domains on fresh overlays of
the golden images that `pvechaos-lab libvirt build` made) and brings every node to SSH:
by reverting to the consistent `ready` snapshot when every VM has one (the cluster is
then already formed: ``prepared()``), else by a cold boot. If a revert fails, the
overlays are thrown away and made again from the golden images (a cold boot).
``save_ready`` takes the snapshot once the harness has formed the cluster and added
the shared storage (harness/formation.py ``bring_up``). ``close``
powers every VM off and keeps definitions and snapshots for the next start;
`pvechaos-lab libvirt destroy` removes them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any, Protocol

from harness.errors import ConfigError, InterlockError, LabError, PvechaosError
from harness.lab_api import Capability, GuestRecipe, LabNode, RefusesWhatItLacks, SharedStorage
from harness.timescale import Timescale
from lab import node_upgrade, real_guest, run_guardian
from lab.libvirt import clock, snapshots, xml
from lab.libvirt import config as libvirt_config
from lab.libvirt.config import LibvirtConfig
from lab.libvirt.host import EventSink, Host, LibvirtLinks, LinkSwitch, libvirt_module
from lab.libvirt.plan import GATEWAY, Plan


class LibvirtLab(RefusesWhatItLacks):  # refuses storage_outage/restore (no STORAGE)
    kind = "libvirt"
    capabilities = (Capability.POWER | Capability.PARTITION | Capability.FREEZE
                    | Capability.SHUTDOWN | Capability.RESET | Capability.SNAPSHOT
                    | Capability.EVENTS | Capability.UPGRADE)

    def __init__(self, config: LibvirtConfig, *, host: Host | None = None,
                 links: LinkSwitch | None = None, access: NodeAccess | None = None,
                 run: node_upgrade.Runner = node_upgrade.ssh_run) -> None:
        self.config = config
        self.name = config.name
        self.plan = Plan(config)
        self.host = host or Host(config.hosts[0])
        self.links = links or LibvirtLinks(self.host)
        self.access = access or SshAccess()
        self._run = run  # a command on a node over SSH (the upgrade verb)
        self._prepared = False
        self._guarded = None  # lab/run_guardian.py's record while the lab is started
        if config.upgrade_command is None:  # no command: upgrade refuses, naming the option
            self.capabilities &= ~Capability.UPGRADE

    @classmethod
    def from_options(cls, *, lab_config: str | None = None, worker: int = 0,
                     timescale: Timescale, upgrade_command: str | None = None,
                     **_ignored: object) -> LibvirtLab:
        if not lab_config:
            raise ConfigError("--lab libvirt needs --lab-config FILE",
                              hint="write the lab's YAML file (README.md, 'Nested PVE on "
                                   "a KVM runner') and pass it with --lab-config")
        if not timescale.is_real_time:
            raise ConfigError(f"--timescale {timescale:g} cannot apply to real PVE nodes",
                              hint="drop --timescale: nested PVE runs its real HA timers")
        config = libvirt_config.load(lab_config).for_worker(worker)
        if upgrade_command is not None:  # --upgrade-command over the YAML's upgrade_command
            config = replace(config, upgrade_command=upgrade_command)
        return cls(config)

    # -- the Lab protocol -------------------------------------------------------------
    def nodes(self) -> tuple[LabNode, ...]:
        return tuple(LabNode(name=m.name, address=m.address, ssh_key=self.config.ssh_key,
                             link0=m.corosync.address if m.corosync else None)
                     for m in self.plan.nodes())

    def start(self) -> None:
        self._guard()
        try:
            self._define_all()
            if self._revert_to_ready():
                self._prepared = True
                return
            self._cold_boot()
        except BaseException:
            self.close()
            raise

    def prepared(self) -> bool:
        return self._prepared

    def keeps_changes(self) -> bool:
        return False  # the next start reverts to `ready`

    def join_password(self) -> str | None:
        return self.config.root_password  # installed with it; nodes share no SSH key

    def save_ready(self) -> None:
        snapshots.take(self.host, self._domains())

    def close(self) -> None:
        """Every VM of the lab off; definitions, overlays and snapshots stay. Safe twice,
        and after a start that never reached libvirt."""
        if not self.host.connected:
            self._release()
            return
        try:
            for dom in self._domains(missing_ok=True):
                if dom.isActive():
                    self.host.call(f"power off {dom.name()}", dom.destroy)
        finally:
            self.host.close()
        self._release()

    def _guard(self) -> None:
        """A run killed before ``close`` leaves no VM running: this process's guardian
        (lab/run_guardian.py) powers them off as ``close`` would. A test:/// host lives
        in this process and goes with it: nothing to guard."""
        if self._guarded is None and not self.host.uri.startswith("test:"):
            self._guarded = run_guardian.guard(
                f"libvirt-{self.name}", "lab.libvirt.lab:power_off_domains",
                uri=self.host.uri, domains=[m.domain for m in self.plan.machines()])

    def _release(self) -> None:
        self._guarded = run_guardian.release(self._guarded)

    def power_cut(self, node: str) -> None:
        dom = self._node(node)
        self.host.call(f"power cut of {node}", dom.destroy)

    def power_on(self, node: str) -> None:
        dom = self._node(node)
        if not dom.isActive():
            self.host.call(f"power on of {node}", dom.create)

    def is_powered(self, node: str) -> bool:
        return bool(self._node(node).isActive())

    def shutdown(self, node: str) -> None:
        """The ACPI power button: PVE shuts down cleanly."""
        self.host.call(f"shutdown of {node}", self._node(node).shutdown)

    def reset(self, node: str) -> None:
        """The reset button: no shutdown, the node boots again at once."""
        self.host.call(f"reset of {node}", self._node(node).reset, 0)

    def upgrade(self, node: str) -> str:
        """--upgrade-command on the node over SSH, then `systemctl reboot` there
        (lab/node_upgrade.py); refused, naming the option, without a command."""
        target = self._lab_node(node)
        if self.config.upgrade_command is None:
            raise node_upgrade.refusal(self.kind)
        return node_upgrade.upgrade(target, self.config.upgrade_command, self._run)

    def _lab_node(self, node: str) -> LabNode:
        for lab_node in self.nodes():
            if lab_node.name == node:
                return lab_node
        raise InterlockError(f"refusing to touch {node!r}: not a node of lab {self.name}",
                             hint=f"nodes are {', '.join(self.plan.node_names)}")

    def freeze(self, node: str) -> None:
        self.host.call(f"freeze of {node}", self._node(node).suspend)

    def thaw(self, node: str) -> None:
        self.host.call(f"thaw of {node}", self._node(node).resume)

    def link_down(self, node: str) -> None:
        """The corosync NIC loses carrier; management (SSH, the guest's network) stays."""
        self.links.set_link(self._node(node), self.plan.machine(node).corosync, False)

    def link_up(self, node: str) -> None:
        self.links.set_link(self._node(node), self.plan.machine(node).corosync, True)

    def shared_storage(self) -> SharedStorage:
        gw = self.plan.machine(GATEWAY)
        return SharedStorage(self.config.guest.storage_id, gw.address,
                             self.config.gateway.export)

    def guest_recipe(self, vmid: int) -> GuestRecipe:
        g = self.config.guest
        interface = ipaddress.IPv4Interface(
            (self.plan.guest_address(vmid), self.config.management.prefixlen))
        return real_guest.recipe(vmid, template=g.template, interface=interface,
                                 bridge=g.bridge, port=g.port, storage_id=g.storage_id)

    def subscribe(self, sink: EventSink) -> None:
        """Lifecycle, reboot and watchdog events of this lab's VMs, by node name."""
        names = {m.domain: m.name for m in self.plan.machines()}

        def by_node(domain: str, event: str, detail: str) -> None:
            if domain in names:
                sink(names[domain], event, detail)

        self.host.subscribe(by_node)

    def describe(self) -> dict[str, str]:
        c = self.config
        return {"lab": "libvirt", "lab.name": c.name, "libvirt.uri": self.host.uri,
                "libvirt.version": self.host.version(), "pve.iso": c.iso_version,
                "management": str(c.management), "corosync": str(c.corosync),
                "nodes": ", ".join(f"{m.name}={m.address}" for m in self.plan.nodes())}

    # -- internals --------------------------------------------------------------------
    def _node(self, node: str) -> Any:
        if node not in self.plan.node_names:
            raise InterlockError(f"refusing to touch {node!r}: not a node of lab "
                                 f"{self.name}", hint=f"nodes are "
                                 f"{', '.join(self.plan.node_names)}")
        return self.host.domain(self.plan.machine(node).domain)

    def _domains(self, *, missing_ok: bool = False) -> list[Any]:
        found = [self.host.find_domain(m.domain) for m in self.plan.machines()]
        if not missing_ok and None in found:
            raise LabError(f"lab {self.name} is not defined on {self.host.uri}")
        return [d for d in found if d is not None]

    def _pool(self) -> Any:
        conn = self.host.conn
        libvirt = libvirt_module()
        try:
            pool = conn.storagePoolLookupByName(self.config.pool)
        except libvirt.libvirtError:
            raise LabError(f"libvirt storage pool {self.config.pool} is missing on "
                           f"{self.host.uri}", hint="run `pvechaos-lab libvirt build "
                           "--lab-config FILE` on that host first (it makes the pool and "
                           "the golden images)") from None
        if not pool.isActive():
            self.host.call(f"start pool {self.config.pool}", pool.create, 0)
        return pool

    def _define_all(self) -> None:
        conn = self.host.conn
        ensure_networks(self.host, self.plan)
        pool = self._pool()
        for machine in self.plan.machines():
            if self.host.find_domain(machine.domain) is not None:
                continue
            disk = self._fresh_overlay(pool, machine.name)
            self.host.call(f"define {machine.domain}", conn.defineXML,
                           xml.domain(self.plan, machine, disk=disk))

    def _golden_path(self, pool: Any, name: str) -> str:
        volume = (self.config.gateway.image if name == GATEWAY
                  else self.plan.golden(name, self.config.iso_version))
        libvirt = libvirt_module()
        try:
            return pool.storageVolLookupByName(volume).path()
        except libvirt.libvirtError:
            raise LabError(f"golden image {volume} is missing from pool {self.config.pool}",
                           hint="run `pvechaos-lab libvirt build-gateway --lab-config FILE`"
                                if name == GATEWAY else
                                "run `pvechaos-lab libvirt build --lab-config FILE`") from None

    def _fresh_overlay(self, pool: Any, name: str) -> str:
        """A new qcow2 overlay on the golden image (the old one, if any, is dropped)."""
        libvirt = libvirt_module()
        volume = self.plan.overlay(name)
        try:
            old = pool.storageVolLookupByName(volume)
            self.host.call(f"delete overlay {volume}", old.delete, 0)
        except libvirt.libvirtError:
            pass
        size = 8 if name == GATEWAY else self.config.node.disk_gib
        made = self.host.call(f"create overlay {volume}", pool.createXML,
                              xml.overlay_volume(volume, size, self._golden_path(pool, name)),
                              0)
        return made.path()

    def _revert_to_ready(self) -> bool:
        domains = self._domains()
        if not all(snapshots.has_snapshot(d) for d in domains):
            return False
        try:
            snapshots.revert(self.host, domains)
            self.access.wait_ssh(self, self.config.boot_timeout_s)
            self.access.step_clocks(self)
            return True
        except PvechaosError as exc:  # a failed call, or nodes that never answered
            print(f"pvechaos: reverting lab {self.name} to its ready snapshot failed "
                  f"({exc}); starting again from fresh overlays (cold boot)")
            self._recreate()
            return False

    def _recreate(self) -> None:
        """Fresh overlays under the same definitions (the domains name the same paths)."""
        pool = self._pool()
        for dom in self._domains(missing_ok=True):
            if dom.isActive():
                self.host.call(f"power off {dom.name()}", dom.destroy)
            snapshots.delete_all(self.host, dom)
        for machine in self.plan.machines():
            self._fresh_overlay(pool, machine.name)

    def _cold_boot(self) -> None:
        for dom in self._domains():  # the gateway first: nodes mount its export
            if not dom.isActive():
                self.host.call(f"boot {dom.name()}", dom.create)
        self.access.wait_ssh(self, self.config.boot_timeout_s)
        self.access.configure_networking(self)


def networking_script(plan: Plan, node: str) -> str:
    """Shell run on ``node``: a static corosync address on the NIC with its planned MAC,
    and /etc/hosts lines for every node (the installer wrote only its own)."""
    me = plan.machine(node)
    hosts = "\n".join(f"{m.address} {m.fqdn} {m.name}" for m in plan.nodes())
    coro = me.corosync
    return "\n".join([
        "set -e",
        f"ifname=$(ip -o link | awk -F': ' 'tolower($0) ~ /{coro.mac}/ {{print $2; exit}}')",
        f'[ -n "$ifname" ] || {{ echo "no NIC with MAC {coro.mac}" >&2; exit 1; }}',
        "cat > /etc/network/interfaces.d/pvechaos-corosync <<EOF",
        "auto $ifname", "iface $ifname inet static",
        f"    address {coro.address}/{coro.prefixlen}", "EOF",
        "ifreload -a",
        "sed -i '/ node[0-9]$/d' /etc/hosts",
        f"cat >> /etc/hosts <<EOF\n{hosts}\nEOF",
    ])


def power_off_domains(uri: str, domains: list[str]) -> None:
    """``close`` for a run that is gone (lab/run_guardian.py): every one of ``domains``
    still running on ``uri`` is powered off; definitions and snapshots stay."""
    host = Host(uri)
    try:
        for name in domains:
            dom = host.find_domain(name)
            if dom is not None and dom.isActive():
                host.call(f"power off {name}", dom.destroy)
    finally:
        host.close()


def ensure_networks(host: Host, plan: Plan) -> None:
    libvirt = libvirt_module()
    conn = host.conn
    for name, text in ((plan.management_network, xml.management_network(plan)),
                       (plan.corosync_network, xml.corosync_network(plan))):
        try:
            net = conn.networkLookupByName(name)
        except libvirt.libvirtError:
            net = host.call(f"define network {name}", conn.networkDefineXML, text)
        if not net.isActive():
            host.call(f"start network {name}", net.create)


class NodeAccess(Protocol):
    """What the lab does inside its nodes after booting them (over SSH for real)."""

    def wait_ssh(self, lab: LibvirtLab, timeout_s: float) -> None: ...

    def step_clocks(self, lab: LibvirtLab) -> None: ...

    def configure_networking(self, lab: LibvirtLab) -> None: ...


class SshAccess:
    def wait_ssh(self, lab: LibvirtLab, timeout_s: float) -> None:
        """Every node answers `true` over SSH (bounded; progress every 10 s)."""
        from harness.errors import PvechaosError
        from harness.waits import NotYet, wait_until

        def all_answer() -> bool | NotYet:
            for node in lab.nodes():
                try:
                    self._run(node, "true", 10)
                except PvechaosError as exc:
                    return NotYet(f"{node.name}: {exc}")
            return True

        wait_until(f"every node of lab {lab.name} to answer SSH", all_answer,
                   timeout_s=timeout_s, interval_s=2.0)

    def step_clocks(self, lab: LibvirtLab) -> None:
        """Guests resume with the snapshot's wall clock: step each node to this host's
        time (lab/libvirt/clock.py). The guest's write log and the timeline compare wall
        clocks."""
        from harness.ssh import SshSession

        for node in lab.nodes():
            session = SshSession(node)
            try:
                session.run("true", timeout_s=clock.COMMAND_TIMEOUT_S)  # the session is up
                clock.step(session, node.name)
            finally:
                session.close()

    def configure_networking(self, lab: LibvirtLab) -> None:
        """What the installer leaves out: the corosync NIC (found by its MAC) and every
        node's name in /etc/hosts (`pvecm add` needs the local name to resolve to an
        address of the node). Idempotent: the same files are written on every boot."""
        for node in lab.nodes():
            result = self._run(node, networking_script(lab.plan, node.name), 60)
            if result.rc != 0:
                raise LabError(f"{node.name}: configuring the corosync NIC failed: "
                               f"{result.stderr.strip()[-300:]}")

    @staticmethod
    def _run(node: LabNode, command: str, timeout_s: float):
        from harness.ssh import SshSession

        session = SshSession(node)
        try:
            return session.run(command, timeout_s=timeout_s)
        finally:
            session.close()
