"""A guest that keeps failing to start ends in `error` (pve-model.md §7.8).

With `--max_restart 1 --max_relocate 1`, HA tries the start twice on the guest's node,
relocates it once, tries twice there, and then gives up: the service is `error`, it is
not moved again, and nothing ever answered for it.
"""

from __future__ import annotations

import allure
import pytest

from harness.events import HaServiceState
from harness.ha_watcher import first_service_state, service_node_changes
from harness.timeline import EventKind
from harness.waits import NotYet, hold_for, wait_until

pytestmark = [pytest.mark.story, allure.severity(allure.severity_level.NORMAL),
              allure.epic("HA story"), allure.feature("Start failures"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]

MAX_RESTART, MAX_RELOCATE = 1, 1


def error_bound(c) -> float:
    """Every start attempt takes at most one LRM loop; each relocation and the final
    verdict one CRM round to decide and one to be seen; plus a master's election."""
    attempts = (MAX_RELOCATE + 1) * (MAX_RESTART + 1)
    return c.crm_wait_loop + c.lock_tries * c.lock_retry + attempts * c.lrm_loop \
        + 2 * (MAX_RELOCATE + 2) * c.crm_loop + 30


@allure.story("A guest that cannot start")
def test_failing_guest_ends_in_error(cluster, guest, story_nodes, constants, faults,
                                     timeline, probe, metrics):
    first = story_nodes.first
    with allure.step(f"a container that cannot start, under HA with --max_restart "
                     f"{MAX_RESTART} --max_relocate {MAX_RELOCATE}"):
        if not guest.recipe.failing_start:
            pytest.skip("this lab has no way to make a guest fail to start")
        added = faults.action("ha-manager add (failing guest)", node=first)
        guest.set_up(first, timeout_s=0, state=None, extra=guest.recipe.failing_start,
                     max_restart=MAX_RESTART, max_relocate=MAX_RELOCATE)
    with allure.step(f"{guest.sid} ends in error"):
        node = wait_until(f"{guest.sid} in error",
                          lambda: (p := guest.placement()) and p[1] == "error" and p[0]
                          or NotYet(p), timeout_s=error_bound(constants))
        metrics.record_observed(
            "time_to_error",
            lambda: (e := first_service_state(timeline, guest.sid, "error", after=added))
            and e.t - added.t,
            node=node)
    with allure.step(f"relocated exactly {MAX_RELOCATE} time(s) on the way"):
        moves = service_node_changes(timeline, guest.sid, added, on=first)
        seen = [(p.previous_node, p.node) for p in
                (m.payload_of(HaServiceState) for m in moves)]
        assert node != first and len(moves) == MAX_RELOCATE, f"moves seen by {first}: {seen}"
    hold = 2 * constants.crm_loop + constants.lrm_loop
    with allure.step(f"stays in error on {node} for {hold:.0f} s"):
        outcome = hold_for(timeline, timeline.clock.now() + hold,
                           lambda: None if guest.placement() == (node, "error")
                           else f"HA shows {guest.placement()}",
                           f"{guest.sid} to stay in error")
        assert outcome is None, outcome
    with allure.step("nothing ever answered for the guest"):
        assert not timeline.events(EventKind.PROBE_UP), probe.intervals()
