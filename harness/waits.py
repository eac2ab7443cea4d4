"""Bounded waits on conditions. The only way the harness waits for a cluster."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from harness.errors import PvechaosError, WaitTimeout
from harness.report.redact import redact
from harness.steps import step

T = TypeVar("T")


class NotYet:
    """A falsy answer from a condition that says what was seen instead."""

    def __init__(self, seen: object) -> None:
        self.seen = seen

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return str(self.seen)

    __repr__ = __str__


ProgressSink = Callable[[str | None], None]


def _print_progress(line: str | None) -> None:
    if line is not None:
        print(f"  ... {line}", file=sys.stderr, flush=True)


_progress: dict[str, object] = {"sink": _print_progress, "every_s": 10.0}


def progress(line: str | None) -> None:
    """A progress line for a long step that is not a wait on a condition (a fault held
    for its planned time): shown like a wait's; None clears it."""
    sink: ProgressSink = _progress["sink"]  # type: ignore[assignment]
    sink(None if line is None else redact(line))


def progress_every_s() -> float:
    return float(_progress["every_s"])  # type: ignore[arg-type]


def set_progress(sink: ProgressSink | None, every_s: float = 10.0) -> None:
    """Where long waits report: ``sink(line)`` with what is awaited and for how long, every
    ``every_s`` seconds; ``sink(None)`` once the wait is over (a line can be cleared).
    None restores the default: a line on stderr every 10 s."""
    _progress["sink"] = sink or _print_progress
    _progress["every_s"] = every_s if sink else 10.0


def wait_until(what: str, condition: Callable[[], T], *, timeout_s: float,
               interval_s: float = 0.5, progress_every_s: float | None = None) -> T:
    """Call ``condition`` until it returns a truthy value, at most ``timeout_s`` seconds.

    Returns that value. A condition may return ``NotYet(what_it_saw)`` to say why it is
    not satisfied, or raise a PvechaosError (node unreachable, command timed out), which
    counts as "not yet"; either is what the timeout reports as last seen.
    A long wait reports progress (``set_progress``): what it waits for, for how long.
    """
    sink: ProgressSink = _progress["sink"]  # type: ignore[assignment]
    every = progress_every_s or float(_progress["every_s"])  # type: ignore[arg-type]
    start = time.monotonic()
    deadline = start + timeout_s
    last_seen: object = "nothing yet"
    next_progress = start + every
    attempts = 0
    shown = False
    with step(f"wait for {what} (at most {timeout_s:.0f} s)"), _cleared(sink, lambda: shown):
        while True:
            attempts += 1
            try:
                value = condition()
            except PvechaosError as exc:
                value, last_seen = None, exc
            else:
                if value:
                    return value
                last_seen = value
            now = time.monotonic()
            if now >= deadline:
                raise WaitTimeout(what, now - start,
                                  f"{last_seen} (after {attempts} checks)")
            if now >= next_progress:
                sink(redact(f"waiting for {what}: {now - start:.0f} s of {timeout_s:.0f} s"))
                shown = True
                next_progress = now + every
            time.sleep(min(interval_s, max(0.0, deadline - now)))


@contextlib.contextmanager
def _cleared(sink: ProgressSink, shown: Callable[[], bool]) -> Iterator[None]:
    """Clear the progress line once the wait is over, however it ends."""
    try:
        yield
    finally:
        if shown():
            sink(None)


def hold_for(timeline, until_t: float, broken: Callable[[], str | None], what: str, *,
             interval_s: float = 0.5) -> str | None:
    """Watch that nothing happens until ``until_t`` on the timeline's clock: call
    ``broken`` every interval; its first non-None answer ends the watch early and is
    returned; None means the whole period held. For assertions about an absence over a
    period PVE defines (no recovery without quorum, no failback), not a pause."""
    return _hold(timeline.clock.now, until_t, broken, what, interval_s)


def hold_for_s(seconds: float, broken: Callable[[], str | None], what: str, *,
               interval_s: float = 0.5) -> str | None:
    """``hold_for`` over the next ``seconds`` on the monotonic clock, for callers that
    have no timeline (the lab's self-tests): the first non-None answer of ``broken``, or
    None if the whole period held."""
    start = time.monotonic()
    return _hold(lambda: time.monotonic() - start, seconds, broken, what, interval_s)


def _hold(now: Callable[[], float], until_t: float, broken: Callable[[], str | None],
          what: str, interval_s: float) -> str | None:
    timeout = max(0.0, until_t - now())
    sentinel = _Held()

    def check() -> str | _Held | NotYet:
        seen = broken()
        if seen is not None:
            return seen
        return sentinel if now() >= until_t else NotYet("nothing yet")

    outcome = wait_until(what, check, timeout_s=timeout + 30.0, interval_s=interval_s)
    return None if outcome is sentinel else outcome


class _Held:
    def __bool__(self) -> bool:
        return True
