"""The inventory lab: the nodes of an existing cluster, their power through BMCs or
libvirt, and an interlock that keeps the harness from cutting the wrong thing.

The interlock: nothing is cut, shut down or switched unless (1) the run was started with
the explicit destructive flag (``--destructive``), and (2) the cluster name read from
every node (`pvecm status`) is the one the inventory names and every node of the
inventory is a member of it. ``start`` checks both and reports what it found; each
destructive call checks again that the interlock is armed and refuses with the reason
otherwise. The cluster exists already, so ``prepared()`` is True: it is never formed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace

from harness.errors import (
    ConfigError,
    InterlockError,
    LabError,
    NodeUnreachable,
    PvechaosError,
    WaitTimeout,
)
from harness.lab_api import (
    Capability,
    GuestRecipe,
    LabNode,
    RefusesWhatItLacks,
    SharedStorage,
)
from harness.timescale import Timescale
from harness.waits import NotYet, wait_until
from lab import node_upgrade, real_guest
from lab.inventory import config as inventory_config
from lab.inventory.config import Inventory, PowerSpec
from lab.inventory.power_drivers import IpmiPower, PowerDriver, RedfishPower


class LibvirtPower:
    """A node that is a libvirt domain (a nested PVE someone else runs)."""

    def __init__(self, node: str, uri: str, domain: str, *, host=None) -> None:
        from lab.libvirt.host import Host

        self.node, self.uri, self.domain_name = node, uri, domain
        self.host = host or Host(uri)

    def describe(self) -> str:
        return f"libvirt domain {self.domain_name} on {self.uri}"

    def check(self) -> None:
        if self.host.find_domain(self.domain_name) is None:
            names = sorted(d.name() for d in self.host.conn.listAllDomains())
            raise ConfigError(f"{self.node}: libvirt domain {self.domain_name} is not "
                              f"defined on {self.uri}",
                              hint=f"fix power.domain of {self.node} in the inventory "
                                   f"(domains there: {', '.join(names) or 'none'})")

    def is_on(self) -> bool:
        return bool(self.host.domain(self.domain_name).isActive())

    def power_off(self) -> None:
        self.host.call(f"power cut of {self.node}", self.host.domain(self.domain_name).destroy)

    def power_on(self) -> None:
        self.host.call(f"power on of {self.node}", self.host.domain(self.domain_name).create)

    def shutdown(self) -> None:
        self.host.call(f"shutdown of {self.node}",
                       self.host.domain(self.domain_name).shutdown)

    def reset(self) -> None:
        self.host.call(f"reset of {self.node}", self.host.domain(self.domain_name).reset, 0)


def driver_for(node: str, spec: PowerSpec) -> PowerDriver:
    if spec.driver == "ipmi":
        return IpmiPower(node, spec.host, spec.user, spec.password, port=spec.port)
    if spec.driver == "redfish":
        return RedfishPower(node, spec.url, spec.user, spec.password, system_id=spec.system,
                            verify_tls=spec.verify_tls)
    return LibvirtPower(node, spec.uri, spec.domain)


ClusterReader = Callable[[LabNode], tuple[str, tuple[str, ...]]]


def read_cluster(node: LabNode) -> tuple[str, tuple[str, ...]]:
    """(cluster name, member node names) as `pvecm status` and `pvecm nodes` on ``node``
    show them."""
    from harness.pve.pvecm import parse_pvecm_nodes, parse_pvecm_status
    from harness.ssh import SshSession

    session = SshSession(node)
    try:
        status = session.run(("pvecm", "status"), timeout_s=15)
        nodes = session.run(("pvecm", "nodes"), timeout_s=15)
    finally:
        session.close()
    if status.rc != 0 or nodes.rc != 0:
        bad = status if status.rc != 0 else nodes
        raise LabError(f"{node.name}: `{bad.command}` exited with {bad.rc}: "
                       f"{(bad.stderr or bad.stdout).strip()[:200] or '(no output)'}",
                       hint="is this node part of a PVE cluster, and up?")
    return (parse_pvecm_status(status.stdout).cluster_name,
            tuple(m.name for m in parse_pvecm_nodes(nodes.stdout)))


class InventoryLab(RefusesWhatItLacks):
    kind = "inventory"
    capabilities = (Capability.POWER | Capability.SHUTDOWN | Capability.RESET
                    | Capability.UPGRADE)

    def __init__(self, inventory: Inventory, *, destructive: bool = False,
                 drivers: dict[str, PowerDriver] | None = None,
                 read: ClusterReader = read_cluster, settle_s: float = 120.0,
                 run: node_upgrade.Runner = node_upgrade.ssh_run) -> None:
        self.inventory = inventory
        self._run = run  # a command on a node over SSH (the upgrade verb)
        if inventory.upgrade_command is None:  # no command: upgrade refuses, naming it
            self.capabilities &= ~Capability.UPGRADE
        self.name = inventory.cluster
        self.destructive = destructive
        self._drivers = drivers or {n.name: driver_for(n.name, n.power)
                                    for n in inventory.nodes}
        self._read = read
        self.settle_s = settle_s  # a node just powered on needs a while for corosync
        self._armed = False
        self._refusal = "the interlock has not been checked yet (the lab was not started)"

    @classmethod
    def from_options(cls, *, inventory: str | None = None, destructive: bool = False,
                     timescale: Timescale, upgrade_command: str | None = None,
                     **_ignored: object) -> InventoryLab:
        if not inventory:
            raise ConfigError("--lab inventory needs --inventory FILE",
                              hint="describe the cluster in a YAML file (README.md, 'An "
                                   "existing cluster') and pass it with --inventory")
        if not timescale.is_real_time:
            raise ConfigError(f"--timescale {timescale:g} cannot apply to a real cluster",
                              hint="drop --timescale: real PVE runs its real HA timers")
        loaded = inventory_config.load(inventory)
        if upgrade_command is not None:  # --upgrade-command over the file's upgrade_command
            loaded = replace(loaded, upgrade_command=upgrade_command)
        return cls(loaded, destructive=destructive)

    # -- the Lab protocol -------------------------------------------------------------
    def nodes(self) -> tuple[LabNode, ...]:
        return tuple(LabNode(name=n.name, address=n.address, ssh_port=n.ssh_port,
                             ssh_user=n.ssh_user, ssh_key=n.ssh_key, link0=n.link0,
                             ssh_password=n.ssh_password)
                     for n in self.inventory.nodes)

    def start(self) -> None:
        """Check every node and power switch, then decide whether cuts are allowed."""
        # disarm first: a start that fails half-way must not leave an earlier arming on
        self._armed = False
        self._refusal = "the last start of the lab failed before the interlock was checked"
        seen: dict[str, tuple[str, tuple[str, ...]]] = {}
        for node in self.nodes():
            try:
                answer = wait_until(
                    f"{node.name} to answer `pvecm status`",
                    lambda node=node: self._read_once(node), timeout_s=self.settle_s,
                    interval_s=2.0)
                if isinstance(answer, NodeUnreachable):
                    raise answer
                seen[node.name] = answer
            except PvechaosError as exc:
                cause = exc.last_seen if isinstance(exc, WaitTimeout) else exc
                raise LabError(f"inventory {self.inventory.source}: cannot read the "
                               f"cluster on {node.name}: {cause}",
                               hint="check the node's address and SSH credentials in the "
                                    "inventory") from exc
        for driver in self._drivers.values():
            driver.check()
        self._armed, self._refusal = self._interlock(seen)
        print(f"pvechaos: inventory lab {self.name}: "
              + ("armed: power cuts allowed" if self._armed else f"NOT armed: {self._refusal}"))

    def _read_once(self, node: LabNode):
        """The node's view, or NotYet while it may still be booting; a refused login is
        returned as is, to end the wait (waiting will not fix a wrong key or password)."""
        try:
            return self._read(node)
        except NodeUnreachable as exc:
            if "authentication failed" in exc.reason:
                return exc
            return NotYet(str(exc))
        except LabError as exc:
            return NotYet(str(exc).split("\n")[0])

    def _interlock(self, seen: dict[str, tuple[str, tuple[str, ...]]]) -> tuple[bool, str]:
        wanted = self.inventory.cluster
        wrong = {n: c for n, (c, _) in seen.items() if c != wanted}
        if wrong:
            found = ", ".join(f"{n} is in cluster {c or '(none)'!r}" for n, c in wrong.items())
            return False, (f"the inventory names cluster {wanted!r}, but {found}: this "
                           "inventory does not describe these machines")
        for name, (_, members) in seen.items():
            missing = [n.name for n in self.inventory.nodes if n.name not in members]
            if missing:
                return False, (f"{name}'s cluster has no node named {', '.join(missing)} "
                               f"(members: {', '.join(members)}): fix the node names "
                               "in the inventory")
        if not self.destructive:
            return False, ("the run was not started with --destructive: an existing "
                           "cluster's power is cut only when the run says so explicitly")
        return True, ""

    def prepared(self) -> bool:
        return True

    def fault_refusal(self) -> str | None:
        """In-node faults touch an existing cluster as a power cut does: the same
        interlock (``--destructive`` and the cluster's own name) gates them."""
        return None if self._armed else self._refusal

    def keeps_changes(self) -> bool:
        return True  # an existing cluster: the run cleans up after itself

    def join_password(self) -> str | None:
        return None  # never formed: the cluster exists

    def close(self) -> None:
        """Nothing was created; a node the run left off is switched back on."""
        if not self._armed:
            return
        for name, driver in self._drivers.items():
            try:
                if not driver.is_on():
                    driver.power_on()
            except PvechaosError as exc:
                print(f"pvechaos: could not power {name} back on: {exc}")

    def _driver(self, node: str, doing: str = "switch the power of") -> PowerDriver:
        if node not in self._drivers:
            raise InterlockError(f"refusing to touch {node!r}: not a node of inventory "
                                 f"{self.inventory.source}",
                                 hint=f"nodes are {', '.join(self._drivers)}")
        if not self._armed:
            raise InterlockError(f"refusing to {doing} {node}: {self._refusal}")
        return self._drivers[node]

    def power_cut(self, node: str) -> None:
        self._driver(node).power_off()

    def power_on(self, node: str) -> None:
        self._driver(node).power_on()

    def shutdown(self, node: str) -> None:
        """The power button: PVE shuts the node down cleanly."""
        self._driver(node).shutdown()

    def reset(self, node: str) -> None:
        self._driver(node).reset()

    def upgrade(self, node: str) -> str:
        """--upgrade-command on the node over SSH, then `systemctl reboot` there
        (lab/node_upgrade.py): as destructive as a power cut, so behind the same
        interlock; refused, naming the option, without a command."""
        self._driver(node, "upgrade")
        if self.inventory.upgrade_command is None:
            raise node_upgrade.refusal(self.kind)
        target = next(n for n in self.nodes() if n.name == node)
        return node_upgrade.upgrade(target, self.inventory.upgrade_command, self._run)

    def is_powered(self, node: str) -> bool:
        if node not in self._drivers:
            raise InterlockError(f"{node!r} is not a node of this inventory")
        return self._drivers[node].is_on()

    def shared_storage(self) -> SharedStorage:
        i = self.inventory
        return SharedStorage(i.storage_id, i.nfs_server, i.nfs_export)

    def guest_recipe(self, vmid: int) -> GuestRecipe:
        g = self.inventory.guest
        offset = vmid - 100  # the scenarios' VMIDs 100.. map onto the inventory's
        interface = ipaddress.IPv4Interface(
            (int(g.first_address.ip) + offset, g.first_address.network.prefixlen))
        return real_guest.recipe(g.vmid + offset, template=g.template, interface=interface,
                                 bridge=g.bridge, port=g.port,
                                 storage_id=self.inventory.storage_id)

    def describe(self) -> dict[str, str]:
        return {"lab": "inventory", "cluster": self.inventory.cluster,
                "inventory": self.inventory.source,
                "armed": "yes" if self._armed else f"no: {self._refusal}",
                "nodes": ", ".join(f"{n.name}={n.address}" for n in self.inventory.nodes),
                "power": "; ".join(f"{n}: {d.describe()}" for n, d in self._drivers.items())}
