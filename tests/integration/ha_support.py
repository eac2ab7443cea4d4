"""Test-only helpers for the HA self-tests; the testbed they run on (``HaLab``, booted by
the ``ha_lab`` fixture) is lab/embedded/ha_testbed.py, shared with bench/."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from harness.clock import Clock
from harness.errors import PvechaosError
from harness.faults import FaultInjector
from harness.timeline import Timeline
from harness.timescale import Timescale
from harness.waits import hold_for_s
from lab.embedded.ha_testbed import HaLab, boot_ha_lab
from tests.integration.conftest import leftovers


def holds(h: HaLab, seconds: float, what: str, broken: Callable[[], str | None], *,
          interval_s: float = 0.5) -> None:
    """Assert that for ``seconds`` nothing breaks ``what``: ``broken()`` is asked every
    interval and says what it saw go wrong (None: nothing). A command that fails while
    watching breaks it too, as an unseen moment is not a held one."""
    def strict() -> str | None:
        try:
            return broken()
        except PvechaosError as exc:
            return f"could not look: {exc}"

    seen = hold_for_s(seconds, strict, what, interval_s=interval_s)
    assert seen is None, f"{what}: {seen}\n{h.diagnosis()}"


@contextlib.contextmanager
def guest_lab(name: str, prefix: str, timescale: float) -> Iterator[HaLab]:
    """An HA lab with CT 100 under HA, started on node1; closed afterwards, leaving
    nothing behind."""
    lab = boot_ha_lab(name, prefix, timescale=Timescale(timescale))
    try:
        lab.create_ct("node1", 100)
        lab.ha("add", "ct:100")
        lab.wait_service("ct:100", "started", "node1", timeout_s=lab.s(60) + 10)
        yield lab
    finally:
        lab.close()
        assert leftovers(lab.lab.config) == []


@contextlib.contextmanager
def fault_injector(h: HaLab) -> Iterator[FaultInjector]:
    """The harness's fault verbs on the lab; every fault undone afterwards."""
    injector = FaultInjector(h.lab, Timeline(Clock()), h.cluster)
    yield injector
    assert injector.undo_all() == []
