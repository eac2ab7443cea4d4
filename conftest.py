"""Composition root: the only place where harness/ and lab/ meet.

Options choose and configure the lab; fixtures give scenarios and tests a started lab, a
formed cluster, a timeline, fault verbs and a quorum watcher. Each test module gets a
fresh lab, so every story starts from a pristine cluster.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

import pytest

from harness import options
from harness.clock import Clock
from harness.cluster import Cluster
from harness.errors import LabError, PvechaosError
from harness.events import LabEvent
from harness.faults import FaultInjector
from harness.formation import bring_up
from harness.lab_api import Capability, Lab
from harness.timeline import EventKind, Timeline
from harness.timescale import Timescale
from harness.watchers import QuorumWatcher

pytest_plugins = ["harness.plugin"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos")
    group.addoption("--lab", default="embedded", choices=("embedded", "libvirt", "inventory"),
                    help="lab kind (default: %(default)s)")
    group.addoption("--lab-config", default=None, metavar="FILE",
                    help="libvirt lab: its YAML file (README: 'Nested PVE on a KVM runner')")
    group.addoption("--inventory", default=None, metavar="FILE",
                    help="inventory lab: the existing cluster's YAML file (README: 'An "
                         "existing cluster')")
    group.addoption("--destructive", action="store_true", default=False,
                    help="inventory lab: allow power cuts of the existing cluster's nodes "
                         "(also requires the cluster name read from the nodes to match)")
    group.addoption("--lab-name", default=None,
                    help="embedded lab name: 1-8 lowercase letters/digits, starting with a "
                         "letter (default: main, or the xdist worker id)")
    group.addoption("--lab-subnet", default="198.18.0.0/24",
                    help="embedded lab subnet; xdist worker N uses the N+1-th next one "
                         "(default: %(default)s)")
    group.addoption("--lab-range", default="198.18.0.0/15",
                    help="addresses the embedded lab may use at all (default: %(default)s)")
    group.addoption("--pve-flavour", choices=("8", "9"), default="8",
                    help="PVE generation of embedded nodes: 8 (groups.cfg, 8.4.1) or 9 "
                         "(rules.cfg, status with fencing lines, 9.1.1) (default: %(default)s)")
    group.addoption("--pve-version", default=None,
                    help="exact PVE version embedded nodes report; its major version must "
                         "match --pve-flavour (default: 8.4.1 or 9.1.1)")
    group.addoption("--node-version", action="append", default=[], metavar="NODE=VERSION",
                    help="PVE version of one embedded node (a mixed-version cluster)")
    group.addoption("--timescale", type=float, default=1.0,
                    help="multiplier for PVE's HA timers on labs that scale them, from "
                         "0.01 to 10 (1 = PVE's real timings; default: %(default)s)")
    group.addoption("--recovery-budget", type=float, default=120.0,
                    help="recovery budget in seconds at timescale 1, > 0 "
                         "(default: %(default)s)")
    group.addoption("--cluster-name", default="pvechaos",
                    help="name given to `pvecm create` (default: %(default)s)")


def run_timescale(config: pytest.Config) -> Timescale:
    """The run's one timescale, made and validated once in pytest_configure."""
    # imported here, not at the top: see the `lab` fixture
    from harness.plugin import TIMESCALE

    return config.stash[TIMESCALE]


def lab_options(config: pytest.Config) -> dict[str, object]:
    worker = getattr(config, "workerinput", {}).get("workerid")  # "gw0", "gw1", ...
    index = int(worker[2:]) + 1 if worker else 0
    kind = config.getoption("lab")
    if kind == "libvirt":  # worker gwN's lab is lab N (a plain run uses lab 0)
        return {"lab_config": config.getoption("lab_config"),
                "worker": int(worker[2:]) if worker else 0,
                "timescale": run_timescale(config)}
    if kind == "inventory":
        return {"inventory": config.getoption("inventory"),
                "destructive": config.getoption("destructive"),
                "timescale": run_timescale(config)}
    base, _ = options.lab_network(config.getoption("lab_subnet"), config.getoption("lab_range"))
    subnet = ipaddress.ip_network(
        (int(base.network_address) + index * base.num_addresses, base.prefixlen))
    versions = {}
    for item in config.getoption("node_version"):
        node, sep, version = item.partition("=")
        if not sep:
            raise pytest.UsageError(f"--node-version {item!r}: write it as NODE=VERSION, "
                                    "e.g. --node-version node3=9.0.3")
        versions[node] = version
    return {
        "name": options.lab_name(config.getoption("lab_name")) or (worker or "main"),
        "subnet": str(subnet),
        "allowed_range": config.getoption("lab_range"),
        "pve_version": pve_version(config),
        "node_versions": versions,
        "timescale": run_timescale(config),
    }


def pve_version(config: pytest.Config) -> str:
    return options.pve_version(config.getoption("pve_version"),
                               config.getoption("pve_flavour"))


def make_lab(config: pytest.Config) -> Lab:
    from lab import open_lab

    return open_lab(config.getoption("lab"), **lab_options(config))


def pytest_configure(config: pytest.Config) -> None:
    from harness.plugin import TIMESCALE

    # every option's value is checked here, before any lab starts (harness/options.py)
    options.recovery_budget(config.getoption("recovery_budget"))
    config.stash[TIMESCALE] = options.timescale(config.getoption("timescale"))  # the one place
    try:
        make_lab(config)  # validates every lab option before any test runs
    except PvechaosError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A freshly booted lab for this module (cluster not formed); removed afterwards."""
    the_lab = make_lab(request.config)
    try:
        the_lab.start()
    except PvechaosError as exc:
        raise LabError(f"the lab did not start: {exc}") from exc
    # imported here, not at the top: pytest loads the plugin only after this file, and a
    # module imported before that is not assertion-rewritten
    from harness.plugin import record_environment

    record_environment(request.config, the_lab.describe())
    try:
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture(scope="module")
def clock(request: pytest.FixtureRequest) -> Clock:
    return Clock(run_timescale(request.config))


@pytest.fixture(scope="module")
def timeline(clock: Clock) -> Timeline:
    return Timeline(clock)


@pytest.fixture(scope="module")
def cluster(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The lab's nodes as one cluster (formed with `pvecm create` / `pvecm add` unless the
    lab has it already; harness/formation.py `bring_up`)."""
    the_cluster = Cluster(lab)
    try:
        bring_up(the_cluster, request.config.getoption("cluster_name"))
    except PvechaosError as exc:
        the_cluster.close()
        raise LabError(f"forming the cluster failed: {exc}") from exc
    yield the_cluster
    the_cluster.close()


@pytest.fixture(scope="module")
def faults(lab: Lab, timeline: Timeline) -> Iterator[FaultInjector]:
    injector = FaultInjector(lab, timeline)
    if Capability.EVENTS in lab.capabilities:  # power events the lab sees by itself
        lab.subscribe(lambda node, event, detail: timeline.record(
            EventKind.LAB_EVENT, node, LabEvent(node, event, detail)))
    yield injector
    errors = injector.undo_all()
    if errors:
        raise PvechaosError("undoing faults failed: " + "; ".join(map(str, errors)))


@pytest.fixture(scope="module")
def quorum_watcher(cluster: Cluster, timeline: Timeline) -> Iterator[QuorumWatcher]:
    """Every node's `pvecm status`, polled in the background onto the timeline."""
    with QuorumWatcher(cluster, timeline) as watcher:
        yield watcher
    try:
        import allure

        allure.attach(json.dumps(timeline.to_json(), indent=1), name="timeline.json",
                      attachment_type=allure.attachment_type.JSON)
    except ImportError:
        pass
