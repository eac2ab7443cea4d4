"""Partitions of the corosync network, every node powered on (pve-faults §6, model §10.4).

1. setup: a container under HA, running on the first node;
2. isolate that node (its corosync traffic cut both ways; SSH and the guest's network
   stay up, so the harness keeps watching): it loses quorum and resets itself within
   ``self_fence_window``; the majority recovers the guest within
   ``isolation_recovery_window``, never before the node's agent lock can expire, and
   after the node's reset wherever PVE's design guarantees it
   (``self_fence_precedes_recovery``: at timescale 1, not at 0.1, where corosync's
   unscaled detection lets the isolated node renew its lock, and so feed its watchdog,
   up to 8 s after the cut);
3. heal: the node rejoins, the guest stays where it was recovered;
4. a 2|1 split with the guest on the majority side: the minority node (its LRM idle)
   loses quorum and stays up (pve-faults §6.1: an idle LRM holds no watchdog; a master
   CRM there releases its watchdog cleanly); the guest keeps running, nothing moves;
5. (extended) a 2|1 split with the guest on the minority side, made with ``split``:
   as step 2.

The safety invariants run all along: never two copies of the guest, above all while a
partition lasts.
"""

from __future__ import annotations

from dataclasses import dataclass

import allure
import pytest

from harness.events import HaServiceState
from harness.expectations import (
    earliest_lock_steal,
    first_start_bound,
    isolation_is_predicted,
    isolation_recovery_window,
    self_fence_precedes_recovery,
    self_fence_window,
    widen,
)
from harness.metrics import quorum_loss_window_seen, time_to_quorum_loss
from harness.recovery import WATCHER_SLACK, Recovery, check_no_failback
from harness.timeline import EventKind
from harness.waits import NotYet, hold_for, wait_until

pytestmark = [pytest.mark.story, allure.severity(allure.severity_level.CRITICAL),
              allure.epic("Faults"), allure.feature("Partitions"),
              pytest.mark.needs_verbs("isolate", "split", "heal_network"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

MEMBERSHIP_TIMEOUT_S = 60  # corosync's own timers (token + consensus ~ 8 s); not scaled
BOOT_BOUND_S = 120.0  # a bound for the wait after a reset, not a prediction


@dataclass
class Story:
    guest_node: str = ""  # where the guest runs before each step
    recovery: Recovery | None = None


@pytest.fixture(scope="module")
def story(story_nodes) -> Story:
    return Story(guest_node=story_nodes.first)


@allure.story("Setup")
def test_setup_guest_under_ha(guest, story, constants, meter):
    with allure.step(f"shared storage, pct create, ha-manager add {guest.sid}: started on "
                     f"{story.guest_node}"):
        guest.set_up(story.guest_node, timeout_s=first_start_bound(constants))
        meter.wait_serving(f"{guest.sid} to answer from {story.guest_node}",
                           node=story.guest_node, timeout_s=30)
    wait_until("the guest's first writes", guest.log_exists, timeout_s=30)


def lost_quorum(cluster, node: str):
    return lambda: not (s := cluster.node(node).quorum(timeout_s=5)).quorate or NotYet(s)


def isolate_and_measure(verb, node: str, *, cluster, guest, faults, meter, resets,
                        constants, timeline, metrics, budget, prefix: str = "") -> Recovery:
    """Cut ``node`` (running the guest) off with ``verb``; measure its quorum loss, its
    reset and the guest's recovery on the majority; judge each against PVE's window."""
    c = constants
    boot, master = resets.boot(node), meter.master()
    # the isolated node's own fault.begin: the figures are about that node (a split's
    # faults come in node order, so the first may be another node's)
    cut = next(f for f in verb() if f.target == node).started
    with allure.step(f"{node}: not quorate"):
        wait_until(f"{node} to lose quorum", lost_quorum(cluster, node),
                   timeout_s=MEMBERSHIP_TIMEOUT_S)
        metrics.record_observed(prefix + "time_to_quorum_loss",
                                lambda: time_to_quorum_loss(timeline, cut, node),
                                window=lambda: quorum_loss_window_seen(c, timeline, cut,
                                                                       node), node=node)
    fence_w = widen(self_fence_window(c), WATCHER_SLACK)
    with allure.step(f"{node} resets itself (predicted {fence_w})"):
        reset_t = resets.wait(node, boot, what=f"{node} to reset itself",
                              timeout_s=fence_w.high_s + 30)
        fenced = metrics.record(prefix + "time_to_self_fence", reset_t - cut.t,
                                window=fence_w, node=node)
        cluster.node(node).wait_reachable(timeout_s=BOOT_BOUND_S)
    predicted = isolation_is_predicted(c)
    expect = (f"predicted {isolation_recovery_window(c, isolated_master=node == master)}"
              if predicted else "measured: at this timescale corosync's re-formation "
              f"({c.detection:.1f} s) outlasts the watchdog ({c.watchdog:.1f} s)")
    with allure.step(f"{guest.sid} recovered on the majority ({expect})"):
        rec = meter.measure(cut, node, master, prefix, judged=predicted)
    restart = rec.figures[prefix + "time_to_restart"][0].value_s
    metrics.record(prefix + "restart_after_self_fence", restart - fenced.value_s, node=node,
                   guaranteed_by_design=self_fence_precedes_recovery(c))
    with allure.step("every figure inside PVE's predicted window"):
        assert fenced.in_window, f"{node} reset {fenced.value_s:.2f} s after the cut, " \
            f"outside {fence_w}: {fence_w.basis}"
        rec.check_behaviour(budget)
    with allure.step("recovered only once the isolated node's lock could expire"):
        assert restart >= earliest_lock_steal(c) - WATCHER_SLACK.early_s, \
            f"restart issued {restart:.2f} s after the cut, before the agent lock could " \
            f"expire ({earliest_lock_steal(c):.2f} s)"
    if self_fence_precedes_recovery(c):
        with allure.step("recovered only after the isolated node reset (PVE's design)"):
            assert fenced.value_s < restart, f"restart at {restart:.2f} s, before " \
                f"{node}'s reset at {fenced.value_s:.2f} s"
    return rec


@allure.story("Isolated node: self-fence, then recovery")
def test_isolated_node_self_fences_and_its_guest_is_recovered(
        cluster, guest, story, faults, meter, resets, constants, timeline, metrics, budget):
    node = story.guest_node
    rec = isolate_and_measure(lambda: faults.isolate(node), node, cluster=cluster,
                              guest=guest, faults=faults, meter=meter, resets=resets,
                              constants=constants, timeline=timeline, metrics=metrics,
                              budget=budget)
    story.recovery = rec
    story.guest_node = rec.restarted_on or ""
    role = "CRM master" if rec.was_master else "not the CRM master"
    allure.dynamic.title(f"Isolated {node} ({role}): self-fence, {guest.sid} recovered on "
                         f"{story.guest_node}")


def heal_and_hold(cluster, guest, faults, timeline, constants, probe, where: str) -> None:
    with allure.step("heal the network"):
        faults.heal_network()
    for name in cluster.names:
        with allure.step(f"{name}: three members, quorate"):
            cluster.wait_whole_view(name, timeout_s=MEMBERSHIP_TIMEOUT_S)
    check_no_failback(guest, timeline, constants, probe, where)


@allure.story("Heal after the isolation")
def test_heal_isolation(cluster, guest, story, faults, timeline, constants, probe):
    heal_and_hold(cluster, guest, faults, timeline, constants, probe, story.guest_node)


@allure.story("2|1 split, guest on the majority side")
def test_split_with_the_guest_on_the_majority_side(cluster, guest, story, faults, meter,
                                                   resets, constants, timeline, metrics,
                                                   probe):
    where = story.guest_node
    lrms = guest.ha_status(on=where).lrms
    idle = [n for n in cluster.names if n != where and n in lrms
            and lrms[n].status == "idle"]
    if not idle:
        pytest.skip(f"no idle LRM outside {where} ({ {n: lrms[n].status for n in lrms} }): "
                    "an active LRM on the minority side would self-fence (pve-faults §6.1)")
    minority = idle[0]
    boot, master = resets.boot(minority), meter.master()
    allure.dynamic.parameter("minority", f"{minority} (LRM idle"
                             f"{', CRM master' if master == minority else ''})")
    cut = faults.split([[n for n in cluster.names if n != minority], [minority]])[0].started
    with allure.step(f"{minority}: not quorate"):
        wait_until(f"{minority} to lose quorum", lost_quorum(cluster, minority),
                   timeout_s=MEMBERSHIP_TIMEOUT_S)
        metrics.record_observed("split_time_to_quorum_loss",
                                lambda: time_to_quorum_loss(timeline, cut, minority),
                                window=lambda: quorum_loss_window_seen(
                                    constants, timeline, cut, minority),
                                node=minority)
    # as long as an isolated node with an active LRM would take to reset, and then some
    until = cut.t + widen(self_fence_window(constants), WATCHER_SLACK).high_s \
        + constants.crm_loop
    with allure.step(f"{minority} stays up and {guest.sid} stays on {where} until "
                     f"{until - cut.t:.1f} s after the cut"):
        def broke() -> str | None:
            seen = resets.changed(minority, boot)
            if seen:
                return f"{minority} reset: {seen}"
            moved = [p for e in timeline.events(EventKind.HA_SERVICE_STATE, after=cut.t)
                     if (p := e.payload_of(HaServiceState)).sid == guest.sid
                     and p.node not in (None, where)]
            return f"{guest.sid} moved: {moved[0]}" if moved else None
        outcome = hold_for(timeline, until, broke, f"{minority} cut off, nothing moving")
        assert outcome is None, outcome
    metrics.record("downtime_during_split", probe.downtime(cut.t, timeline.clock.now()),
                   node=minority)
    assert probe.current is not None and probe.current.node == where, \
        f"the guest answers from {probe.current}"
    if master == minority:
        with allure.step("a new CRM master on the majority side"):
            wait_until("a master on the majority side", lambda: (
                m := meter.master()) not in (None, minority) or NotYet(m),
                timeout_s=constants.lock_lifetime + 4 * constants.crm_loop + 60)
    heal_and_hold(cluster, guest, faults, timeline, constants, probe, where)


@pytest.mark.extended
@allure.story("2|1 split, guest on the minority side")
def test_split_with_the_guest_on_the_minority_side(cluster, guest, story, faults, meter,
                                                   resets, constants, timeline, metrics,
                                                   budget, probe):
    node = story.guest_node
    others = [n for n in cluster.names if n != node]
    rec = isolate_and_measure(lambda: faults.split([others, [node]]), node,
                              cluster=cluster, guest=guest, faults=faults, meter=meter,
                              resets=resets, constants=constants, timeline=timeline,
                              metrics=metrics, budget=budget, prefix="split_")
    story.guest_node = rec.restarted_on or ""
    heal_and_hold(cluster, guest, faults, timeline, constants, probe, story.guest_node)
