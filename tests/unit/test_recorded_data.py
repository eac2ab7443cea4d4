"""Every recorded output says where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = "# recorded:"

FILES = sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file())


def test_there_are_recordings_for_both_major_versions():
    assert any(f.startswith("pve8/") for f in FILES)
    assert any(f.startswith("pve9/") for f in FILES)


@pytest.mark.parametrize("name", FILES)
def test_first_line_says_where_the_output_came_from(name):
    header = (DATA / name).read_text().splitlines()[0]
    assert header.startswith(RECORDED)
    assert len(header) > len(RECORDED) + 10


@pytest.mark.parametrize("name", FILES)
def test_loader_strips_exactly_the_recorded_line(load, name):
    raw = (DATA / name).read_text()
    assert load(name) == raw.split("\n", 1)[1]
