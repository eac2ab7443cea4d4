"""Each HA shutdown policy on a clean poweroff and on a reboot of the guest's node, with
PVE's own commands: `pvesh set /cluster/options --ha shutdown_policy=<p>`, then
`systemctl poweroff` or `systemctl reboot` on a node that is not the CRM master, against
pve-model.md §8.1's table and §10.3's window:

- conditional: poweroff -> stopped, recovered elsewhere 50-60 s (+ an LRM round) after
  the node left the membership (§10.3); reboot -> frozen, restarted on the same node
  after boot;
- freeze: poweroff -> frozen, never recovered, restarted on the node after power on;
  reboot -> frozen, restarted on the node after boot;
- failover: poweroff -> as conditional; reboot -> stopped, recovered elsewhere if the
  node is not back within the fence delay, else started again on it;
- migrate: poweroff and reboot -> moved away before the node goes down, back after.

No window is given for a freeze or a migration: those figures are recorded as measured.
Each case starts from a calm cluster with the guest on a node that is not the master; a
node powered off is powered on again (the lab's switch) before the next case. The policy
is removed at the end (`pvesh set /cluster/options --delete ha`).
"""

from __future__ import annotations

import allure
import pytest

from harness import ha_admin, policy_steps, story_plan
from harness.events import EventKind, HaServiceState, ProbeUp
from harness.expectations import MEASURED, clean_shutdown_window, first_start_bound
from harness.recovery import WATCHER_SLACK, probe_slack
from harness.waits import hold_for, wait_until

pytestmark = [pytest.mark.upgrade, allure.epic("Policies"), allure.feature("Shutdown policy"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

CASES = [(policy, action) for policy in ha_admin.POLICIES for action in ("poweroff", "reboot")]
FAILED_OVER = "stopped, recovered elsewhere"


@pytest.fixture(scope="module")
def set_up(cluster, guest, constants):
    """The guest under HA on the second node; the policy removed at the end."""
    guest.set_up(cluster.names[1], timeout_s=first_start_bound(constants))
    yield
    if any(cluster.lab.is_powered(n) for n in cluster.names):
        ha_admin.clear_shutdown_policy(cluster)


def bound(constants) -> float:
    """A bound (not a prediction) for one HA step: a few CRM and LRM rounds, a migration
    or a start, and commands on a busy 2-core machine."""
    return 3 * constants.crm_loop + 3 * constants.lrm_loop + 60.0


def ha_states(timeline, sid: str, after, sources=None) -> list[tuple[str | None, str | None]]:
    """Every (node, state) of ``sid`` the HA view of any node (of ``sources``) showed
    after ``after``."""
    return [(p.node, p.state) for e in timeline.events(EventKind.HA_SERVICE_STATE,
                                                       after=after.t)
            if (p := e.payload_of(HaServiceState)).sid == sid
            and (sources is None or e.source in sources)]


def answers_from(timeline, sid: str, after) -> list[tuple[float, str]]:
    """(t, node) of each first answer of the guest after ``after`` (probe.up events)."""
    return [(e.t, p.node) for e in timeline.events(EventKind.PROBE_UP, after=after.t)
            if (p := e.payload_of(ProbeUp)).guest == sid]


@pytest.mark.parametrize(("policy", "action"), CASES, ids=[f"{p}-{a}" for p, a in CASES])
def test_shutdown_policy(policy, action, set_up, cluster, guest, faults, probe, timeline,
                         constants, metrics, meter):
    allure.dynamic.title(f"shutdown_policy={policy}, systemctl {action}")
    c = constants
    with allure.step("a calm cluster, the guest on a node that is not the CRM master"):
        for name in cluster.names:
            if not cluster.lab.is_powered(name):
                faults.power_on(name)
        policy_steps.wait_calm(cluster, guest, timeout_s=120.0)
        home, master = policy_steps.away_from_master(cluster, guest, timeout_s=bound(c))
        meter.wait_serving(f"{guest.sid} to answer from {home}", node=home, timeout_s=bound(c))
    with allure.step(f"pvesh set /cluster/options --ha shutdown_policy={policy}"):
        ha_admin.set_shutdown_policy(cluster, policy)
    others = [n for n in cluster.names if n != home]
    target = story_plan.recovery_node(
        others, story_plan.load_of(ha_admin.ha_current(cluster).services.values()))
    tags = {"node": home, "master": master, "policy": policy, "action": action}
    act = faults.action(f"systemctl {action} {home} (shutdown_policy={policy})", home)
    with allure.step(f"systemctl {action} {home}"):
        if action == "poweroff":
            ha_admin.poweroff(cluster, home, timeout_s=bound(c) + 60)
        else:
            ha_admin.reboot(cluster, home, timeout_s=bound(c) + 60)
    left = policy_steps.wait_seen(f"{home} to leave the membership", lambda: (
        policy_steps.left_membership(timeline, home, act, others)))
    prefix = f"{policy}-{action}."
    if (policy, action) in (("conditional", "poweroff"), ("failover", "poweroff")):
        recovered_elsewhere(guest, probe, timeline, c, metrics, meter, home, target, left,
                            prefix, tags)
    elif policy == "freeze" or (policy, action) == ("conditional", "reboot"):
        frozen_then_home(cluster, guest, faults, probe, timeline, c, metrics, meter, home,
                         act, left, prefix, tags)
    elif policy == "failover":  # reboot
        failover_reboot(guest, probe, timeline, c, metrics, meter, home, target, left,
                        prefix, tags, others)
    else:  # migrate
        migrated_and_back(cluster, guest, faults, timeline, c, metrics, meter, home, target,
                          act, left, prefix, tags)
    fences = [s for s in ha_states(timeline, guest.sid, act) if s[1] == "fence"]
    if (policy, action) not in (("conditional", "poweroff"), ("failover", "poweroff"),
                                ("failover", "reboot")):
        assert fences == [], f"{guest.sid} was fenced: {fences}"


def recovered_elsewhere(guest, probe, timeline, c, metrics, meter, home, target, left,
                        prefix, tags) -> None:
    """§8.1 conditional/failover poweroff: the LRM stopped the guest and released its
    lock; the CRM fences after the fence delay and recovers at once (§10.3)."""
    window = clean_shutdown_window(c, slack=probe_slack(probe))
    with allure.step(f"{guest.sid} serves from {target} within {window} of {home} "
                     "leaving (§10.3)"):
        meter.wait_serving(f"{guest.sid} to answer from {target} (predicted {window})",
                           node=target, timeout_s=window.high_s + 30)
    first = answers_from(timeline, guest.sid, left)
    assert first and first[0][1] == target, f"answers after {home} left: {first}"
    m = metrics.record(prefix + "time_to_recovery", first[0][0] - left.t, window=window,
                       since="left membership", **tags)
    assert m.in_window, f"recovered {m.value_s:.1f} s after {home} left, outside {window}"


def frozen_then_home(cluster, guest, faults, probe, timeline, c, metrics, meter, home, act,
                     left, prefix, tags) -> None:
    """§8.1 freeze (and conditional reboot): the CRM freezes the service, never recovers
    it elsewhere; it starts again on the same node once that is back."""
    with allure.step(f"{guest.sid} frozen on {home}"):
        wait_until(f"{guest.sid} seen frozen on {home}",
                   lambda: (home, "freeze") in ha_states(timeline, guest.sid, act),
                   timeout_s=bound(c))
    if not cluster.lab.is_powered(home):  # poweroff: off for longer than HA ever waits
        hold = c.fence_delay + c.lock_lifetime + 2 * c.crm_loop
        with allure.step(f"{hold:.0f} s (fence delay + lock lifetime + 2 CRM rounds): "
                         f"still frozen on {home}, the guest silent"):
            # the survivors' views: the node's own, polled while its pmxcfs stopped, may
            # list no service at all
            others = [n for n in cluster.names if n != home]

            def recovered() -> str | None:
                moved = [s for s in ha_states(timeline, guest.sid, left, others)
                         if s != (home, "freeze")]
                if moved:
                    return f"HA view: {moved[0]}"
                return None if probe.current is None else f"answers {probe.current}"
            outcome = hold_for(timeline, left.t + hold, recovered,
                               f"{guest.sid} frozen on {home}")
            assert outcome is None, f"a frozen service was recovered: {outcome}"
        faults.power_on(home)
    with allure.step(f"{guest.sid} serves again from {home}"):
        meter.wait_serving(f"{guest.sid} to answer from {home}", node=home,
                           timeout_s=bound(c) + 60)
    elsewhere = [a for a in answers_from(timeline, guest.sid, act) if a[1] != home]
    assert elsewhere == [], f"the frozen guest answered elsewhere: {elsewhere}"
    metrics.record(prefix + "downtime", probe.downtime(act.t, timeline.clock.now()),
                   prediction=MEASURED, **tags)


def failover_reboot(guest, probe, timeline, c, metrics, meter, home, target, left, prefix,
                    tags, others) -> None:
    """§8.1 failover reboot: mode `shutdown`, the guest stopped; recovered elsewhere only
    if the node is not back before the fence delay ran out (§10.3), else the LRM starts it
    again on the node."""
    window = clean_shutdown_window(c, slack=probe_slack(probe))
    back = policy_steps.wait_seen(f"{home} to rejoin", lambda: policy_steps.rejoined(
        timeline, home, left, others), timeout_s=policy_steps.MEMBERSHIP_TIMEOUT_S + 60)
    gap = back.t - left.t
    node = meter.wait_serving(f"{guest.sid} to answer again", timeout_s=window.high_s + 30)
    first = answers_from(timeline, guest.sid, left)
    assert first, f"no answer after {home} left"
    metrics.record(prefix + "time_out_of_membership", gap, prediction=MEASURED, **tags)
    metrics.record(prefix + "downtime", probe.downtime(left.t, timeline.clock.now()),
                   prediction=MEASURED, answered_from=node, **tags)
    early = c.fence_countdown - c.crm_loop - WATCHER_SLACK.early_s
    late = c.fence_countdown + WATCHER_SLACK.late_s
    if first[0][1] == home:
        with allure.step(f"back on {home}: it rejoined after {gap:.1f} s, before the "
                         f"fence delay could run out ({late:.1f} s)"):
            assert gap <= late, f"{home} was out {gap:.1f} s, yet not recovered elsewhere"
    else:
        with allure.step(f"recovered on {first[0][1]}: {home} was out {gap:.1f} s, past "
                         f"the fence delay ({early:.1f} s)"):
            assert first[0][1] == target, f"recovered on {first[0][1]}, not on {target}"
            assert gap >= early, f"recovered elsewhere though {home} was back in {gap:.1f} s"
            assert first[0][0] - left.t in window, \
                f"recovered {first[0][0] - left.t:.1f} s after {home} left, outside {window}"


def migrated_and_back(cluster, guest, faults, timeline, c, metrics, meter, home, target,
                      act, left, prefix, tags) -> None:
    """§8.1 migrate: the node goes into maintenance, its services move (relocate for a
    container) before the LRM lets the shutdown go on; they move back after it returns."""
    moved = [a for a in answers_from(timeline, guest.sid, act) if a[1] != home]
    assert moved and moved[0][1] == target, \
        f"answers after systemctl: {answers_from(timeline, guest.sid, act)}, not {target}"
    with allure.step(f"moved to {target} before {home} left the membership"):
        # §8.1: the LRM "waits until empty, then exits": once the relocation is done the
        # CRM gives the service to the target (its node is the target, shown `starting`
        # until the target's LRM reports it running), and only then does the shutdown go
        # on. So HA shows the service on the target before the node leaves; whether the
        # target's LRM has started it by then is a race PVE's design leaves open (it
        # lost by 2.5 s in a CI run), recorded below as measured. The watcher stamps a
        # view with the start of its poll (early by one command) and may record it after
        # the leave was seen: waited for, bounded.
        def on_target(states: tuple[str, ...]) -> list[float]:
            return [e.t for e in timeline.events(EventKind.HA_SERVICE_STATE, after=act.t)
                    if (p := e.payload_of(HaServiceState)).sid == guest.sid
                    and p.node == target and p.state in states]

        owned = wait_until(f"HA to show {guest.sid} on {target}",
                           lambda: on_target(("starting", "started")), timeout_s=10.0)
        assert owned[0] <= left.t + WATCHER_SLACK.early_s, \
            f"HA showed {guest.sid} on {target} only {owned[0] - left.t:.1f} s after " \
            f"{home} left"
        started = wait_until(f"HA to show {guest.sid} started on {target}",
                             lambda: on_target(("started",)), timeout_s=bound(c))
    metrics.record(prefix + "time_to_move", owned[0] - act.t, prediction=MEASURED, **tags)
    metrics.record(prefix + "started_after_leave", started[0] - left.t,
                   prediction=MEASURED, **tags)
    metrics.record(prefix + "first_answer_after_leave", moved[0][0] - left.t,
                   prediction=MEASURED, **tags)
    if not cluster.lab.is_powered(home):
        faults.power_on(home)
    with allure.step(f"{guest.sid} back on {home} once it returned"):
        meter.wait_serving(f"{guest.sid} to answer from {home}", node=home,
                           timeout_s=bound(c) + 60)
    back = [a for a in answers_from(timeline, guest.sid, act) if a[1] == home]
    metrics.record(prefix + "time_away", back[0][0] - moved[0][0], prediction=MEASURED,
                   **tags)
