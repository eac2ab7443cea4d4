"""HA placement on the embedded lab: failed starts (max_restart, max_relocate, error),
restricted groups and strict node-affinity rules without a recovery node, failback and
nofailback, and a node holding only an error service (pve-model.md §4.2, §7.8, §9,
§13.6 items 3, 6, 7, 9; test-relocate-policy-default-group, test-resource-failure2,
test-recovery1/4, test-node-affinity-strict*/nonstrict5/6, test-erroneous-service1).

Timescale 0.1: HA timers are ten times faster; corosync's own membership timers (about
8 s to drop a node) are not scaled."""

from __future__ import annotations

import time

import pytest

from harness.errors import PvechaosError
from harness.waits import NotYet, wait_until
from tests.integration.ha_support import holds

K = 0.1
DETECT_S = 10.0  # corosync drops a dead node after token + consensus, about 8 s, unscaled
NODES = ("node1", "node2", "node3")
ALWAYS = ("--description", "pvechaos: fail-start always")


# -- helpers -------------------------------------------------------------------------------
def count(h, node: str, daemon: str, text: str) -> int:
    return h.log(node, daemon).count(text)


def wait_log(h, node: str, daemon: str, text: str, *, times: int = 1,
             timeout_s: float) -> float:
    """Wait until text appears (at least `times` times) in a node's daemon log."""
    def seen() -> bool | NotYet:
        n = count(h, node, daemon, text)
        return n >= times or NotYet(f"{n} of {times}x {text!r} in {node}'s {daemon} log")

    wait_until(f"{times}x {text!r} in {node}'s {daemon} log", seen, timeout_s=timeout_s,
               interval_s=0.05)
    return time.monotonic()


def crm_logs(h) -> str:
    return "".join(h.log(n, "crm") for n in NODES)


def service_status(h, sid: str) -> dict:
    return h.manager_status()["manager_status"]["service_status"][sid]


def wait_node_state(h, name: str, state: str, *, timeout_s: float) -> float:
    def seen() -> bool | NotYet:
        try:
            current = h.node_state(name)
        except (PvechaosError, AssertionError, KeyError) as exc:
            return NotYet(str(exc))
        return current == state or NotYet(f"{name}: {current}")

    wait_until(f"{name} {state}", seen, timeout_s=timeout_s, interval_s=0.25)
    return time.monotonic()


def wait_moved(h, sid: str, node: str, *, timeout_s: float) -> float:
    """Wait until `ha-manager status` places sid on node (any state); returns when."""
    def seen() -> bool | NotYet:
        try:
            current = h.services().get(sid)
        except PvechaosError as exc:
            return NotYet(str(exc))
        return bool(current and current[0] == node) or NotYet(f"{sid}: {current}")

    wait_until(f"{sid} on {node}", seen, timeout_s=timeout_s, interval_s=0.1)
    return time.monotonic()


def wait_running(h, sid: str, node: str, *, timeout_s: float) -> float:
    """Wait until the CRM shows sid started (LRM-confirmed) on node, then check that the
    guest answers from there. The guest's port is not probed while it starts: the lab's
    guest self-check (guest_process.py) takes a probe for its own connection and then
    fails the start (reported as an emulation bug)."""
    when = h.wait_service(sid, "started", node, timeout_s=timeout_s)
    vmid = int(sid.partition(":")[2])
    h.wait_answer(vmid, node, timeout_s=5)
    return when


def disable_ends(h, sid: str, node: str, from_state: str) -> float:
    """`ha-manager set <sid> --state disabled`: from_state -> stopped on node within about
    one CRM round (§4.2: the only exit from error and from recovery without a node)."""
    asked = time.monotonic()
    h.ha("set", sid, "--state", "disabled")
    done = h.wait_service(sid, "disabled", node, timeout_s=h.s(30) + 5)
    sd = service_status(h, sid)
    assert sd["state"] == "stopped" and sd["node"] == node, sd
    assert "failed_nodes" not in sd, sd
    assert done - asked < h.s(20) + 3, f"{from_state} -> stopped after {done - asked:.1f} s"
    logs = crm_logs(h)
    assert f"service '{sid}': state changed from '{from_state}' to 'stopped'" in logs
    assert f"service '{sid}': state changed from '{from_state}' to 'request_stop'" not in logs
    return done - asked


def cut_until_recovery(h, sid: str, victim: str) -> tuple[float, float, bool]:
    """Power victim off; wait until its service is in `recovery`. Returns (cut time,
    recovery seen, whether the victim was the master)."""
    was_master = h.master() == victim
    cut = time.monotonic()  # the kill comes first in power_cut
    h.lab.power_cut(victim)
    seen = h.wait_service(sid, "recovery", victim, timeout_s=DETECT_S + h.s(260),
                          on=h.live(exclude=(victim,)).name)
    took = seen - cut
    if was_master:  # manager lock expiry (~120 s) then a fresh 60 s fence delay (§10.2)
        assert h.s(170 - 20) < took < DETECT_S + h.s(210 + 20), f"recovery after {took:.1f} s"
    else:  # the victim's agent lock must expire: 121-150 s after the cut (§10.1)
        assert h.s(120 - 10) < took < DETECT_S + h.s(150 + 10), f"recovery after {took:.1f} s"
    return cut, seen, was_master


def stays_in_recovery(h, sid: str, victim: str) -> tuple[int, float]:
    """§4.2 recovery without a node: it stays in recovery, its node unchanged, and the
    master logs the failed recovery once per round. Returns (lines logged, seconds)."""
    survivor = h.live(exclude=(victim,)).name
    master = h.master()
    assert master != victim
    line = f"recovering service '{sid}' from fenced node '{victim}' failed, no recovery node " \
           "found"
    start_n, start = count(h, master, "crm", line), time.monotonic()
    assert start_n >= 1, f"master {master} never logged {line!r}"
    rounds = 8

    def left_recovery() -> str | None:
        current = h.services(on=survivor).get(sid)
        return None if current == (victim, "recovery") else f"{sid}: {current}"

    holds(h, h.s(10 * rounds), f"{sid} in recovery on {victim}", left_recovery,
          interval_s=0.2)
    took = time.monotonic() - start
    logged = count(h, master, "crm", line) - start_n
    # one line per 10 s round, forever (test-recovery1); a slow round or two is allowed
    assert rounds - 2 <= logged <= rounds + 1, f"{logged} lines in {took:.1f} s"
    assert h.node_state(victim) == "unknown"  # fenced: acknowledged, back to unknown
    logs = h.log(master, "crm")
    assert f"fencing: acknowledged - got agent lock for node '{victim}'" in crm_logs(h)
    assert f"recover service '{sid}' from fenced node" not in logs
    return logged, took


# -- 1. max_restart 0, max_relocate 2: every node tried, then error -------------------------
def test_a_guest_that_never_starts_is_tried_on_every_node_then_ends_in_error(ha_lab):
    h = ha_lab("pfail1", "198.18.80", timescale=K)
    sid = "ct:110"
    h.create_ct("node2", 110, *ALWAYS)
    added = time.monotonic()
    h.ha("add", sid, "--max_restart", "0", "--max_relocate", "2")
    failed = h.wait_service(sid, "error", "node3", timeout_s=DETECT_S + h.s(300))
    took = failed - added
    # at least five CRM rounds: start, relocate, start, relocate, start -> error (§4.2);
    # at most a CRM round plus an LRM round for each of them (and idle LRMs' lock)
    assert h.s(50) - 0.2 <= took <= h.s(10 + 5 * 20 + 20) + 5, f"error after {took:.1f} s"
    assert h.answer(110) is None
    sd = service_status(h, sid)
    assert sd["state"] == "error" and sd["node"] == "node3", sd

    master = h.master()
    log = h.log(master, "crm")
    # try-next: node2 failed, then the first untried node by (score, name), then the last
    first = log.index(f"relocate service '{sid}' to node 'node1'")
    second = log.index(f"relocate service '{sid}' to node 'node3'")
    assert first < second
    assert (f"recovery policy for service {sid} failed, entering error state. Failed nodes: "
            "node2, node1, node3") in log
    assert f"service '{sid}': state changed from 'started' to 'error'" in log
    for node in ("node2", "node1", "node3"):
        lrm = h.log(node, "lrm")
        # max_restart 0: exactly one start attempt per node, no local retry (§7.8)
        assert lrm.count(f"starting service {sid}") == 1, (node, lrm)
        assert lrm.count(f"unable to start service {sid} on local node after 0 retries") == 1
        assert "restart policy: retry number" not in lrm
    wait_log(h, "node3", "lrm", f"service {sid} is in an error state and needs manual "
             "intervention", timeout_s=h.s(30) + 2)

    # the API refuses anything but disabled while in error
    with pytest.raises(PvechaosError, match="in error state, must be disabled and fixed first"):
        h.ha("set", sid, "--state", "started")
    assert h.services()[sid] == ("node3", "error")
    took_disable = disable_ends(h, sid, "node3", "error")
    print(f"\nerror after {took:.1f} s; error -> stopped after {took_disable:.1f} s")


# -- 2. max_restart 1 (default), max_relocate 1, two failed starts -------------------------
def test_two_failed_starts_are_retried_once_locally_then_relocated(ha_lab):
    h = ha_lab("pretry", "198.18.81", timescale=K)
    sid = "ct:111"
    h.create_ct("node2", 111, "--description", "pvechaos: fail-start 2")
    added = time.monotonic()
    h.ha("add", sid, "--max_relocate", "1")
    retry = wait_log(h, "node2", "lrm", f"restart policy: retry number 1 for service '{sid}'",
                     timeout_s=DETECT_S + h.s(60))
    gave_up = wait_log(h, "node2", "lrm",
                       f"unable to start service {sid} on local node after 1 retries",
                       timeout_s=h.s(40))
    back = wait_running(h, sid, "node1", timeout_s=h.s(80) + 5)
    # the retry comes one LRM round (10 s) after the first failure, with the same uid
    gap = gave_up - retry
    assert h.s(10) - 0.3 <= gap <= h.s(20) + 1, f"retry {gap:.2f} s after the first failure"
    # relocation: a CRM round for the result, the source's relocate, a CRM round, node1's
    # LRM taking its lock and starting, a CRM round for the result
    moved = back - gave_up
    assert moved <= h.s(5 * 10 + 10) + 3, f"started on node1 {moved:.1f} s after giving up"

    node2, node1 = h.log("node2", "lrm"), h.log("node1", "lrm")
    assert node2.count(f"starting service {sid}") == 2, node2  # max_restart + 1 attempts
    assert node1.count(f"starting service {sid}") == 1, node1
    assert f"service status {sid} started" in node1
    log = crm_logs(h)
    assert f"starting service {sid} on node 'node2' failed, relocating service." in log
    assert f"relocate service '{sid}' to node 'node1'" in log
    assert f"relocation policy successful for '{sid}' on node 'node1', failed nodes: node2" \
        in log
    assert "failed_nodes" not in service_status(h, sid)
    assert "'error'" not in log
    print(f"\nretry gap {gap:.2f} s; started on node1 {back - added:.1f} s after add "
          f"({moved:.1f} s after giving up on node2)")


# -- 3/4. PVE 8 restricted group or PVE 9 strict node-affinity rule, its only node lost ------
def restricted_group(h, sid: str) -> None:
    h.ha("groupadd", "only1", "--nodes", "node1", "--restricted", "1")
    h.ha("add", sid, "--group", "only1")


def strict_rule(h, sid: str) -> None:
    h.ha("add", sid)
    h.ha("rules", "add", "node-affinity", "only1", "--nodes", "node1", "--resources", sid,
         "--strict", "1")


@pytest.mark.parametrize(("name", "prefix", "version", "vmid", "restrict"), [
    ("prestr8", "198.18.82", "8.4.1", 112, restricted_group),
    ("pstrict9", "198.18.83", "9.1.1", 113, strict_rule),
], ids=["pve8-restricted-group", "pve9-strict-node-affinity-rule"])
def test_a_service_bound_to_a_lost_node_stays_in_recovery(ha_lab, name, prefix, version,
                                                         vmid, restrict):
    h = ha_lab(name, prefix, timescale=K, pve_version=version)
    sid = f"ct:{vmid}"
    h.create_ct("node1", vmid)
    restrict(h, sid)
    wait_running(h, sid, "node1", timeout_s=h.s(60) + 10)

    cut, seen, was_master = cut_until_recovery(h, sid, "node1")
    logged, took = stays_in_recovery(h, sid, "node1")
    assert h.answer(vmid) is None
    took_disable = disable_ends(h, sid, "node1", "recovery")
    print(f"\nmaster lost: {was_master}; recovery {seen - cut:.1f} s after the cut; "
          f"{logged} failed recoveries in {took:.1f} s; recovery -> stopped "
          f"{took_disable:.1f} s")


# -- 5. failback with priorities, then nofailback -------------------------------------------
def test_a_preferred_node_back_online_gets_its_service_back_unless_nofailback(ha_lab):
    h = ha_lab("pfback", "198.18.84", timescale=K)
    sid = "ct:114"
    relocate_back = f"relocate service '{sid}' to node 'node1'"
    h.create_ct("node1", 114)
    h.ha("groupadd", "pref1", "--nodes", "node1:2,node2:1", "--nofailback", "0")
    h.ha("add", sid, "--group", "pref1")
    wait_running(h, sid, "node1", timeout_s=h.s(60) + 10)

    # node1 lost: recovered to node2, the best online member (priority 1 over node3's -1)
    cut = time.monotonic()  # the kill comes first in power_cut
    h.lab.power_cut("node1")
    moved = wait_moved(h, sid, "node2", timeout_s=DETECT_S + h.s(260))
    wait_running(h, sid, "node2", timeout_s=h.s(40) + 5)
    assert count(h, "node2", "lrm", f"starting service {sid}") == 1

    # node1 back: failback, a relocation (CT) to node1, started there once node1's LRM got
    # its agent lock, which the master holds since the fence for 120 s (nonstrict5)
    h.lab.power_on("node1")
    online = wait_node_state(h, "node1", "online", timeout_s=h.s(60) + 60)
    relocated = wait_log(h, h.master(), "crm", relocate_back, timeout_s=h.s(30) + 2)
    assert relocated - online < h.s(20) + 2, f"failback {relocated - online:.1f} s after online"
    back = wait_running(h, sid, "node1", timeout_s=h.s(200) + 10)
    # not before the fence lock expired (§6); node1, the lowest node id, judges that expiry
    # from when its pmxcfs first saw the lock, i.e. from its return at the latest (§14.4);
    # then node1's LRM retry (5 s loop, lock tries) and a CRM round for the result
    assert back - moved >= h.s(120) - 1.5, f"started on node1 {back - moved:.1f} s after fence"
    assert back - online <= h.s(121 + 10 + 10 + 10) + 3, \
        f"started on node1 {back - moved:.1f} s after the fence, {back - online:.1f} s " \
        "after node1 was online"
    first = (moved - cut, online - moved, back - online, back - moved)

    # nofailback 1: lost again, recovered to node2, and it stays there when node1 returns
    h.ha("groupset", "pref1", "--nofailback", "1")
    cut2 = time.monotonic()  # the kill comes first in power_cut
    h.lab.power_cut("node1")
    moved2 = wait_moved(h, sid, "node2", timeout_s=DETECT_S + h.s(260))
    wait_running(h, sid, "node2", timeout_s=h.s(40) + 5)
    relocations = crm_logs(h).count(relocate_back)
    h.lab.power_on("node1")
    online2 = wait_node_state(h, "node1", "online", timeout_s=h.s(60) + 60)
    # past the fence lock (node1's LRM may run again) and 8 CRM rounds with node1 online
    watch_until = max(online2 + h.s(80), moved2 + h.s(150))

    def failed_back() -> str | None:
        current, node1 = h.services().get(sid), h.node_state("node1")
        return None if (current, node1) == (("node2", "started"), "online") else \
            f"{sid}: {current}, node1 {node1}"

    holds(h, max(0.0, watch_until - time.monotonic()), f"{sid} stays on node2 (nofailback)",
          failed_back, interval_s=0.25)
    reply = h.answer(114)
    assert reply and reply.split()[1] == "node2", reply
    assert crm_logs(h).count(relocate_back) == relocations
    print(f"\nfailback: recovered {first[0]:.1f} s after the cut, node1 online "
          f"{first[1]:.1f} s later, back on node1 {first[2]:.1f} s after that "
          f"({first[3]:.1f} s after the fence); nofailback: recovered {moved2 - cut2:.1f} s "
          f"after the cut, stayed on node2 {time.monotonic() - online2:.1f} s with node1 "
          "online")


# -- 6. a node holding only an error service is not fenced ---------------------------------
def test_a_node_holding_only_an_error_service_is_not_fenced(ha_lab):
    h = ha_lab("perrfen", "198.18.85", timescale=K)
    sid = "ct:115"
    h.create_ct("node2", 115, *ALWAYS)
    h.ha("add", sid, "--max_restart", "0", "--max_relocate", "0")
    h.wait_service(sid, "error", "node2", timeout_s=DETECT_S + h.s(100))
    assert "Failed nodes: node2" in crm_logs(h)
    assert set(h.services()) == {sid}  # no other HA service, on node2 or anywhere

    was_master = h.master() == "node2"
    cut = time.monotonic()  # the kill comes first in power_cut
    h.lab.power_cut("node2")
    survivor = h.live(exclude=("node2",)).name
    wait_node_state(h, "node2", "unknown",
                    timeout_s=DETECT_S + h.s(150 if was_master else 30))
    # fence delay (60 s) + lock lifetime (120 s) + margin, from the cut or the new master
    states = set()

    def left_error() -> str | None:
        states.add(h.node_state("node2"))
        current = h.services(on=survivor).get(sid)
        return None if current == ("node2", "error") else f"{sid}: {current}"

    holds(h, h.s(60 + 120 + 30), f"{sid} in error on node2", left_error, interval_s=0.25)
    assert states == {"unknown"}, states
    logs = crm_logs(h)
    assert "Try to fence node 'node2'" not in logs
    assert "fencing: acknowledged" not in logs
    assert f"service '{sid}': state changed from 'error'" not in logs
    print(f"\nmaster lost: {was_master}; node2 watched {time.monotonic() - cut:.1f} s "
          "after the cut: never fenced")
