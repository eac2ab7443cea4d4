"""Test-only helpers for the HA self-tests; the testbed they run on (``HaLab``, booted by
the ``ha_lab`` fixture) is lab/embedded/ha_testbed.py, shared with bench/."""

from __future__ import annotations

from collections.abc import Callable

from harness.errors import PvechaosError
from harness.waits import hold_for_s
from lab.embedded.ha_testbed import HaLab


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
