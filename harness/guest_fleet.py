"""Several HA test guests at once, each watched from outside and checked for safety.

The one test guest (harness/fixtures.py ``guest``) is what most stories need. A story that
moves a whole node's load (a rolling upgrade, maintenance of every node in turn) needs a
guest on every node: ``GuestFleet`` is that set, made with the same commands as the one
guest (harness/ha_guest.py), each with its own probe and its own safety invariants.

A test that uses the ``fleet`` fixture fails when an invariant of any of its guests broke
while it ran, as one that uses ``invariants`` does (harness/plugin.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.cluster import Cluster
from harness.errors import PvechaosError
from harness.ha_guest import HaGuest
from harness.invariants import InvariantChecker, Violation
from harness.lab_api import Lab
from harness.probes import Probe
from harness.pve.ha_status import HaStatus
from harness.timeline import Timeline
from harness.waits import NotYet, wait_until


@dataclass
class Watched:
    """One guest of the fleet with its probe and its invariants."""

    guest: HaGuest
    probe: Probe
    invariants: InvariantChecker

    @property
    def sid(self) -> str:
        return self.guest.sid


class GuestFleet:
    """The HA guests with these VMIDs (not created yet: ``set_up``), probed and checked
    from ``start`` to ``stop``."""

    def __init__(self, lab: Lab, cluster: Cluster, timeline: Timeline, vmids: Iterable[int],
                 *, slack_s: float, interval_s: float = 1.0) -> None:
        self.cluster = cluster
        storage = lab.shared_storage()
        self.members: list[Watched] = []
        for vmid in vmids:
            guest = HaGuest(cluster, lab.guest_recipe(vmid), storage)
            r = guest.recipe
            probe = Probe(guest.sid, r.address, r.port, timeline, sid=guest.sid)
            checker = InvariantChecker(timeline, guest.sid, read_log=guest.read_log,
                                       acknowledged=probe.acknowledged, slack_s=slack_s,
                                       interval_s=interval_s)
            self.members.append(Watched(guest, probe, checker))
        if not self.members:
            raise PvechaosError("a guest fleet needs at least one VMID")

    def __repr__(self) -> str:
        return f"GuestFleet({', '.join(self.sids)})"

    @property
    def sids(self) -> tuple[str, ...]:
        return tuple(m.sid for m in self.members)

    def member(self, sid: str) -> Watched:
        for m in self.members:
            if m.sid == sid:
                return m
        raise KeyError(f"{sid} is not in {self!r}")

    # -- lifetime ------------------------------------------------------------------------
    def start(self) -> GuestFleet:
        for m in self.members:
            m.probe.start()
            m.invariants.start()
        return self

    def stop(self) -> None:
        for m in self.members:
            m.probe.stop()
        for m in self.members:
            m.invariants.stop()

    def __enter__(self) -> GuestFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- setup -----------------------------------------------------------------------
    def set_up(self, placement: Mapping[str, str], *, timeout_s: float,
               **options: object) -> None:
        """Create each guest (sid -> node) on shared storage and put it under HA with
        ``options``; then wait (bounded) until every one is started where it was made."""
        for sid, node in placement.items():
            self.member(sid).guest.set_up(node, timeout_s=timeout_s, state=None, **options)
        self.wait_placements({sid: (node, "started") for sid, node in placement.items()},
                             timeout_s=timeout_s)

    # -- observing -------------------------------------------------------------------
    def ha_status(self) -> HaStatus:
        return self.members[0].guest.ha_status()

    def placements(self) -> dict[str, tuple[str | None, str] | None]:
        """sid -> (node, state) as one `ha-manager status` shows them (None: not listed)."""
        services = self.ha_status().services
        return {sid: (None if sid not in services
                      else (services[sid].node, services[sid].state)) for sid in self.sids}

    def on(self, node: str) -> tuple[str, ...]:
        """The fleet's services `ha-manager status` locates on ``node``, in any state."""
        return tuple(sid for sid, p in self.placements().items() if p and p[0] == node)

    def wait_placements(self, wanted: Mapping[str, tuple[str, str]], *, what: str = "",
                        timeout_s: float) -> dict[str, tuple[str | None, str] | None]:
        """Wait (bounded) until each sid is at its (node, state)."""
        def there() -> dict | NotYet:
            now = self.placements()
            off = {sid: now[sid] for sid, want in wanted.items() if now[sid] != want}
            return now if not off else NotYet(off)
        desc = what or ", ".join(f"{sid} {s} on {n}" for sid, (n, s) in wanted.items())
        return wait_until(desc, there, timeout_s=timeout_s)

    def wait_serving(self, *, timeout_s: float) -> None:
        """Wait (bounded) until every guest answers its probe."""
        def serving() -> bool | NotYet:
            silent = [m.sid for m in self.members if m.probe.current is None]
            return not silent or NotYet(f"not answering: {', '.join(silent)}")
        wait_until("every guest of the fleet to answer", serving, timeout_s=timeout_s)

    def downtime(self, after: float, before: float | None = None) -> dict[str, float]:
        """sid -> seconds it did not answer in [after, before]."""
        return {m.sid: m.probe.downtime(after, before) for m in self.members}

    # -- the invariants, as harness/plugin.py asks every step ------------------------
    def check(self) -> list[Violation]:
        return [v for m in self.members for v in m.invariants.check()]

    def take_unreported(self) -> list[Violation]:
        return [v for m in self.members for v in m.invariants.take_unreported()]
