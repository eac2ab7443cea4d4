"""A short story to baseline: the guest under HA, its node's power cut, the recovery.

Not collected by a plain run (its name does not start with test_): the baseline round
trip (tests/integration/test_baseline_roundtrip.py) and the demo (.ci/baseline) give its
path to pytest with --repeat.

``PVECHAOS_GUEST_FAILS=1``: a change made on purpose, as a team would meet it: a guest
that fails to start (a broken hookscript or mount). The guest is created with the lab's
``failing_start`` options (the embedded lab's containers and the real guest's hookscript
read the same ``pvechaos: fail-start always`` description knob: pvemu/guest_lifecycle.py,
lab/guest_template.py). HA then tries, relocates and gives up in ``error`` (pve-model.md
§7.8), so the first step fails: a behaviour regression whatever the figures say.
"""

from __future__ import annotations

import os

import pytest

from harness.expectations import first_start_bound

pytestmark = [pytest.mark.story,
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher", "invariants")]


def test_guest_under_ha_away_from_the_master(guest, story_nodes, constants, meter):
    """The guest ends on a node that is not the CRM master: a cut of the master's node
    takes a master election longer (pve-model.md §10.2 against §10.1), and a story that
    cut it in some repeats only would mix two distributions in one figure."""
    first = story_nodes.first
    fails = os.environ.get("PVECHAOS_GUEST_FAILS") == "1"
    guest.set_up(first, timeout_s=first_start_bound(constants),
                 extra=guest.recipe.failing_start if fails else ())
    if meter.master() == first:
        first = story_nodes.second
        guest.migrate(first, timeout_s=first_start_bound(constants))
    meter.wait_serving(f"{guest.sid} to answer", node=first, timeout_s=30)


def test_power_cut_recovers_elsewhere(guest, meter, budget):
    node = guest.placement()[0]
    recovery = meter.power_cut(node)  # cut, wait, measure
    assert recovery.restarted_on not in (None, node)
    assert not recovery.was_master, "the cut took the CRM master along (see step 1)"
    recovery.check_budget("time_to_recovery", budget)
