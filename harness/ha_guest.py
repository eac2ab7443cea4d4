"""The test guest under HA: made with the nodes' own commands, its write log read over SSH.

The lab says how (``GuestRecipe``: template, address, where the write log lies); this
module only runs what a PVE administrator would: `pvesm add nfs` (harness/shared_storage.py),
`pct create`, `ha-manager add`, `ha-manager status`.
"""

from __future__ import annotations

from dataclasses import replace

from harness.cluster import Cluster, Node
from harness.errors import PvechaosError
from harness.lab_api import GuestRecipe, SharedStorage
from harness.pve import cluster_fs
from harness.pve.ha_status import HaStatus, parse_ha_manager_status
from harness.shared_storage import add_shared_storage
from harness.waits import NotYet, wait_until
from harness.writelog import LogReport, analyse, parse_log

COMMAND_TIMEOUT_S = 30.0


class HaGuest:
    def __init__(self, cluster: Cluster, recipe: GuestRecipe, storage: SharedStorage) -> None:
        self.cluster, self.recipe, self.storage = cluster, recipe, storage

    def __repr__(self) -> str:
        return f"HaGuest({self.sid}@{self.recipe.address}:{self.recipe.port})"

    @property
    def sid(self) -> str:
        return self.recipe.sid

    # -- setup -----------------------------------------------------------------------
    def create(self, on: str, *extra: str) -> None:
        r = self.recipe
        node = self.cluster.node(on)
        for command in r.prepare:
            node.check(*command, timeout_s=COMMAND_TIMEOUT_S)
        node.check(
            "pct", "create", str(r.vmid), r.template, "--hostname", f"chaos{r.vmid}",
            "--rootfs", f"{r.storage_id}:1",
            "--net0", f"name=eth0,bridge={r.bridge},ip={r.address}/{r.prefixlen}",
            *r.create_options, *extra, timeout_s=COMMAND_TIMEOUT_S)

    def put_under_ha(self, on: str, **options: object) -> None:
        """`ha-manager add <sid> --<option> <value> ...` (state started by default)."""
        argv = ["ha-manager", "add", self.sid]
        for key, value in options.items():
            argv += [f"--{key}", str(value)]
        self.cluster.node(on).check(*argv, timeout_s=COMMAND_TIMEOUT_S)

    def set_up(self, on: str, *, timeout_s: float, extra: tuple[str, ...] = (),
               state: str | None = "started", **options: object) -> None:
        """The whole setup: shared storage active on every node, the container created on
        ``on``, put under HA with ``options``; then wait (bounded) until `ha-manager
        status` shows it in ``state`` on ``on`` (None: do not wait)."""
        add_shared_storage(self.cluster, self.storage, on=on)
        self.create(on, *extra)
        self.put_under_ha(on, **options)
        if state is not None:
            self.wait_placement(on, state, timeout_s=timeout_s)

    def wait_placement(self, node: str, state: str, *, timeout_s: float) -> None:
        wait_until(f"{self.sid} {state} on {node}",
                   lambda: (p := self.placement()) == (node, state) or NotYet(p),
                   timeout_s=timeout_s)

    def migrate(self, to: str, *, timeout_s: float) -> None:
        """`ha-manager migrate` to ``to``; waits until HA shows it started there."""
        self.cluster.node(to).check("ha-manager", "migrate", self.sid, to,
                                    timeout_s=COMMAND_TIMEOUT_S)
        self.wait_placement(to, "started", timeout_s=timeout_s)

    # -- removal (clusters that outlive the run) -------------------------------------
    def remove(self, *, timeout_s: float = 120.0) -> str | None:
        """Out of HA, stopped and destroyed with its disk, as an administrator would.
        Returns None when done (or when there was nothing to remove), else what is left
        and the commands that remove it by hand."""
        nodes = self.powered_nodes()
        if not nodes:
            return f"no node is powered: remove {self.sid} by hand"
        first = nodes[0]
        first.run("ha-manager", "remove", self.sid, timeout_s=COMMAND_TIMEOUT_S)  # if in HA
        # the CRM lets go in its next round (`deleting` until then); a stop before that
        # would still go through HA
        wait_until(f"{self.sid} to leave `ha-manager status`",
                   lambda: (p := self.placement(first.name)) is None or NotYet(p),
                   timeout_s=timeout_s)
        vmid = str(self.recipe.vmid)
        # which node's directory lists its config
        found = first.run("sh", "-c", cluster_fs.guest_config_dirs_command(vmid),
                          timeout_s=COMMAND_TIMEOUT_S)
        owner = cluster_fs.owner_of_listing(found.stdout)
        if owner is None:
            return None  # never created, or gone already
        if owner not in [n.name for n in nodes]:
            return (f"{self.sid} is out of HA but its node {owner} is off: run "
                    f"`pct destroy {vmid} --purge` on {owner} once it is up")
        node = self.cluster.node(owner)

        def stopped() -> bool | NotYet:
            if "stopped" in node.check("pct", "status", vmid, timeout_s=COMMAND_TIMEOUT_S):
                return True
            # asked again while it runs: an LRM round that read the manager status just
            # before the removal may start it once more after a first stop
            said = node.run("pct", "stop", vmid, timeout_s=COMMAND_TIMEOUT_S)
            return NotYet(f"running; `pct stop {vmid}` said: "
                          f"{(said.stdout + said.stderr).strip() or f'exit {said.rc}'}")

        wait_until(f"{self.sid} stopped on {owner}", stopped, timeout_s=timeout_s,
                   interval_s=2.0)
        node.check("pct", "destroy", vmid, "--purge", timeout_s=COMMAND_TIMEOUT_S)
        return None

    # -- observing -------------------------------------------------------------------
    def powered_nodes(self) -> list[Node]:
        return [n for n in self.cluster.nodes() if self.cluster.lab.is_powered(n.name)]

    def ha_status(self, on: str | None = None) -> HaStatus:
        """`ha-manager status` on ``on``, or on the first powered node that answers."""
        nodes = [self.cluster.node(on)] if on else self.powered_nodes()
        problems = []
        for node in nodes:
            try:
                return parse_ha_manager_status(
                    node.check("ha-manager", "status", timeout_s=COMMAND_TIMEOUT_S))
            except PvechaosError as exc:
                problems.append(f"{node.name}: {str(exc).splitlines()[0]}")
        raise PvechaosError("no node answered `ha-manager status`: " + "; ".join(problems)
                            if problems else "no node is powered")

    def placement(self, on: str | None = None) -> tuple[str | None, str] | None:
        """(node, state) of the guest's service as `ha-manager status` shows it."""
        line = self.ha_status(on).services.get(self.sid)
        return None if line is None else (line.node, line.state)

    def wait_lrms_reporting(self, *, timeout_s: float, on: str | None = None) -> None:
        """Wait until `ha-manager status` shows every node's LRM with a fresh status
        (after power-ons: none missing, unreadable or "old timestamp - dead?")."""
        def reporting() -> bool | NotYet:
            stale = self.ha_status(on).stale_lrms(self.cluster.names)
            return not stale or NotYet(stale)
        wait_until("every node's LRM to report", reporting, timeout_s=timeout_s)

    def read_log(self) -> LogReport | None:
        """The guest's write log, read on the first powered node that has it; None when
        no node can read it right now (the invariants then judge it at the next look)."""
        for node in self.powered_nodes():
            try:
                result = node.run("cat", self.recipe.log_path, timeout_s=10.0)
            except PvechaosError:
                continue
            if result.rc == 0:
                return replace(analyse(*parse_log(result.stdout)), read_on=node.name)
        return None

    def log_exists(self) -> bool:
        report = self.read_log()
        return report is not None and bool(report.boots)

