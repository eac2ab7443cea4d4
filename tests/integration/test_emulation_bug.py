"""The emulation bug double-start on the real embedded lab (timescale 0.1): the CRM
recovers a cut node's guest with no fence delay and no agent lock, so while the cut node,
still powered, runs its copy until its watchdog resets it, a second copy runs elsewhere,
and the safety invariant doubled_guest fires on the guest's write log. The switch exists
so the chaos soak's self-test has a real safety bug to find and shrink.

No test here shows the same isolation without the switch giving no doubled guest: no
integration test does yet, and at timescale 0.1 corosync's unscaled detection can let
PVE's own lock be taken before the cut node resets (README, "Known differences")."""

from __future__ import annotations

import time

from harness.invariants import doubled_guest
from harness.waits import NotYet, wait_until
from harness.writelog import analyse, parse_log
from tests.integration.ha_support import fault_injector

K = 0.1
DETECT_S = 10.0  # corosync drops a node after token + consensus, about 8 s, unscaled
DISK = "images/100/vm-100-disk-0.raw"


def test_double_start_runs_an_isolated_nodes_guest_twice(ha_lab):
    h = ha_lab("bugsw", "198.18.181", timescale=K, emulation_bugs=("double-start",))
    assert h.lab.describe()["emulation.bugs"] == "double-start (deliberately unsafe)"
    h.create_ct("node1", 100)
    h.ha("add", "ct:100")
    h.wait_service("ct:100", "started", "node1", timeout_s=h.s(60) + 10)
    master = h.master()
    victim = "node1"
    if master == victim:  # a cut master's lock must expire first: cut a non-master
        victim = "node2"
        h.ha("migrate", "ct:100", victim)
        h.wait_service("ct:100", "started", victim, timeout_s=h.s(60) + 10)
    h.wait_answer(100, victim, timeout_s=h.s(60) + 10)
    disk = h.lab.config.lab_dir / "nfs" / DISK  # the lab's shared export, read from here

    def doubled():
        found = doubled_guest("ct:100", analyse(*parse_log(disk.read_text(errors="replace"))))
        return found or NotYet("no two boots wrote at once yet")

    assert not doubled_guest("ct:100", analyse(*parse_log(disk.read_text())))
    with fault_injector(h) as faults:
        faults.isolate(victim)  # corosync cut; the node, its guest and storage run on
        cut = time.monotonic()
        with h.diagnosed():
            violations = wait_until("a second copy of ct:100 writing beside the first",
                                    doubled, timeout_s=DETECT_S + h.s(150), interval_s=0.5)
        caught = time.monotonic() - cut
        faults.heal_network()
    print(f"\ndouble-start, {victim} isolated: caught after {caught:.1f} s: {violations[0]}")
    boots = analyse(*parse_log(disk.read_text(errors="replace"))).boots
    assert victim in {b.node for b in boots} and {b.node for b in boots} - {victim}
    log = h.log(master, "crm")
    assert f"fencing: acknowledged - node '{victim}' (emulation bug double-start: not " \
           "fenced)" in log
    assert "got agent lock" not in log
