"""harness.pve.version: `pveversion`."""

from __future__ import annotations

import pytest

from harness.errors import ParseError
from harness.pve import parse_pveversion
from harness.pve.version import PveVersion


def test_pve8(load):
    v = parse_pveversion(load("pve8/pveversion.txt"))
    assert (v.manager, v.kernel, v.major) == ("8.4.1", "6.8.12-9-pve", 8)


def test_pve9_from_the_lab(load):
    v = parse_pveversion(load("pve9/pveversion.txt"))
    assert (v.manager, v.kernel, v.major) == ("9.1.1", "6.14.8-2-pve", 9)


def test_pve9_0_3(load):
    v = parse_pveversion(load("pve9/pveversion_9.0.3.txt"))
    assert (v.manager, v.kernel, v.major) == ("9.0.3", "6.14.8-2-pve", 9)


def test_surrounding_whitespace_is_ignored(load):
    text = load("pve8/pveversion.txt")
    assert parse_pveversion("\n  " + text + "\n\n") == parse_pveversion(text)


@pytest.mark.parametrize("text", [
    "",
    "bash: pveversion: command not found",
    "proxmox-ve: 8.4.0 (running kernel: 6.8.12-9-pve)",  # the first line of `pveversion -v`
    "pve-manager/8.4.1/2a5fa54a8503f96d",  # no kernel
])
def test_other_output_raises_parse_error(text):
    with pytest.raises(ParseError) as info:
        parse_pveversion(text)
    assert "pveversion" in str(info.value)
    assert (text or "(empty)") in str(info.value)


@pytest.mark.parametrize(("older", "newer"), [
    ("8.4.1", "9.1.1"), ("8.4.1", "8.4.10"), ("9.0.0~16", "9.0.1"), ("8.4-1", "8.4.1"),
    ("9.0.3", "9.1.1")])
def test_versions_order_by_their_release_numbers(older, newer):
    def v(manager):
        return PveVersion(manager, "6.8.12-9-pve")
    assert v(older).key < v(newer).key
    assert v("9.0.0~16").key == (9, 0, 0)
