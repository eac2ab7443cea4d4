"""The plugin's composition root names each xdist worker's lab apart, named or not."""

from __future__ import annotations

import pytest

from lab import options
from lab.pytest_plugin import worker_lab_name


@pytest.mark.parametrize(("name", "index", "expected"), [
    (None, None, "main"), ("ci", None, "ci"), (None, 0, "gw0"), (None, 11, "gw11"),
    ("ci", 0, "ci0"), ("ci", 1, "ci1"), ("abcdefgh", 3, "abcdefg3"), ("abcdefgh", 12, "abcdef12"),
])
def test_every_worker_gets_its_own_valid_lab_name(name, index, expected):
    got = worker_lab_name(name, index)
    assert got == expected
    assert options.LAB_NAME.fullmatch(got)


def test_two_workers_never_share_a_name():
    for name in (None, "x", "abcdefgh"):
        names = {worker_lab_name(name, i) for i in range(20)}
        assert len(names) == 20
