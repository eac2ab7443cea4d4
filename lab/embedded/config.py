"""Configuration of an embedded lab, validated before anything is created."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ConfigError
from harness.timescale import REAL_TIME, Timescale
from lab.options import (
    FORMED,
    LAB_NAME,
    LAB_NAME_RULE,
    LATEST_VERSION,
    MIN_SUBNET_ADDRESSES,
    PVE_VERSION,
)

DEFAULT_RANGE = "198.18.0.0/15"
DEFAULT_PVE_VERSION = "8.4.1"
STATE_ROOT = Path(os.environ.get("PVECHAOS_STATE_DIR", "/var/lib/pvechaos/labs"))
# --emulation-bug NAME: self-test switches that make the emulated PVE deliberately unsafe,
# so the chaos soak's self-test has a real safety bug to find and shrink; never for
# anything else. Name -> what it breaks. pvemu/ha/node_status.py reads "double-start".
EMULATION_BUGS = {
    "double-start": "the CRM recovers a lost node's guests at once, with no fence delay "
                    "and no agent lock: a cut node's guest runs twice",
}


@dataclass(frozen=True)
class EmbeddedConfig:
    name: str = "main"
    subnet: str = "198.18.0.0/24"
    allowed_range: str = DEFAULT_RANGE
    node_count: int = 3
    pve_version: str = DEFAULT_PVE_VERSION
    node_versions: dict[str, str] = field(default_factory=dict)  # per-node override
    timescale: Timescale = REAL_TIME  # the run's (conftest.py); validated where it is made
    state_root: Path = STATE_ROOT
    # the nodes' pmxcfs model: "cpg" replicates over corosync CPG (pvemu/pmxcfs.py),
    # "shared" serves one directory (pvemu/pmxcfs_shared.py says why it exists); "auto":
    # cpg at real time, shared under a timescale < 1
    pmxcfs: str = "auto"
    # the cluster bring_up forms (--cluster-name): part of the ready state's key
    cluster_name: str = "pvechaos"
    # "reuse": boot the cluster formed by an earlier run when its ready state matches
    # (lab/embedded/ready.py), and save one after formation; "never": form every time
    formed: str = "never"
    # a QDevice arbiter: its own namespace on the lab bridge running the real
    # corosync-qnetd (lab/embedded/qnetd.py); the nodes set it up with `pvecm qdevice setup`
    qdevice: bool = False
    # the version the upgrade verb switches a node to (--upgrade-to; None: the latest the
    # lab knows, lab/options.py LATEST_VERSION)
    upgrade_to: str | None = None
    # names from EMULATION_BUGS (--emulation-bug): the nodes' HA stack made unsafe on
    # purpose (node.json "bugs"); empty for every real use
    emulation_bugs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not LAB_NAME.fullmatch(self.name):  # the rules are lab/options.py's
            raise ConfigError(f"lab name {self.name!r} is not valid",
                              hint=f"use {LAB_NAME_RULE}")
        try:
            net = ipaddress.ip_network(self.subnet)
            allowed = ipaddress.ip_network(self.allowed_range)
        except ValueError as exc:
            raise ConfigError(f"bad lab subnet or range: {exc}",
                              hint="give a network such as 198.18.0.0/24") from None
        if net.version != 4 or not net.subnet_of(allowed):
            raise ConfigError(
                f"lab subnet {net} lies outside the lab range {allowed}",
                hint=f"choose a subnet inside {allowed} (or widen --lab-range on purpose)")
        if net.num_addresses < MIN_SUBNET_ADDRESSES:
            raise ConfigError(f"lab subnet {net} is too small",
                              hint="use a /27 or larger (a /24 is the default)")
        if not 1 <= self.node_count <= 9:
            raise ConfigError(f"node count {self.node_count} is not supported",
                              hint="use 1 to 9 nodes (3 is the HA minimum)")
        upgrade = {"--upgrade-to": self.upgrade_to} if self.upgrade_to is not None else {}
        for node, version in {"": self.pve_version, **self.node_versions, **upgrade}.items():
            if not PVE_VERSION.fullmatch(version):
                raise ConfigError(f"PVE version {version!r}{' for ' + node if node else ''} "
                                  "is not valid", hint="write it as 8.4.1 or 9.0.3")
        unknown = set(self.node_versions) - set(self.node_names)
        if unknown:
            raise ConfigError(f"PVE version given for unknown node(s) {sorted(unknown)}",
                              hint=f"nodes are {', '.join(self.node_names)}")
        if self.pmxcfs not in ("auto", "cpg", "shared"):
            raise ConfigError(f"pmxcfs model {self.pmxcfs!r} is not known",
                              hint="use auto, cpg or shared")
        if self.formed not in FORMED:
            raise ConfigError(f"formed-cluster mode {self.formed!r} is not known",
                              hint=f"use {' or '.join(FORMED)}")
        bugs = self.emulation_bugs
        # one of each, in the order given, as a tuple (a lone name is taken as one)
        bugs = tuple(dict.fromkeys((bugs,) if isinstance(bugs, str) else bugs))
        for bug in bugs:
            if bug not in EMULATION_BUGS:
                known = "; ".join(f"{name} ({what})" for name, what in EMULATION_BUGS.items())
                raise ConfigError(f"emulation bug {bug!r} is not known",
                                  hint=f"give one of the known ones: {known}")
        object.__setattr__(self, "emulation_bugs", bugs)
        if not isinstance(self.timescale, Timescale):
            raise ConfigError(f"timescale {self.timescale!r} is not a Timescale",
                              hint="make it once with harness.timescale.Timescale(factor)")

    @property
    def pmxcfs_model(self) -> str:
        if self.pmxcfs != "auto":
            return self.pmxcfs
        return "cpg" if self.timescale.factor >= 1 else "shared"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(self.subnet)  # type: ignore[return-value]

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(f"node{i}" for i in range(1, self.node_count + 1))

    @property
    def host_address(self) -> str:
        return str(self.network.network_address + 1)

    def node_address(self, node: str) -> str:
        return str(self.network.network_address + 10 + self.node_names.index(node) + 1)

    def version_of(self, node: str) -> str:
        """The version the node is provisioned with (an upgrade changes what it runs)."""
        return self.node_versions.get(node, self.pve_version)

    @property
    def next_version(self) -> str:
        """The version the upgrade verb switches a node to."""
        return self.upgrade_to or LATEST_VERSION

    # names of kernel objects, all derived from the lab name (<= 15 characters)
    @property
    def bridge(self) -> str:
        return f"pvc-{self.name}"

    def veth(self, node: str) -> str:
        return f"pvc-{self.name}-{self.node_names.index(node) + 1}"

    def netns(self, node: str) -> str:
        return f"pvechaos-{self.name}-{node}"

    # the QDevice arbiter ("qnetd host"): .10, just below the nodes' .11..
    QNETD = "qnetd"

    @property
    def qnetd_address(self) -> str:
        return str(self.network.network_address + 10)

    @property
    def qnetd_veth(self) -> str:
        return f"pvc-{self.name}-q"

    @property
    def lab_dir(self) -> Path:
        return self.state_root / self.name

    @property
    def guardian_log(self) -> Path:
        """What the lab's guardian did (lab/embedded/guardian.py): outside the lab
        directory, which its teardown removes (/var/lib/pvechaos/guardian-<name>.log)."""
        return self.state_root.parent / f"guardian-{self.name}.log"
