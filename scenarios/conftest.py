"""Fixtures for the chaos scenarios (lab-agnostic: everything goes through the harness)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import allure
import pytest

from harness import options
from harness.cluster import Cluster
from harness.errors import LabError, PvechaosError
from harness.events import Action, Event, NodeFault, Note
from harness.expectations import Budget, ClusterConstants, read_constants
from harness.ha_guest import HaGuest
from harness.ha_watcher import HaWatcher
from harness.invariants import InvariantChecker
from harness.metrics import MetricsFile
from harness.plugin import RUN_ID, record_environment
from harness.probes import Probe
from harness.recovery import RecoveryMeter
from harness.report import event_table, node_logs, timeline_plot
from harness.report.redact import redact
from harness.timeline import EventKind, Timeline
from harness.waits import NotYet, hold_for, wait_until


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos")
    group.addoption(
        "--story-nodes", default=None, metavar="FIRST,SECOND,SURVIVOR",
        help="which nodes lose power first and second, and which survives "
             "(default: the cluster's nodes in name order)")
    group.addoption(
        "--all-faults", action="store_true", default=False,
        help="also run the longer fault stories and items (marker `extended`); by default "
             "only the short ones run, to keep the suite's CI time small")


def pytest_configure(config: pytest.Config) -> None:
    """--story-nodes' count and duplicates are refused before any lab starts; a name the
    cluster lacks can only be found once it is up (the ``story_nodes`` fixture)."""
    options.story_nodes(config.getoption("story_nodes"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, before any lab starts, the items whose FaultInjector verbs this checkout lacks
    (marker ``needs_verbs``: each in-node fault family lives in its own
    harness/faults_*.py mixin) and, without --all-faults, the ``extended`` ones (both
    markers are registered in harness/plugin.py)."""
    from harness.faults import FaultInjector

    for item in items:
        wanted = [v for m in item.iter_markers("needs_verbs") for v in m.args]
        missing = [v for v in dict.fromkeys(wanted) if not hasattr(FaultInjector, v)]
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"FaultInjector has no {', '.join(missing)}: the fault family's "
                       "harness/faults_*.py mixin is not in this checkout"))
        elif item.get_closest_marker("extended") and not config.getoption("all_faults"):
            item.add_marker(pytest.mark.skip(reason="an extended fault story: run it with "
                                                    "--all-faults"))


@dataclass(frozen=True)
class StoryNodes:
    first: str  # loses power first
    second: str  # loses power second
    survivor: str  # stays up, loses quorum, gets `pvecm expected 1`


@pytest.fixture(scope="module")
def story_nodes(cluster: Cluster, request: pytest.FixtureRequest) -> StoryNodes:
    try:
        names = options.story_nodes(request.config.getoption("story_nodes"),
                                    known=cluster.names)
    except pytest.UsageError as exc:  # a name this cluster lacks: the message names its nodes
        pytest.fail(str(exc), pytrace=False)
    if names is None and len(cluster.names) != options.STORY_NODES:
        pytest.fail(f"the cluster has {len(cluster.names)} nodes ({', '.join(cluster.names)}); "
                    "the stories need three\n  fix: choose them with --story-nodes "
                    "FIRST,SECOND,SURVIVOR", pytrace=False)
    return StoryNodes(*(names or cluster.names))


# -- the HA scenarios: one guest under HA, watched from outside and from every node -------
GUEST_VMID = 100


@pytest.fixture(scope="module")
def guest(lab, cluster: Cluster) -> Iterator[HaGuest]:
    """The test guest (not created yet: the scenario's setup step does that); removed
    afterwards where the cluster outlives the run."""
    try:
        recipe, storage = lab.guest_recipe(GUEST_VMID), lab.shared_storage()
    except PvechaosError as exc:
        raise LabError(f"the lab has no test guest: {exc}") from exc
    the_guest = HaGuest(cluster, recipe, storage)
    yield the_guest
    if lab.keeps_changes():
        left = the_guest.remove()
        if left:
            warnings.warn(f"pvechaos: {left}", stacklevel=1)


@pytest.fixture(scope="module")
def probe(guest: HaGuest, timeline: Timeline) -> Iterator[Probe]:
    """Connects to the guest's service every 100 ms (scaled) from outside the cluster."""
    r = guest.recipe
    with Probe(guest.sid, r.address, r.port, timeline, sid=guest.sid) as the_probe:
        yield the_probe


@pytest.fixture(scope="module")
def ha_watcher(cluster: Cluster, timeline: Timeline) -> Iterator[HaWatcher]:
    """Every node's `ha-manager status`, polled in the background onto the timeline."""
    with HaWatcher(cluster, timeline) as watcher:
        yield watcher


@pytest.fixture(scope="module")
def invariants(timeline: Timeline, guest: HaGuest, probe: Probe, quorum_watcher,
               ha_watcher) -> Iterator[InvariantChecker]:
    """The safety invariants, checked every second while the module runs; a test that
    uses this fixture fails when one breaks during it (harness.plugin)."""
    checker = InvariantChecker(timeline, guest.sid, read_log=guest.read_log,
                               acknowledged=probe.acknowledged,
                               slack_s=INVARIANT_SLACK_S, interval_s=1.0)
    with checker:
        yield checker
    late = checker.take_unreported()
    if late:
        pytest.fail("safety invariants broken after the last step:\n" +
                    "\n".join(f"  {v}" for v in late), pytrace=False)


# Observation lags the invariants allow for: a watcher's poll (0.5 s) plus a slow command.
INVARIANT_SLACK_S = 3.0


@pytest.fixture(scope="module")
def constants(cluster: Cluster, clock, request: pytest.FixtureRequest) -> ClusterConstants:
    """The timing constants, read from the running cluster's corosync."""
    try:
        constants = read_constants(cluster.nodes()[0], clock.timescale, len(cluster.names))
    except PvechaosError as exc:
        raise LabError(f"cannot read the cluster's timing constants: {exc}") from exc
    record_environment(request.config, {
        "corosync.token_ms": str(constants.token_ms),
        "corosync.consensus_ms": str(constants.consensus_ms),
        "corosync.token_coefficient_ms": str(constants.token_coefficient_ms)})
    return constants


@pytest.fixture(scope="module")
def budget(request: pytest.FixtureRequest, clock) -> Budget:
    return Budget(options.recovery_budget(request.config.getoption("recovery_budget")),
                  clock.timescale)


@pytest.fixture
def meter(guest, probe, faults, timeline, constants, budget, metrics) -> RecoveryMeter:
    """Cuts a node and measures the guest's recovery (harness/recovery.py)."""
    return RecoveryMeter(guest=guest, probe=probe, faults=faults, timeline=timeline,
                         constants=constants, budget=budget, metrics=metrics)


# -- evidence for the report, after every step --------------------------------------------
LOG_LEAD_S = 10.0  # node logs from this long before a fault


@pytest.fixture(autouse=True)
def evidence(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every step of a scenario on a cluster: each reachable node's `pvecm status`
    and `ha-manager status`, the node logs around the step's faults (redacted), and the
    timeline so far as a picture (with the recoveries, their windows and budgets) and as
    a table. A failed step thus carries its evidence."""
    if "cluster" not in request.fixturenames:
        yield
        return
    timeline: Timeline = request.getfixturevalue("timeline")
    cluster: Cluster = request.getfixturevalue("cluster")
    facts = cluster.lab.describe()
    allure.dynamic.label("lab", facts.get("lab", cluster.lab.kind))
    allure.dynamic.tag(f"lab: {cluster.lab.kind}")
    allure.dynamic.tag(f"PVE {request.config.getoption('pve_flavour')}")
    allure.dynamic.parameter("timescale", f"{timeline.clock.timescale:g}")
    started = timeline.clock.now()
    yield
    step = request.node.name
    with allure.step("evidence"):
        for node in cluster.nodes():
            if not cluster.lab.is_powered(node.name):
                continue
            for argv in (("pvecm", "status"), ("ha-manager", "status")):
                try:
                    result = node.run(*argv, timeout_s=15)
                    text = result.stdout + result.stderr
                except PvechaosError as exc:
                    text = f"(no answer: {exc})"
                allure.attach(redact(text), name=f"{' '.join(argv)} on {node.name}",
                              attachment_type=allure.attachment_type.TEXT)
        faults = timeline.events(FAULT_KINDS, after=started)
        if faults:
            vmid = GUEST_VMID if "guest" in request.fixturenames else None
            since = timeline.clock.wall(faults[0].t - LOG_LEAD_S)
            for name, text in node_logs.collect(cluster, since, time.time(),
                                                guest_vmid=vmid).items():
                allure.attach(text, name=f"logs on {name} around "
                              f"{', '.join(describe(f) for f in faults)}",
                              attachment_type=allure.attachment_type.TEXT)
        title = f"{request.module.__name__.rsplit('.', 1)[-1]}: up to {step}"
        overlays = recovery_overlays(request, timeline)
        allure.attach(timeline_plot.render(timeline, nodes=cluster.names, overlays=overlays,
                                           title=title),
                      name="timeline", attachment_type=allure.attachment_type.PNG)
        allure.attach(event_table.to_html(timeline, title=title), name="events",
                      attachment_type=allure.attachment_type.HTML)
        allure.attach(event_table.to_csv(timeline), name="events.csv",
                      attachment_type=allure.attachment_type.CSV)


# every fault verb (power, shutdown, reset, freeze, link) and the scenario's own actions
FAULT_KINDS = (*(k for k in EventKind if k.value.startswith("fault.")), EventKind.ACTION)


def describe(event: Event) -> str:
    """``power cut node1``, ``pvecm expected 1 node2``: a fault or an action, briefly."""
    p = event.payload
    what = (p.what if isinstance(p, Action) else "") or \
        str(event.kind).split(".")[-1].replace("_", " ")
    node = p.node if isinstance(p, Action | NodeFault) else None
    return f"{what} {node}" if node else str(what)


def recovery_overlays(request: pytest.FixtureRequest, timeline: Timeline) -> list:
    """The recoveries this scenario measured so far (from the metrics of this run)."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    overlays = []
    for m in MetricsFile(request.config.getoption("metrics_file"),
                         request.config.stash[RUN_ID]).read(this_run_only=True):
        since = m.data.get("since_t")
        if m.scenario == module and m.name.endswith("time_to_recovery") and since is not None:
            overlays.append(timeline_plot.RecoveryOverlay(
                float(since), float(since) + m.value_s, window=m.window_s,
                budget_s=m.budget_s, label=m.name))
    return overlays


# -- the fault stories (issue 13): resets, settling, capabilities ------------------------
class Resets:
    """Whether and when a node resets, from its boot id (Linux's, or the embedded node's
    per-boot one): a reset is the first poll that finds the node down or on a new boot,
    stamped with the poll's start on the timeline and noted there."""

    POLL_S = 0.1  # real seconds between polls; a poll is one short SSH command

    def __init__(self, cluster: Cluster, timeline: Timeline) -> None:
        self.cluster, self.timeline = cluster, timeline

    def boot(self, node: str) -> str:
        return self.cluster.node(node).boot_id()

    def changed(self, node: str, boot: str) -> str | None:
        """None while ``node`` answers on ``boot``; else what a poll saw."""
        try:
            now = self.cluster.node(node).run("cat", "/proc/sys/kernel/random/boot_id",
                                              timeout_s=3)
        except PvechaosError as exc:
            return f"down ({str(exc).splitlines()[0]})"
        if now.rc != 0:
            return f"down (exit {now.rc})"
        return None if now.stdout.strip() == boot else f"new boot {now.stdout.strip()}"

    def wait(self, node: str, boot: str, *, what: str, timeout_s: float) -> float:
        """The timeline time of the reset of ``node`` (it was on ``boot``), waited for at
        most ``timeout_s``."""
        def reset() -> float | NotYet:
            t = self.timeline.clock.now()
            seen = self.changed(node, boot)
            if seen is None:
                return NotYet(f"{node} still on boot {boot}")
            self.timeline.record(EventKind.NOTE, node, Note(f"{node} reset: {seen}"), t=t)
            return t
        return wait_until(what, reset, timeout_s=timeout_s, interval_s=self.POLL_S)

    def hold(self, node: str, boot: str, until_t: float, what: str) -> str | None:
        """None if ``node`` stays on ``boot`` until ``until_t``; else what was seen."""
        return hold_for(self.timeline, until_t, lambda: self.changed(node, boot), what)


@pytest.fixture(scope="module")
def resets(cluster: Cluster, timeline: Timeline) -> Resets:
    return Resets(cluster, timeline)


@pytest.fixture(scope="module")
def require(lab):
    """``require("FREEZE")`` skips the test when the lab lacks that capability (a
    Capability member's name; a name this checkout does not define is lacking too)."""
    from harness.lab_api import Capability

    def need(capability: str) -> None:
        member = getattr(Capability, capability, None)
        if member is None or member not in lab.capabilities:
            pytest.skip(f"the {lab.kind} lab has no Capability.{capability}")
    return need


@pytest.fixture
def settle(cluster: Cluster, guest: HaGuest, meter: RecoveryMeter, constants):
    """Wait (bounded) for a whole, calm cluster before the next fault: every node sees
    all members and quorum, every LRM reports, and the guest answers; returns the node
    it answers from."""
    def wait(timeout_s: float = 120.0) -> str:
        for name in cluster.names:
            cluster.node(name).wait_reachable(timeout_s=timeout_s)
            cluster.wait_whole_view(name, timeout_s=timeout_s)
        guest.wait_lrms_reporting(timeout_s=timeout_s)
        return meter.wait_serving(f"{guest.sid} to answer", timeout_s=timeout_s)
    return wait
