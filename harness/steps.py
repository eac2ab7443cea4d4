"""Report steps: each fault and each wait shows in the report as a step with its start and
end (Allure, when it is there). Only the main thread draws steps: the watchers' threads
have no test to attach them to."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from harness.report.redact import redact


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        import allure
    except ImportError:
        yield
        return
    with allure.step(redact(title)):  # a wait's or a fault's words may quote a command
        yield
