"""The public fixtures of the pvechaos pytest plugin (lab-agnostic: everything goes
through the harness; the ``lab`` fixture comes from the composition root,
lab/pytest_plugin.py).

A scenario asks for what it needs by name; every fixture here is module-scoped unless it
says otherwise, so one test module is one story on one fresh lab:

- ``lab``: the started lab (lab/pytest_plugin.py); ``cluster``: its nodes, formed;
- ``clock``, ``timeline``: the run's timescale and the record of everything seen;
- ``faults``: the fault verbs (power cuts, partitions, daemon, clock, storage faults),
  each undone at teardown;
- ``guest``: the HA test guest; ``probe``: its service, polled from outside; ``meter``:
  cuts a node and measures the recovery; ``constants``: PVE's timing constants as the
  cluster runs them; ``budget``: the recovery budget;
- ``quorum_watcher``, ``ha_watcher``: every node's `pvecm status` / `ha-manager status`
  in the background; ``invariants``: the safety invariants, checked every second;
- ``story_nodes``: which nodes lose power first and second and which survives;
  ``quorum_plan``: the power cuts until quorum is lost and `pvecm expected`, from the
  cluster's votes (harness/story_plan.py);
- ``settle``, ``resets``, ``require``: helpers of the fault stories;
- ``metrics`` (harness/plugin.py): records figures into the report.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from harness import options, story_plan
from harness.clock import Clock
from harness.cluster import Cluster
from harness.errors import LabError, PvechaosError
from harness.events import LabEvent, Note
from harness.expectations import Budget, ClusterConstants, read_constants
from harness.faults import FaultInjector
from harness.formation import bring_up
from harness.guest_fleet import GuestFleet
from harness.ha_guest import HaGuest
from harness.ha_watcher import HaWatcher
from harness.invariants import InvariantChecker
from harness.lab_api import Capability, Lab
from harness.plugin import record_environment, run_timescale
from harness.probes import Probe
from harness.recovery import RecoveryMeter
from harness.timeline import EventKind, Timeline
from harness.waits import NotYet, hold_for, wait_until
from harness.watchers import QuorumWatcher


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos")
    group.addoption("--cluster-name", default="pvechaos",
                    help="name given to `pvecm create` (default: %(default)s)")
    group.addoption(
        "--story-nodes", default=None, metavar="FIRST,SECOND,SURVIVOR",
        help="which nodes lose power first and second, and which survives "
             "(default: the cluster's nodes in name order)")
    group.addoption(
        "--all-faults", action="store_true", default=False,
        help="also run the longer fault stories and items (marker `extended`); by default "
             "only the short ones run, to keep the suite's CI time small")


def pytest_configure(config: pytest.Config) -> None:
    """--cluster-name and --story-nodes' count and duplicates are refused before any lab
    starts; a name the cluster lacks can only be found once it is up (``story_nodes``)."""
    options.cluster_name(config.getoption("cluster_name"))
    options.story_nodes(config.getoption("story_nodes"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, before any lab starts, the items whose FaultInjector verbs this checkout lacks
    (marker ``needs_verbs``: each in-node fault family lives in its own
    harness/faults_*.py mixin) and, without --all-faults, the ``extended`` ones (both
    markers are registered in harness/plugin.py)."""
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


# -- the cluster and its record -----------------------------------------------------------
@pytest.fixture(scope="module")
def clock(request: pytest.FixtureRequest) -> Clock:
    """The run's clock: seconds since the module started, and the --timescale that PVE's
    timers run at on labs that scale them (``clock.timescale``)."""
    return Clock(run_timescale(request.config))


@pytest.fixture(scope="module")
def timeline(clock: Clock) -> Timeline:
    """Everything the module saw (faults, quorum and HA changes, probe answers, notes),
    stamped on ``clock``; the report's pictures and tables are drawn from it."""
    return Timeline(clock)


@pytest.fixture(scope="module")
def cluster(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The lab's nodes as one cluster (formed with `pvecm create` / `pvecm add` unless the
    lab has it already; harness/formation.py `bring_up`). ``cluster.node(name).run(...)``
    runs a command over SSH; ``cluster.names`` are the node names."""
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
    """The fault verbs (harness/faults.py: ``power_cut``, ``power_on``, ``isolate``,
    ``kill_daemon``, ``clock_step``, ``storage_cut`` ...), each recorded on the timeline
    and undone at teardown (``faults.end(fault)`` ends one earlier)."""
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


@dataclass(frozen=True)
class StoryNodes:
    first: str  # loses power first
    second: str  # loses power second
    survivor: str  # never cut: stays up, loses quorum, gets `pvecm expected`
    order: tuple[str, ...] = ()  # every node in cut order: first, second, ..., survivor


def _cut_order(cluster: Cluster, request: pytest.FixtureRequest) -> tuple[str, ...]:
    try:
        chosen = options.story_nodes(request.config.getoption("story_nodes"),
                                     known=cluster.names)
    except pytest.UsageError as exc:  # a name this cluster lacks: the message names its nodes
        pytest.fail(str(exc), pytrace=False)
    try:
        return story_plan.cut_order(cluster.names, chosen)
    except story_plan.PlanUnsupported as exc:
        pytest.skip(f"the cluster lacks the story's shape: {exc}")


@pytest.fixture(scope="module")
def story_nodes(cluster: Cluster, request: pytest.FixtureRequest) -> StoryNodes:
    """Which nodes lose power first and second and which survives (--story-nodes, else
    the nodes in name order with the last one surviving; harness/story_plan.py). A
    cluster of fewer than three nodes skips the story, with the reason."""
    order = _cut_order(cluster, request)
    return StoryNodes(order[0], order[1], order[-1], order)


@pytest.fixture(scope="module")
def quorum_plan(cluster: Cluster, request: pytest.FixtureRequest) -> story_plan.QuorumPlan:
    """The quorum story's plan from this cluster (harness/story_plan.py): power cuts in
    ``story_nodes``' order until the survivors are a minority, and the `pvecm expected`
    value, from the votes `pvecm status` lists while the cluster is whole. A cluster the
    story does not fit (fewer than three nodes, a QDevice vote) skips it, with the reason."""
    order = _cut_order(cluster, request)
    status = cluster.node(order[-1]).quorum(timeout_s=10)
    try:
        plan = story_plan.plan_from_status(status, order, name_of=cluster.name_of)
    except story_plan.PlanUnsupported as exc:
        pytest.skip(f"the cluster lacks the quorum story's shape: {exc}")
    record_environment(request.config, {"story.quorum_plan": plan.describe()})
    return plan


# -- the HA guest, watched from outside and from every node -------------------------------
GUEST_VMID = 100


@pytest.fixture(scope="module")
def guest(lab, cluster: Cluster) -> Iterator[HaGuest]:
    """The HA test guest (not created yet: ``guest.set_up(node, timeout_s=...)`` creates
    it on shared storage and puts it under HA); removed afterwards where the cluster
    outlives the run. ``guest.placement()`` is its (node, state) in `ha-manager status`."""
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
    """Connects to the guest's service every 100 ms (scaled) from outside the cluster;
    ``probe.downtime(t0, t1)`` is how long it did not answer."""
    r = guest.recipe
    with Probe(guest.sid, r.address, r.port, timeline, sid=guest.sid) as the_probe:
        yield the_probe


@pytest.fixture(scope="module")
def ha_watcher(cluster: Cluster, timeline: Timeline) -> Iterator[HaWatcher]:
    """Every node's `ha-manager status`, polled in the background onto the timeline."""
    with HaWatcher(cluster, timeline) as watcher:
        yield watcher


# Observation lags the invariants allow for: a watcher's poll (0.5 s) plus a slow command.
INVARIANT_SLACK_S = 3.0


@pytest.fixture(scope="module")
def invariants(timeline: Timeline, guest: HaGuest, probe: Probe, quorum_watcher,
               ha_watcher) -> Iterator[InvariantChecker]:
    """The safety invariants (never two copies of the guest running, no write lost that
    the guest acknowledged, ...), checked every second while the module runs; a test that
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


@pytest.fixture(scope="module")
def fleet(lab, cluster: Cluster, timeline: Timeline, quorum_watcher, ha_watcher
          ) -> Iterator[GuestFleet]:
    """One HA guest per node (VMIDs 100, 101, ...; not created yet: ``fleet.set_up``),
    each probed from outside and checked for safety like the one ``guest``; a test that
    uses it fails when an invariant of any of them breaks while it runs. Removed
    afterwards where the cluster outlives the run. Use it instead of ``guest``."""
    vmids = range(GUEST_VMID, GUEST_VMID + len(cluster.names))
    try:
        the_fleet = GuestFleet(lab, cluster, timeline, vmids, slack_s=INVARIANT_SLACK_S)
    except PvechaosError as exc:
        raise LabError(f"the lab has no test guests: {exc}") from exc
    with the_fleet:
        yield the_fleet
    late = the_fleet.take_unreported()
    if lab.keeps_changes():
        for member in the_fleet.members:
            left = member.guest.remove()
            if left:
                warnings.warn(f"pvechaos: {left}", stacklevel=1)
    if late:
        pytest.fail("safety invariants broken after the last step:\n" +
                    "\n".join(f"  {v}" for v in late), pytrace=False)


@pytest.fixture(scope="module")
def constants(cluster: Cluster, clock, request: pytest.FixtureRequest) -> ClusterConstants:
    """PVE's timing constants as this cluster runs them (corosync's token and consensus
    read from the nodes, the HA timers at the run's timescale): what the predicted
    windows of harness/expectations are computed from."""
    try:
        constants = read_constants(cluster.nodes()[0], clock.timescale, len(cluster.names))
    except PvechaosError as exc:
        raise LabError(f"cannot read the cluster's timing constants: {exc}") from exc
    record_environment(request.config, {
        "corosync.token_ms": str(constants.token_ms),
        "corosync.consensus_ms": str(constants.consensus_ms),
        "corosync.token_coefficient_ms": str(constants.token_coefficient_ms),
        "corosync.hold_ms": str(round(constants.token_hold * 1000))})
    return constants


@pytest.fixture(scope="module")
def budget(request: pytest.FixtureRequest, clock) -> Budget:
    """The recovery budget (--recovery-budget, seconds at timescale 1, scaled)."""
    return Budget(options.recovery_budget(request.config.getoption("recovery_budget")),
                  clock.timescale)


@pytest.fixture
def meter(guest, probe, faults, timeline, constants, budget, metrics) -> RecoveryMeter:
    """Cuts a node and measures the guest's recovery against the predicted window and the
    budget (harness/recovery.py); ``meter.wait_serving(what, timeout_s=...)`` waits until
    the guest answers and returns the node it answers from."""
    return RecoveryMeter(guest=guest, probe=probe, faults=faults, timeline=timeline,
                         constants=constants, budget=budget, metrics=metrics)


# -- helpers of the fault stories -----------------------------------------------------------
@pytest.fixture(scope="module")
def require(lab) -> Callable[[str], None]:
    """``require("FREEZE")`` skips the test when the lab lacks that capability (a
    Capability member's name; a name this checkout does not define is lacking too)."""
    def need(capability: str) -> None:
        member = getattr(Capability, capability, None)
        if member is None or member not in lab.capabilities:
            pytest.skip(f"the {lab.kind} lab has no Capability.{capability}")
    return need


@pytest.fixture
def settle(cluster: Cluster, guest: HaGuest, meter: RecoveryMeter) -> Callable[..., str]:
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
        return self.cluster.node(node).boot_changed(boot)

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
    """Whether and when a node resets (``resets.boot``, ``resets.wait``, ``resets.hold``)."""
    return Resets(cluster, timeline)
