"""The embedded pvecm's option parser: PVE's syntax and PVE's error wording."""

from __future__ import annotations

import pytest

from pvemu.cli.options import UsageError, parse

SPEC = {"link0": "str", "nodeid": "int", "force": "bool", "use_ssh": "bool"}
USAGE = "pvecm add <hostname> [OPTIONS]"


@pytest.mark.parametrize("argv", [
    ["198.18.0.11", "--link0", "198.18.0.12"],
    ["198.18.0.11", "-link0", "198.18.0.12"],
    ["198.18.0.11", "--link0=198.18.0.12"],
    ["--link0", "198.18.0.12", "198.18.0.11"],
])
def test_option_spellings(argv):
    assert parse(argv, ["hostname"], SPEC, USAGE) == (
        {"hostname": "198.18.0.11"}, {"link0": "198.18.0.12"})


@pytest.mark.parametrize("argv, expected", [
    (["--use_ssh"], True),
    (["--use_ssh", "1"], True),
    (["--use_ssh", "0"], False),
    (["--use_ssh=0"], False),
])
def test_boolean_flags(argv, expected):
    assert parse(["h", *argv], ["hostname"], SPEC, USAGE)[1] == {"use_ssh": expected}


def test_a_flag_followed_by_a_positional_does_not_swallow_it():
    assert parse(["--force", "h"], ["hostname"], SPEC, USAGE) == ({"hostname": "h"},
                                                                  {"force": True})


def test_integers_are_converted_and_negative_numbers_are_not_options():
    assert parse(["-1"], ["votes"], {}, "u") == ({"votes": "-1"}, {})
    assert parse(["h", "--nodeid", "4"], ["hostname"], SPEC, USAGE)[1] == {"nodeid": 4}


@pytest.mark.parametrize("argv, message", [
    (["h", "--bogus", "1"], "Unknown option: bogus"),
    (["h", "--nodeid", "four"], "nodeid: type check ('integer') failed - got 'four'"),
    (["h", "--link0"], "link0: missing value"),
    ([], "400 not enough arguments"),
    (["h", "extra"], "400 too many arguments"),
])
def test_errors_are_worded_as_pve_words_them(argv, message):
    with pytest.raises(UsageError) as info:
        parse(argv, ["hostname"], SPEC, USAGE)
    assert message in str(info.value)
    assert str(info.value).endswith(USAGE)
