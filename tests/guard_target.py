"""A teardown for lab/run_guardian.py's tests (tests/unit/test_run_guardian.py): each
call appends its name to a file, so the order the guardian ran them in can be read."""

from __future__ import annotations

from pathlib import Path


def note(*, path: str, name: str) -> None:
    with Path(path).open("a") as out:
        out.write(f"{name}\n")


def fail(*, message: str) -> None:
    raise RuntimeError(message)
