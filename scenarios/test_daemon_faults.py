"""Daemon faults: SIGKILL, stop and SIGSTOP of each PVE daemon, one item per daemon and
fault, each asserting what PVE's design says follows (pve-faults §1, §2.2, §3, §4.3).

Each item waits for a calm cluster (every node quorate, every LRM reporting, the guest
answering), aims the fault at the node its case names (the guest's node, the CRM master,
or an idle node: no guest, not the master, its LRM idle), then checks:

- reset or not: a reset within its window (``watchdog_reset_window`` for a client or mux
  gone, ``stalled_client_reset_window`` for a watchdog client that stops feeding), or no
  reset for as long as a stalled client would take;
- recovery or not: the guest answers again (where is measured: the emulated node boots
  again at once, so it may come back on its own node where a real one is still booting);
- what `ha-manager status` shows, where the design names it (a stopped LRM's services
  `freeze`; a new master after the master's CRM stops).

Then it ends the fault (SIGCONT, or start the unit if it is not active) and the next item
starts from a calm cluster again. Only a few short items run by default; the rest are
``extended`` (--all-faults).
"""

from __future__ import annotations

from dataclasses import dataclass

import allure
import pytest

from harness.expectations import (
    NO_RESET,
    RESET,
    first_start_bound,
    stalled_client_reset_window,
    watchdog_reset_window,
    widen,
)
from harness.recovery import WATCHER_SLACK
from harness.waits import NotYet, wait_until

pytestmark = [allure.severity(allure.severity_level.CRITICAL), allure.epic("Faults"),
              allure.feature("Daemon faults"), pytest.mark.extended,  # .ci/faults runs it
              pytest.mark.needs_verbs("kill_daemon", "stop_daemon", "pause_daemon"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

WATCHDOG, STALLED = "watchdog", "stalled"  # which reset window applies
BOOT_BOUND_S = 120.0  # a bound for the wait after a reset, not a prediction
IDLE_LRM = ("idle",)  # no lock, no watchdog, no active service (model §7.1, §12.2)


@dataclass(frozen=True)
class Case:
    unit: str
    fault: str  # kill, stop, pause
    target: str  # guest (its node), master (the CRM master), idle
    outcome: str  # RESET or NO_RESET
    window: str = ""  # WATCHDOG or STALLED for a reset
    shows: str = ""  # what `ha-manager status` must show: "freeze", "new master"
    source: str = ""  # pve-faults section
    default: bool = False  # runs without --all-faults

    @property
    def id(self) -> str:
        return f"{self.unit}-{self.fault}"


CASES = (
    Case("watchdog-mux", "kill", "idle", RESET, WATCHDOG, source="§3.4: the kernel's "
         "release pings once, no one feeds after: reset whether or not a client is there",
         default=True),
    Case("watchdog-mux", "stop", "idle", NO_RESET, source="§3.4: SIGTERM without clients "
         "is a clean exit with V"),
    Case("watchdog-mux", "pause", "idle", RESET, WATCHDOG, source="§3.4 (Derived): no "
         "keepalive after the last one"),
    Case("pve-ha-lrm", "kill", "guest", RESET, WATCHDOG, source="§1, §3.3: a client gone "
         "without V", default=True),
    Case("pve-ha-lrm", "stop", "guest", NO_RESET, shows="freeze", source="§1, §2.2: "
         "services frozen, watchdog closed with V"),
    Case("pve-ha-lrm", "pause", "guest", RESET, STALLED, source="§4.3, §3.2 (Derived): "
         "the client stops feeding"),
    Case("pve-ha-crm", "kill", "master", RESET, WATCHDOG, source="§1, §2.2: the master's "
         "client gone without V"),
    Case("pve-ha-crm", "stop", "master", NO_RESET, shows="new master", source="§2.2: the "
         "master closes its watchdog with V and releases its lock"),
    Case("pve-ha-crm", "pause", "master", RESET, STALLED, source="§4.3, §3.2 (Derived)"),
    Case("pve-cluster", "kill", "guest", NO_RESET, source="§1, §2.2: systemd restarts "
         "pmxcfs in 0.1 s, HA skips a round", default=True),
    Case("pve-cluster", "stop", "guest", RESET, STALLED, source="§1, §4.3: the active "
         "LRM loses its lock"),
    Case("pve-cluster", "pause", "guest", RESET, STALLED, source="§4.3 (Derived): every "
         "FUSE call blocks, the LRM with it"),
    Case("corosync", "kill", "guest", RESET, STALLED, source="§1, §2.2: inquorate at "
         "once, the active LRM cannot renew"),
    Case("corosync", "stop", "guest", RESET, STALLED, source="§1, §2.2"),
    Case("corosync", "pause", "guest", RESET, STALLED, source="§4.2, §5.5: writes block "
         "while it is paused, the LRM stops feeding"),
)


def params():
    for case in CASES:
        marks = () if case.default else (pytest.mark.extended,)
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def guest_set_up(guest, story_nodes, constants):
    first = story_nodes.first
    guest.set_up(first, timeout_s=first_start_bound(constants))
    wait_until("the guest's first writes", guest.log_exists, timeout_s=60)
    return first


def pick(case: Case, cluster, guest, meter, where: str) -> str | None:
    """The node the case aims at, or None when this cluster has none right now."""
    if case.target == "guest":
        return where
    master = meter.master()
    if case.target == "master":
        return master
    lrms = guest.ha_status(on=where).lrms
    idle = [n for n in cluster.names if n not in (where, master)
            and n in lrms and lrms[n].status in IDLE_LRM]
    return idle[0] if idle else None


@pytest.mark.parametrize("case", params())
def test_daemon_fault(case: Case, guest_set_up, cluster, guest, faults, meter, resets,
                      settle, constants, timeline, metrics, probe):
    c = constants
    where = settle()
    target = pick(case, cluster, guest, meter, where)
    if target is None:
        pytest.skip(f"no {case.target} node in this cluster now (guest on {where})")
    allure.dynamic.title(f"{case.fault} {case.unit} on {target} ({case.target}): "
                         f"{case.outcome}")
    allure.dynamic.parameter("PVE's outcome", f"{case.outcome} ({case.source})")
    boot = resets.boot(target)
    verb = {"kill": faults.kill_daemon, "stop": faults.stop_daemon,
            "pause": faults.pause_daemon}[case.fault]
    fault = verb(target, case.unit)
    t0 = fault.started.t
    stalled = widen(stalled_client_reset_window(c), WATCHER_SLACK)
    try:
        if case.outcome == RESET:
            window = widen(watchdog_reset_window(c) if case.window == WATCHDOG
                           else stalled_client_reset_window(c), WATCHER_SLACK)
            with allure.step(f"{target} resets (predicted {window})"):
                t = resets.wait(target, boot, what=f"{target} to reset",
                                timeout_s=window.high_s + 30)
                m = metrics.record(f"{case.id}.time_to_reset", t - t0, window=window,
                                   node=target, target=case.target)
                assert m.in_window, f"{target} reset {m.value_s:.2f} s after the " \
                    f"{case.fault}, outside {window}: {window.basis}"
            with allure.step(f"{target} boots again"):
                cluster.node(target).wait_reachable(timeout_s=BOOT_BOUND_S)
        else:
            with allure.step(f"{target} does not reset for {stalled.high_s:.1f} s (as "
                             "long as a stalled watchdog client takes)"):
                seen = resets.hold(target, boot, t0 + stalled.high_s,
                                   f"{target} staying up")
                assert seen is None, f"{target} reset after the {case.fault} of " \
                    f"{case.unit}: {seen} (PVE: no reset, {case.source})"
        if case.shows == "freeze":
            with allure.step(f"`ha-manager status` shows {guest.sid} frozen"):
                wait_until(f"{guest.sid} in freeze", lambda: (
                    p := guest.placement())[1] == "freeze" or NotYet(p),
                    timeout_s=c.crm_loop + c.lrm_loop + 30)
        if case.shows == "new master":
            with allure.step("`ha-manager status` shows a new master"):
                others = [n for n in cluster.names if n != target]
                wait_until("a new master", lambda: (m := guest.ha_status(
                    on=others[0]).master) is not None and m.node != target
                    and m.status == "active" or NotYet(m),
                    timeout_s=4 * c.crm_loop + c.lock_lifetime + 30)
    finally:
        with allure.step(f"end the {case.fault} of {case.unit} on {target}"):
            faults.end(fault)
    with allure.step(f"{guest.sid} answers again"):
        back = meter.wait_serving(f"{guest.sid} to answer", timeout_s=c.lock_lifetime
                                  + c.fence_delay + 4 * c.crm_loop + 60)
        metrics.record(f"{case.id}.downtime", probe.downtime(t0, timeline.clock.now()),
                       node=target, target=case.target, answered_from=back)
