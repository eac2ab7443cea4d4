"""Test twins of a lab, a node and a cluster, shared by the unit tests.

Each twin has the interface of what it stands for and nothing more: ``FakeLab`` implements
harness.lab_api.Lab (and refuses a verb it has no Capability for, as every lab does),
``FakeNode`` the command interface of harness.cluster.Node, ``FakeCluster`` the part of
harness.cluster.Cluster that the harness reads. None accepts an attribute it does not
define, so a misspelt verb fails in a test as it would on a real lab.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from harness.errors import CommandError, ConfigError, InterlockError
from harness.lab_api import (
    VERB_CAPABILITY,
    Capability,
    GuestRecipe,
    LabEventSink,
    LabNode,
    SharedStorage,
    unsupported,
)
from harness.pve import cluster_fs
from harness.ssh import CommandResult

NAMES = ("node1", "node2", "node3")


class FakeLab:
    """A lab of named nodes that records every verb it is asked for as (verb, node)."""

    kind = "fake"

    def __init__(self, capabilities: Capability = Capability.POWER, *,
                 names: Sequence[str] = NAMES, powered: Iterable[str] | None = None) -> None:
        self.name = "fake"
        self.capabilities = capabilities
        self.names = tuple(names)
        self.powered = set(self.names if powered is None else powered)
        self.calls: list[tuple[str, str]] = []
        self.sinks: list[LabEventSink] = []

    def _node(self, node: str) -> str:
        if node not in self.names:
            raise InterlockError(f"refusing to touch {node!r}: not a node of the fake lab")
        return node

    def _require(self, verb: str) -> None:
        """Refuse ``verb`` unless the lab has its Capability (lab_api's one table; the
        power verbs need POWER)."""
        capability = VERB_CAPABILITY.get(verb, Capability.POWER)
        if capability not in self.capabilities:
            raise unsupported(self.kind, verb, capability)

    def _verb(self, verb: str, node: str) -> None:
        self._require(verb)
        self.calls.append((verb, self._node(node)))

    def nodes(self) -> tuple[LabNode, ...]:
        return tuple(LabNode(n, f"198.18.0.{11 + i}") for i, n in enumerate(self.names))

    def start(self) -> None:
        self.calls.append(("start", ""))

    def prepared(self) -> bool:
        return False

    def close(self) -> None:
        self.calls.append(("close", ""))

    def power_cut(self, node: str) -> None:
        self._verb("power_cut", node)
        self.powered.discard(node)

    def power_on(self, node: str) -> None:
        self._verb("power_on", node)
        self.powered.add(node)

    def is_powered(self, node: str) -> bool:
        return self._node(node) in self.powered

    def link_down(self, node: str) -> None:
        self._verb("link_down", node)

    def link_up(self, node: str) -> None:
        self._verb("link_up", node)

    def shutdown(self, node: str) -> None:
        self._verb("shutdown", node)
        self.powered.discard(node)

    def reset(self, node: str) -> None:
        self._verb("reset", node)

    def freeze(self, node: str) -> None:
        self._verb("freeze", node)

    def thaw(self, node: str) -> None:
        self._verb("thaw", node)

    def storage_outage(self) -> None:
        self._require("storage_outage")
        self.calls.append(("storage_outage", ""))

    def storage_restore(self) -> None:
        self._require("storage_restore")
        self.calls.append(("storage_restore", ""))

    def qnetd_address(self) -> str | None:
        return "198.18.0.10" if Capability.QDEVICE in self.capabilities else None

    def qnetd_lost(self) -> None:
        self._require("qnetd_lost")
        self.calls.append(("qnetd_lost", ""))

    def qnetd_back(self) -> None:
        self._require("qnetd_back")
        self.calls.append(("qnetd_back", ""))

    def upgrade(self, node: str) -> str:
        self._verb("upgrade", node)
        return f"fake upgrade of {node}\n"

    def save_ready(self) -> None:
        self._require("save_ready")
        self.calls.append(("save_ready", ""))

    def subscribe(self, sink: LabEventSink) -> None:
        self._require("subscribe")
        self.sinks.append(sink)

    def keeps_changes(self) -> bool:
        return False

    def join_password(self) -> str | None:
        return None

    def shared_storage(self) -> SharedStorage:
        return SharedStorage("shared", "198.18.0.1", "/export")

    def guest_recipe(self, vmid: int) -> GuestRecipe:
        return GuestRecipe(vmid=vmid, template="local:vztmpl/fake.tar.zst",
                           address=f"198.18.0.{vmid - 80}", prefixlen=24, bridge="vmbr0",
                           port=8080, storage_id="shared",
                           log_path=f"/mnt/pve/shared/images/{vmid}/log")

    def describe(self) -> dict[str, str]:
        return {"lab": self.kind, "nodes": ", ".join(self.names)}

    refusal: str | None = None  # what fault_refusal answers (an unarmed existing cluster)

    def fault_refusal(self) -> str | None:
        return self.refusal


@dataclass(frozen=True)
class Call:
    """One command a FakeNode was given; ``ok_codes`` is None for ``run``."""

    argv: tuple[str, ...]
    timeout_s: float
    stdin: str | None = None
    ok_codes: tuple[int, ...] | None = None


# What a node answers: stdout (rc 0); (rc, stdout) or (rc, stdout, stderr); a whole
# CommandResult; an exception to raise; or a callable of the Call giving one of those.
Answer = object


class FakeNode:
    """Answers commands as harness.cluster.Node does, from ``answers``: one callable of
    the Call, or a script (a list: the n-th command gets the n-th item, the last repeats).
    Every command is recorded in ``calls``; ``boot_id`` answers ``boot`` (set it to act a
    reset) without a recorded call, so scripted answers stay in step."""

    def __init__(self, name: str, answers: Callable[[Call], Answer] | Sequence[Answer] = "",
                 *, address: str = "198.18.0.11") -> None:
        self.name, self.address, self.cluster_address = name, address, address
        self.answers = answers
        self.calls: list[Call] = []
        self.boot = f"{name}-boot-1"
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeNode({self.name})"

    def _answer(self, call: Call) -> CommandResult:
        with self._lock:
            self.calls.append(call)
            if callable(self.answers):
                item = self.answers
            elif isinstance(self.answers, str):
                item = self.answers
            else:
                item = self.answers[min(len(self.calls), len(self.answers)) - 1]
        if callable(item):
            item = item(call)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, CommandResult):
            return item
        rc, out, err = (0, item, "") if isinstance(item, str) else (*item, "")[:3]
        command = call.argv[0] if len(call.argv) == 1 else shlex.join(call.argv)
        return CommandResult(self.name, command, rc, out, err, 0.0)

    def run(self, *argv: str, timeout_s: float = 10.0, stdin: str | None = None
            ) -> CommandResult:
        return self._answer(Call(argv, timeout_s, stdin))

    def check(self, *argv: str, timeout_s: float = 10.0, ok_codes: tuple[int, ...] = (0,)
              ) -> str:
        result = self._answer(Call(argv, timeout_s, None, ok_codes))
        if result.rc not in ok_codes:
            raise CommandError(self.name, result.command, result.rc, result.stdout,
                               result.stderr)
        return result.stdout

    def can_write_pve(self, path: str = cluster_fs.WRITE_PROBE) -> CommandResult:
        return self.run(cluster_fs.write_probe_command(path))

    def boot_id(self) -> str:
        return self.boot

    def boot_changed(self, boot: str, *, timeout_s: float = 3.0) -> str | None:
        return None if boot == self.boot else f"new boot {self.boot}"

    def close(self) -> None:
        pass


class FakeCluster:
    """Nodes by name, and the lab behind them (a FakeLab of the same names unless given)."""

    def __init__(self, *nodes: FakeNode, lab: FakeLab | None = None) -> None:
        self._nodes = {n.name: n for n in nodes}
        self.lab = lab or FakeLab(names=self.names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._nodes))

    def node(self, name: str) -> FakeNode:
        try:
            return self._nodes[name]
        except KeyError:
            raise ConfigError(f"unknown node {name!r}") from None

    def nodes(self) -> tuple[FakeNode, ...]:
        return tuple(self._nodes[n] for n in self.names)

    def each(self, fn, *, names: tuple[str, ...] | None = None, timeout_s: float = 15.0
             ) -> dict[str, object]:
        """As Cluster.each, one node after the other."""
        results: dict[str, object] = {}
        for name in names or self.names:
            try:
                results[name] = fn(self.node(name))
            except Exception as exc:  # noqa: BLE001 - reported per node, as Cluster.each
                results[name] = exc
        return results

    def close(self) -> None:
        pass
