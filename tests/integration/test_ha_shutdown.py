"""HA on the embedded lab: a clean poweroff or reboot of a node under each shutdown policy,
and manual maintenance (pve-model.md §7.2, §8, §10.3, §13.6 test-shutdown1, test-reboot1,
test-shutdown-policy2/3, test-crm-maintenance-request1). Timescale 0.1: HA timers are ten
times faster; a cleanly stopped corosync leaves the membership at once, and a power cut is
noticed by corosync's own, unscaled timers (about 8 s)."""

from __future__ import annotations

import json
import time

from harness.errors import PvechaosError
from harness.pve import parse_pvecm_nodes
from harness.waits import NotYet, wait_until
from tests.integration.ha_support import holds

K = 0.1
DETECT_S = 10.0  # corosync drops a dead node after token + consensus, about 8 s, unscaled
VMID = 100
SID = f"ct:{VMID}"
NODES = ("node1", "node2", "node3")


def note(what: str, seconds: float) -> None:
    print(f"  {what}: {seconds:.1f} s")


def guest_on_a_non_master(h) -> tuple[str, str, str]:
    """ct:100 under HA, started and answering on a node that is not the CRM master.
    Returns (its node, the master, where PVE would move it: the alphabetically first other
    node, both others holding no HA service)."""
    h.create_ct("node2", VMID)
    h.ha("add", SID)
    h.wait_answer(VMID, "node2", timeout_s=h.s(60) + 10)
    h.wait_service(SID, "started", "node2", timeout_s=h.s(60))
    master = h.master()
    victim = "node2"
    if master == "node2":  # the node to shut down must not be the master
        victim = "node3"
        h.ha("migrate", SID, victim)
        h.wait_answer(VMID, victim, timeout_s=h.s(60) + 10)
        h.wait_service(SID, "started", victim, timeout_s=h.s(60))
    target = min(n for n in NODES if n != victim)
    return victim, master, target


def members(h, on: str) -> set[str] | None:
    """The corosync membership as `pvecm nodes` on node `on` shows it (None: no answer)."""
    try:
        return {m.name for m in parse_pvecm_nodes(h.node(on).check("pvecm", "nodes"))}
    except PvechaosError:
        return None


def power_command(h, node: str, verb: str) -> float:
    """`poweroff` or `reboot` on the node over SSH (the session may be cut); returns when."""
    start = time.monotonic()
    try:
        h.node(node).run(verb, timeout_s=10)
    except PvechaosError:
        pass
    return start


def wait_silent_then_off(h, victim: str, timeout_s: float) -> tuple[float, float]:
    """After a poweroff: when the guest stopped answering, and when the node was off."""
    silent = None

    def off() -> tuple[float, float] | NotYet:
        nonlocal silent
        if silent is None and h.answer(VMID, timeout_s=0.2) is None:
            silent = time.monotonic()
        if h.lab.is_powered(victim):
            return NotYet(f"{victim} still powered (guest silent: {silent is not None})")
        now = time.monotonic()
        if silent is None and h.answer(VMID, timeout_s=0.2) is None:
            silent = now
        assert silent is not None, "the guest still answers with its node off"
        return silent, now

    return wait_until(f"{victim} off after poweroff", off, timeout_s=timeout_s,
                      interval_s=0.05)


def wait_left(h, victim: str, on: str, timeout_s: float) -> float:
    def left() -> float | NotYet:
        seen = members(h, on)
        return time.monotonic() if seen is not None and victim not in seen else \
            NotYet(f"members: {seen}")

    return wait_until(f"{victim} to leave the membership", left, timeout_s=timeout_s,
                      interval_s=0.1)


WATCH = """end=$(( $(date +%s) + TIMEOUT ))
while [ "$(date +%s)" -lt "$end" ]; do
  out=$(corosync-quorumtool -l) || { sleep 0.05; continue; }
  if echo "$out" | grep -qw NODE; then m=1; else m=0; fi
  echo "$(date +%s.%N) $m $(tr -d '\\n' < /etc/pve/ha/manager_status)"
  [ "$m" = 0 ] && break
  sleep 0.05
done"""


def watch_until_left(h, victim: str, on: str, timeout_s: float) -> list:
    """Sample on node `on`, every 50 ms, whether victim is a corosync member and then the
    manager status, until it is not; [(wall time, member, manager_status or None)]."""
    out = h.node(on).check(WATCH.replace("TIMEOUT", str(int(timeout_s))).replace("NODE", victim),
                           timeout_s=timeout_s + 10)
    samples = []
    for line in out.splitlines():
        stamp, member, text = (line.split(" ", 2) + [""])[:3]
        try:
            status = json.loads(text)
        except ValueError:
            status = None
        samples.append((float(stamp), member == "1", status))
    assert samples and not samples[-1][1], f"{victim} still a member after {timeout_s} s"
    return samples


def agent_lock_held(h, node: str, on: str) -> bool:
    path = f"/etc/pve/priv/lock/ha_agent_{node}_lock"
    return h.node(on).run("test", "-d", path).rc == 0


def assert_clean_stop(h, node: str) -> None:
    """Every unit of an orderly poweroff or reboot ended as it should: none died of an
    exception on the way (watchdog-mux keeps its device until the kernel restarts, so
    the LRM can finish moving its services away)."""
    logs = h.lab.config.lab_dir / "nodes" / node / "log"
    for unit in ("pve-cluster", "watchdog-mux", "pve-ha-lrm", "pve-ha-crm"):
        text = (logs / f"{unit}.log").read_text(errors="replace")
        assert "Traceback" not in text, f"{unit} on {node} died during the shutdown:\n{text}"


def poweroff_is_recovered_elsewhere_without_waiting_for_the_lock(h) -> str:
    """§8.1 conditional/failover poweroff, §10.3, test-shutdown1. Returns the node."""
    victim, master, target = guest_on_a_non_master(h)
    assert agent_lock_held(h, victim, master)
    t0 = power_command(h, victim, "poweroff")
    silent, off = wait_silent_then_off(h, victim, timeout_s=60)
    left = wait_left(h, victim, master, timeout_s=DETECT_S)
    # the LRM stopped the guest itself and gave its agent lock back before exiting
    assert not agent_lock_held(h, victim, master), "the shut-down LRM kept its agent lock"
    lrm = h.log(victim, "lrm")
    assert "shutdown LRM, stop all services" in lrm
    assert_clean_stop(h, victim)
    back = h.wait_answer(VMID, target, timeout_s=h.s(120) + 10)
    note("poweroff -> guest silent", silent - t0)
    note("guest silent -> node off", off - silent)
    note("node off -> left membership (seen)", left - off)
    note("left -> answering on target", back - left)
    note("guest silent -> answering on target", back - silent)
    # fenced only once the 60 s fence delay ran out: counted from the last master round
    # that saw the node a member (one 10 s round before it left at most; 1 s of slack for
    # a slow round and for seeing the node leave late)
    assert back - left > h.s(60 - 10) - 1, f"recovered {back - left:.1f} s after leaving"
    # ... and at once then, the lock being free: 50-60 s, plus the target LRM's start
    assert back - left < h.s(60 + 20) + 1, f"recovered {back - left:.1f} s after leaving"
    # a held lock would only expire 120 s after its last renewal, which was at most one
    # LRM round (10 s) before the guest was stopped
    assert back - silent < h.s(120 - 10), f"recovered {back - silent:.1f} s after the stop"
    h.wait_service(SID, "started", target, timeout_s=h.s(30), on=master)
    crm = h.log(master, "crm")
    assert f"Try to fence node '{victim}'" in crm
    assert f"fencing: acknowledged - got agent lock for node '{victim}'" in crm
    tries = [line for line in crm.splitlines() if line.endswith(f"]: Try to fence node '{victim}'")]
    assert len(tries) == 1, tries  # fenced once
    return victim


def test_conditional_poweroff_stops_the_guest_and_it_is_recovered_without_lock_wait(ha_lab):
    h = ha_lab("soff", "198.18.136", timescale=K)
    victim = poweroff_is_recovered_elsewhere_without_waiting_for_the_lock(h)
    assert "got shutdown request with shutdown policy 'conditional'" in h.log(victim, "lrm")


def test_conditional_reboot_freezes_the_service_and_restarts_it_on_the_same_node(ha_lab):
    h = ha_lab("sreboot", "198.18.137", timescale=K)
    victim, master, _ = guest_on_a_non_master(h)
    before = h.answer(VMID).split()
    boot = h.boot_id(victim)
    t0 = power_command(h, victim, "reboot")
    seen: list[tuple[float, tuple[str, str] | None]] = []
    frozen = silent = None

    def answering_again() -> bool | NotYet:
        nonlocal frozen, silent
        try:
            state = h.services(on=master).get(SID)
        except PvechaosError:
            state = None
        now = time.monotonic()
        seen.append((now, state))
        if state == (victim, "freeze") and frozen is None:
            frozen = now
        reply = h.answer(VMID, timeout_s=0.2)
        if reply is None and silent is None:
            silent = time.monotonic()
        return bool(reply and silent is not None) or NotYet(
            f"{SID} {state}, frozen: {frozen is not None}, silent: {silent is not None}")

    wait_until("the guest to stop and answer again", answering_again,
               timeout_s=max(0.0, t0 + 60 - time.monotonic()), interval_s=0.1)
    back = time.monotonic()
    assert frozen is not None, f"never frozen: {seen}"
    assert silent is not None, "the guest never stopped"
    reply = h.answer(VMID).split()
    assert reply[1] == victim, f"restarted on {reply[1]}, not on {victim}"
    assert reply[2] != before[2], "the guest was not restarted"
    assert h.boot_id(victim) != boot, f"{victim} did not reboot"
    note("reboot -> frozen", frozen - t0)
    note("reboot -> guest silent", silent - t0)
    note("reboot -> answering again", back - t0)
    h.wait_service(SID, "started", victim, timeout_s=h.s(30), on=master)
    elsewhere = [(round(t - t0, 1), s) for t, s in seen if s and s[0] != victim]
    assert elsewhere == [], f"the service left {victim}: {elsewhere}"
    # and it stays: nothing is recovered elsewhere later on
    def left_victim() -> str | None:
        current = h.services(on=master).get(SID)
        return None if current == (victim, "started") else f"{SID}: {current}"

    holds(h, h.s(60 + 30), f"{SID} stays started on {victim}", left_victim)
    crm = h.log(master, "crm")
    assert "Try to fence" not in crm
    assert f"service '{SID}': state changed from 'started' to 'freeze'" in crm
    assert f"service '{SID}': state changed from 'freeze' to 'started'" in crm


def never_recovered(h, victim: str, master: str, state: str, seconds: float) -> None:
    """For `seconds`: the service stays on victim in state, the guest silent, no fencing."""
    def recovered() -> str | None:
        current = h.services(on=master).get(SID)
        if current != (victim, state):
            return f"{SID}: {current}"
        reply = h.answer(VMID, timeout_s=0.2)
        return None if reply is None else f"the guest runs somewhere: {reply}"

    holds(h, seconds, f"{SID} {state} on {victim}, the guest silent", recovered,
          interval_s=0.3)
    fences = [line for line in h.log(master, "crm").splitlines() if "Try to fence" in line]
    assert fences == []


def test_freeze_policy_poweroff_keeps_the_service_frozen_and_never_recovers_it(ha_lab):
    h = ha_lab("sfreeze", "198.18.72", timescale=K)
    h.write("/etc/pve/datacenter.cfg", "ha: shutdown_policy=freeze\n")
    victim, master, _ = guest_on_a_non_master(h)
    t0 = power_command(h, victim, "poweroff")
    frozen = h.wait_service(SID, "freeze", victim, timeout_s=30, on=master)
    silent, off = wait_silent_then_off(h, victim, timeout_s=60)
    left = wait_left(h, victim, master, timeout_s=DETECT_S)
    note("poweroff -> frozen", frozen - t0)
    note("poweroff -> node off", off - t0)
    assert "shutdown LRM, stop and freeze all services" in h.log(victim, "lrm")
    # past the fence delay and a whole lock lifetime, with margin: still frozen there
    never_recovered(h, victim, master, "freeze", h.s(60 + 120 + 30))
    assert h.node_state(victim) == "unknown"
    note("left membership -> still frozen", time.monotonic() - left)


def test_failover_policy_poweroff_recovers_the_guest_elsewhere(ha_lab):
    h = ha_lab("sfail", "198.18.73", timescale=K)
    h.write("/etc/pve/datacenter.cfg", "ha: shutdown_policy=failover\n")
    victim = poweroff_is_recovered_elsewhere_without_waiting_for_the_lock(h)
    assert "got shutdown request with shutdown policy 'failover'" in h.log(victim, "lrm")


def test_migrate_policy_reboot_moves_the_service_away_and_back(ha_lab):
    h = ha_lab("smigr", "198.18.74", timescale=K)
    h.write("/etc/pve/datacenter.cfg", "ha: shutdown_policy=migrate\n")
    victim, master, target = guest_on_a_non_master(h)
    boot = h.boot_id(victim)
    t0 = power_command(h, victim, "reboot")
    wall0 = time.time()
    samples = watch_until_left(h, victim, master, timeout_s=60)

    def first(test) -> int:
        return next((i for i, (_, _, st) in enumerate(samples) if st and test(st)), -1)

    maint = first(lambda st: st["node_status"].get(victim) == "maintenance")
    relocated = first(lambda st: st["service_status"].get(SID, {}).get("node") == target)
    left = len(samples) - 1  # the watch ends with the first sample without the node
    seen = [(round(t - wall0, 2), m, st and st["node_status"].get(victim),
             st and st["service_status"].get(SID))
            for t, m, st in samples]
    assert maint >= 0, f"{victim} never in maintenance: {seen}"
    assert relocated >= 0, f"the service was not moved to {target} before {victim} left: {seen}"
    note("reboot -> node maintenance", samples[maint][0] - wall0)
    note("reboot -> service on target", samples[relocated][0] - wall0)
    note("reboot -> left membership", samples[left][0] - wall0)
    # the LRM waited (in maintenance) until its service was moved away before it exited
    # and let the node go down: a membership sample taken after the move still has it
    assert maint <= relocated and relocated + 1 < left, f"{seen}"
    moved = h.wait_answer(VMID, target, timeout_s=h.s(30) + 5)
    note("reboot -> answering on target", moved - t0)
    up = wait_joined(h, victim, master, timeout_s=60)
    note("reboot -> member again", up - t0)
    home = h.wait_answer(VMID, victim, timeout_s=h.s(60) + 15)
    note("member again -> answering on its node", home - up)
    crm = h.log(master, "crm")
    assert f"service '{SID}': state changed from 'started' to 'relocate'" in crm
    assert f"relocate service '{SID}' to node '{target}'" in crm
    assert h.boot_id(victim) != boot
    assert_clean_stop(h, victim)
    h.wait_service(SID, "started", victim, timeout_s=h.s(30), on=master)
    crm = h.log(master, "crm")
    assert (f"moving service '{SID}' back to '{victim}', node came back from maintenance."
            in crm)
    assert "Try to fence" not in crm
    assert h.node_state(victim) == "online"


def test_manual_maintenance_node_powered_off_is_not_fenced(ha_lab):
    h = ha_lab("smaint", "198.18.75", timescale=K)
    victim, master, target = guest_on_a_non_master(h)
    t0 = time.monotonic()
    h.ha("crm-command", "node-maintenance", "enable", victim, on=master)
    h.wait_service(SID, "started", target, timeout_s=h.s(60), on=master)
    moved = h.wait_answer(VMID, target, timeout_s=h.s(30) + 5)
    assert h.node_state(victim) == "maintenance"
    note("enable -> answering on target", moved - t0)
    cut = time.monotonic()  # the kill comes first in power_cut
    h.lab.power_cut(victim)
    # no fencing: the node stays in maintenance, its last LRM mode being maintenance
    def fenced_or_moved() -> str | None:
        node_state = h.node_state(victim)
        if node_state != "maintenance":
            return f"{victim} {node_state}"
        current = h.services(on=master).get(SID)
        return None if current == (target, "started") else f"{SID}: {current}"

    holds(h, max(0.0, cut + DETECT_S + h.s(60 + 120 + 30) - time.monotonic()),
          f"{victim} in maintenance, {SID} started on {target}", fenced_or_moved)
    assert members(h, master) == set(NODES) - {victim}
    fences = [line for line in h.log(master, "crm").splitlines()
              if f"Try to fence node '{victim}'" in line]
    assert fences == []
    h.lab.power_on(victim)
    on = time.monotonic()
    wait_joined(h, victim, master, timeout_s=60)
    reply = h.answer(VMID, timeout_s=0.5)
    assert reply and reply.split()[1] == target, f"guest after power on: {reply}"
    h.ha("crm-command", "node-maintenance", "disable", victim, on=master)
    disabled = time.monotonic()
    home = h.wait_answer(VMID, victim, timeout_s=h.s(60) + 15)
    note("power on -> disable", disabled - on)
    note("disable -> answering on its node", home - disabled)
    assert h.node_state(victim) == "online"
    h.wait_service(SID, "started", victim, timeout_s=h.s(30), on=master)
    assert (f"moving service '{SID}' back to '{victim}', node came back from maintenance."
            in h.log(master, "crm"))


def wait_joined(h, victim: str, on: str, timeout_s: float) -> float:
    def joined() -> float | NotYet:
        seen = members(h, on)
        return time.monotonic() if seen is not None and victim in seen else \
            NotYet(f"members: {seen}")

    return wait_until(f"{victim} to be a member again after power on", joined,
                      timeout_s=timeout_s, interval_s=0.2)
