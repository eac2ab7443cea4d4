"""Helpers for the unit tests: recorded command outputs from tests/data/.

Every data file starts with one `# recorded: ...` line saying where the output came from;
`load` strips it and returns the output exactly as the command printed it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = "# recorded:"


def read_recorded(name: str) -> tuple[str, str]:
    """(the `# recorded:` line, the output) of tests/data/<name>."""
    header, _, text = (DATA / name).read_text().partition("\n")
    if not header.startswith(RECORDED):
        raise AssertionError(f"tests/data/{name}: first line must start with {RECORDED!r}")
    return header, text


@pytest.fixture
def load() -> Callable[[str], str]:
    """load("pve8/pvecm_status_quorate.txt") -> the recorded output, header stripped."""
    return lambda name: read_recorded(name)[1]


@pytest.fixture
def exit_code() -> Callable[[str], int]:
    """The exit code the `# recorded:` line gives for tests/data/<name>."""
    def code(name: str) -> int:
        m = re.search(r"exit code (\d+)", read_recorded(name)[0])
        if not m:
            raise AssertionError(f"tests/data/{name}: the recorded line names no exit code")
        return int(m.group(1))
    return code
