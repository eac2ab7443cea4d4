"""Strict YAML reading: every problem names the file, the field's path and the fix."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from harness.errors import ConfigError
from lab import yamlconfig as y

SOURCE = "test config demo.yaml"


def write(tmp_path: Path, text: str, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(read, data) -> str:
    """The ConfigError text of reading ``data`` with ``read(section)``."""
    with pytest.raises(ConfigError) as info:
        with y.reading(SOURCE) as problems:
            section = y.Section(data, "", problems)
            read(section)
            section.done()
    return str(info.value)


def value_of(read, data):
    """What ``read(section)`` returns for ``data``, which must have no problem."""
    with y.reading(SOURCE) as problems:
        section = y.Section(data, "", problems)
        value = read(section)
        section.done()
    return value


# -- load_yaml ------------------------------------------------------------------------------
def test_load_yaml_returns_the_top_mapping(tmp_path):
    path = write(tmp_path, "name: demo\nnodes: 3\nhosts: [a, b]\n")
    assert y.load_yaml(path, "lab config") == {"name": "demo", "nodes": 3, "hosts": ["a", "b"]}


def test_load_yaml_missing_file_names_it_and_the_fix(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        y.load_yaml(path, "lab config")
    text = str(info.value)
    assert f"lab config {path} does not exist" in text
    assert "fix: give the path of an existing YAML file" in text


def test_load_yaml_on_a_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        y.load_yaml(tmp_path, "inventory")
    text = str(info.value)
    assert f"cannot read inventory {tmp_path}" in text
    assert "fix: check the path and its permissions" in text


def test_load_yaml_unreadable_file_is_a_config_error(tmp_path, monkeypatch):
    path = write(tmp_path, "a: 1\n")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))
    # the tests may run as root, which reads any file: make the read fail instead
    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(ConfigError) as info:
        y.load_yaml(path, "inventory")
    text = str(info.value)
    assert f"cannot read inventory {path}: Permission denied" in text
    assert "fix: check the path and its permissions" in text


def test_load_yaml_binary_file_is_a_config_error(tmp_path):
    path = tmp_path / "image.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage\x89PNG")
    with pytest.raises(ConfigError) as info:
        y.load_yaml(path, "inventory")
    assert f"inventory {path}" in str(info.value)
    assert "fix:" in str(info.value)


def test_load_yaml_invalid_yaml_gives_line_and_column(tmp_path):
    path = write(tmp_path, "name: demo\nnodes:\n  - a\n - b\n")
    with pytest.raises(ConfigError) as info:
        y.load_yaml(path, "lab config")
    text = str(info.value)
    assert f"lab config {path} is not valid YAML at line 4, column 2" in text
    assert "fix: fix the YAML syntax" in text


def test_load_yaml_unclosed_quote_gives_its_line(tmp_path):
    path = write(tmp_path, 'a: 1\nb: "open\n')
    with pytest.raises(ConfigError, match=r"not valid YAML at line 3, column 1"):
        y.load_yaml(path, "lab config")


@pytest.mark.parametrize("text, kind", [
    ("- a\n- b\n", "list"),
    ("just text\n", "text"),
    ("", "nothing"),
])
def test_load_yaml_refuses_anything_but_a_mapping(tmp_path, text, kind):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        y.load_yaml(path, "inventory")
    message = str(info.value)
    assert f"inventory {path} must hold a mapping of keys, not" in message
    assert kind in message
    assert "fix: start the file with `key: value` lines" in message


# -- Section.get -----------------------------------------------------------------------------
def test_get_returns_values_and_defaults():
    data = {"name": "demo", "count": 4, "ratio": 2, "flag": False}

    def read(s):
        return (s.get("name", str), s.get("count", int), s.get("ratio", float),
                s.get("flag", bool), s.get("absent", str, "dflt"))
    assert value_of(read, data) == ("demo", 4, 2.0, False, "dflt")


def test_get_treats_an_empty_value_like_a_missing_one():
    assert value_of(lambda s: s.get("user", str, "root"), {"user": None}) == "root"
    text = problems_of(lambda s: s.get("user", str), {"user": None})
    assert text == f"{SOURCE}: user: is missing\n  fix: add `user:`"


def test_missing_key_names_path_and_fix():
    def read(s):
        s.section("power").get("user", str)
    text = problems_of(read, {"power": {}})
    assert text == f"{SOURCE}: power.user: is missing\n  fix: add `user:`"


def test_missing_key_uses_the_given_fix():
    text = problems_of(lambda s: s.get("url", str, fix="write `url:` as https://BMC"), {})
    assert "url: is missing" in text
    assert "fix: write `url:` as https://BMC" in text


def test_text_where_a_number_is_wanted():
    text = problems_of(lambda s: s.get("port", int), {"port": "twenty-two"})
    assert "port: must be a whole number, not text ('twenty-two')" in text
    assert "fix: write `port:` as a whole number" in text


def test_a_bool_is_not_an_int():
    text = problems_of(lambda s: s.get("port", int), {"port": True})
    assert "port: must be a whole number, not true/false (True)" in text


def test_a_bool_is_not_a_float_either():
    text = problems_of(lambda s: s.get("ratio", float), {"ratio": False})
    assert "ratio: must be a number, not true/false (False)" in text


def test_a_float_is_not_an_int():
    text = problems_of(lambda s: s.get("count", int), {"count": 2.5})
    assert "count: must be a whole number, not a number (2.5)" in text


def test_wrong_type_with_a_default_returns_the_default_and_still_reports():
    seen = []
    with pytest.raises(ConfigError, match="nodes: must be a whole number"):
        with y.reading(SOURCE) as problems:
            seen.append(y.Section({"nodes": "three"}, "", problems).get("nodes", int, 3))
    assert seen == [3]


def test_section_that_is_not_a_mapping():
    def read(s):
        s.section("power").get("user", str, "root")
    text = problems_of(read, {"power": "ipmi"})
    assert "power: must be a mapping of keys, not text" in text
    assert "fix: indent its keys under it" in text


def test_required_section_missing():
    text = problems_of(lambda s: s.section("gateway", required=True), {})
    assert text == f"{SOURCE}: gateway: is missing\n  fix: add a `gateway:` section"


def test_a_missing_required_section_is_one_problem_not_one_per_field():
    def read(s):
        gateway = s.section("gateway", required=True)
        gateway.get("image", str), y.address(gateway, "server"), gateway.done()
        s.get("name", str)
    text = problems_of(read, {})
    assert text.startswith(f"{SOURCE} has 2 problems:")
    assert "gateway: is missing" in text and "name: is missing" in text
    assert "image" not in text and "server" not in text


def test_a_section_that_is_not_a_mapping_is_one_problem():
    def read(s):
        power = s.section("power")
        power.get("user", str), power.get("host", str)
    text = problems_of(read, {"power": "ipmi"})
    assert text.startswith(f"{SOURCE}: power: must be a mapping of keys, not text")
    assert "user" not in text and "host" not in text


def test_sections_give_indexed_paths():
    def read(s):
        return [n.get("name", str) for n in s.sections("nodes")]
    text = problems_of(read, {"nodes": [{"name": "a"}, {"name": 5}]})
    assert "nodes[1].name: must be text, not a number (5)" in text


def test_sections_not_a_list():
    text = problems_of(lambda s: list(s.sections("nodes")), {"nodes": {"name": "a"}})
    assert "nodes: must be a list, not a mapping" in text
    assert "fix: write each entry of `nodes:` on a line starting with '- '" in text


def test_sections_required_and_missing():
    text = problems_of(lambda s: list(s.sections("nodes")), {})
    assert "nodes: is missing" in text and "fix: add a `nodes:` list" in text


def test_nested_path_reaches_list_entries_and_their_sections():
    def read(s):
        for node in s.sections("nodes"):
            power = node.section("power")
            power.get("user", str)
            power.done()
            node.done()
    text = problems_of(read, {"nodes": [{"power": {"user": "a"}}, {"power": {}}]})
    assert text.startswith(f"{SOURCE}: nodes[1].power.user: is missing")


# -- unknown keys ----------------------------------------------------------------------------
def test_unknown_key_suggests_the_nearest_and_lists_the_valid_ones():
    def read(s):
        s.get("iso_version", str, "8.4-1")
        s.get("nodes", int, 3)
    text = problems_of(read, {"iso_verison": "8.4-1"})
    assert "iso_verison: is not a known key" in text
    assert "fix: did you mean `iso_version`? valid keys here: iso_version, nodes" in text


def test_unknown_key_without_a_near_one_lists_the_valid_ones():
    def read(s):
        s.get("nodes", int, 3)
    text = problems_of(read, {"zzzzzz": 1})
    assert "zzzzzz: is not a known key" in text
    assert "did you mean" not in text
    assert "fix: valid keys here: nodes" in text


def test_unknown_key_inside_a_list_entry_names_its_path():
    def read(s):
        for node in s.sections("nodes"):
            node.get("address", str)
            node.get("name", str)
            node.done()
    text = problems_of(read, {"nodes": [{"name": "a", "adress": "10.0.0.1"}]})
    assert "nodes[0].adress: is not a known key" in text
    assert "did you mean `address`?" in text


def test_a_key_that_was_read_is_known_even_when_absent_in_the_data():
    assert value_of(lambda s: s.get("nat", bool, False), {}) is False


# -- several problems --------------------------------------------------------------------------
def test_all_problems_are_reported_together():
    def read(s):
        s.get("name", str)
        s.get("port", int)
        s.get("nat", bool, False)
    text = problems_of(read, {"port": "x", "nat": "yes", "tpyo": 1})
    assert text.startswith(f"{SOURCE} has 4 problems:")
    for part in ("  - name: is missing", "  - port: must be a whole number",
                 "  - nat: must be true or false", "  - tpyo: is not a known key"):
        assert part in text
    assert text.count("      fix: ") == 4


def test_no_problem_raises_nothing():
    with y.reading(SOURCE) as problems:
        pass
    assert problems.items == []


def test_problems_without_a_path():
    problems = y.Problems(SOURCE)
    problems.add("", "the whole file is wrong", "start again")
    with pytest.raises(ConfigError) as info:
        problems.raise_if_any()
    assert str(info.value) == f"{SOURCE}: the whole file is wrong\n  fix: start again"
    assert info.value.hint == "start again"


# -- secret_from_env -----------------------------------------------------------------------
def test_secret_from_env_reads_the_variable():
    value = value_of(lambda s: y.secret_from_env(s, "password_env", environ={"PW": "hunter22"}),
                     {"password_env": "PW"})
    assert value == "hunter22"


def test_secret_from_env_refuses_a_literal_password():
    def read(s):
        y.secret_from_env(s.section("power"), "password_env", environ={})
    text = problems_of(read, {"power": {"password": "hunter22"}})
    assert text.startswith(f"{SOURCE}: power.password: holds a secret in the file")
    assert "fix: put it in an environment variable and write `password_env: THAT_VARIABLE`" \
        in text
    assert "hunter22" not in text


def test_secret_from_env_literal_next_to_the_variable_is_one_problem():
    def read(s):
        y.secret_from_env(s, "password_env", environ={"PW": "hunter22"})
    text = problems_of(read, {"password": "hunter22", "password_env": "PW"})
    assert "password: holds a secret in the file" in text
    assert "is not a known key" not in text


def test_secret_from_env_unset_variable():
    text = problems_of(lambda s: y.secret_from_env(s, "password_env", environ={}),
                       {"password_env": "BMC_PASSWORD"})
    assert "password_env: environment variable BMC_PASSWORD is not set" in text
    assert "fix: export BMC_PASSWORD=... before the run" in text


def test_secret_from_env_empty_variable_counts_as_unset():
    text = problems_of(lambda s: y.secret_from_env(s, "password_env", environ={"PW": ""}),
                       {"password_env": "PW"})
    assert "environment variable PW is not set" in text


def test_secret_from_env_required_and_missing():
    text = problems_of(lambda s: y.secret_from_env(s, "password_env", environ={}), {})
    assert "password_env: is missing" in text
    assert "fix: write `password_env: SOME_VARIABLE` and export the secret there" in text


def test_secret_from_env_optional_and_missing_is_none():
    assert value_of(lambda s: y.secret_from_env(s, "password_env", required=False,
                                                environ={}), {}) is None


def test_secret_from_env_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("PVECHAOS_TEST_SECRET", "from-env")
    assert value_of(lambda s: y.secret_from_env(s, "password_env"),
                    {"password_env": "PVECHAOS_TEST_SECRET"}) == "from-env"


# -- network / address -----------------------------------------------------------------------
RANGE = ipaddress.ip_network("198.18.0.0/15")


def test_network_inside_the_range():
    assert value_of(lambda s: y.network(s, "management", inside=RANGE),
                    {"management": "198.19.4.0/24"}) == ipaddress.ip_network("198.19.4.0/24")


def test_network_default():
    assert value_of(lambda s: y.network(s, "management", "198.19.0.0/24", inside=RANGE),
                    {}) == ipaddress.ip_network("198.19.0.0/24")


def test_network_outside_the_allowed_range():
    text = problems_of(lambda s: y.network(s, "management", inside=RANGE),
                       {"management": "10.0.0.0/24"})
    assert "management: 10.0.0.0/24 lies outside the lab range 198.18.0.0/15" in text
    assert "fix: choose a network inside 198.18.0.0/15" in text


def test_network_larger_than_the_range_is_outside():
    text = problems_of(lambda s: y.network(s, "management", inside=RANGE),
                       {"management": "198.0.0.0/8"})
    assert "lies outside the lab range" in text


@pytest.mark.parametrize("value, message", [
    ("not-a-net", "'not-a-net' is not a network"),
    ("198.19.0.5/24", "'198.19.0.5/24' is not a network (198.19.0.5/24 has host bits set)"),
    ("fd00::/64", "fd00::/64 is not IPv4"),
])
def test_network_bad_values(value, message):
    text = problems_of(lambda s: y.network(s, "corosync", inside=RANGE), {"corosync": value})
    assert f"corosync: {message}" in text
    assert "fix:" in text and "198.19.0.0/24" in text


@pytest.mark.parametrize("value", ["10.0.0.1", "pve1", "pve1.lab.example"])
def test_address_accepts_ipv4_and_host_names(value):
    assert value_of(lambda s: y.address(s, "host"), {"host": value}) == value


@pytest.mark.parametrize("value", ["10.0.0.256", "10.0.0", "1.2.3.4.5", "10..0.1",
                                   "10.20.0.1x", "10.0.0.1/33"])
def test_address_bad_ipv4(value):
    text = problems_of(lambda s: y.address(s, "host"), {"host": value})
    assert f"host: {value!r} is not an IPv4 address" in text
    assert "fix: write four numbers 0-255 separated by dots" in text


@pytest.mark.parametrize("value", ["bad_name", "-leading", "a b", "host.-bad"])
def test_address_neither_address_nor_host_name(value):
    text = problems_of(lambda s: y.address(s, "host"), {"host": value})
    assert f"host: {value!r} is neither an address nor a host name" in text
    assert "fix: write an IPv4 address or a DNS name" in text


def test_address_with_a_prefix_length_says_to_drop_it():
    text = problems_of(lambda s: y.address(s, "host"), {"host": "10.0.0.1/24"})
    assert text == (f"{SOURCE}: host: '10.0.0.1/24' is an address with a prefix length\n"
                    "  fix: write the address alone: 10.0.0.1")


# -- the other typed helpers -------------------------------------------------------------
def test_existing_file(tmp_path):
    key = tmp_path / "id"
    key.write_text("k")
    assert value_of(lambda s: y.existing_file(s, "key"), {"key": str(key)}) == key
    text = problems_of(lambda s: y.existing_file(s, "key"), {"key": str(tmp_path / "nope")})
    assert f"key: {tmp_path / 'nope'} does not exist" in text
    assert "fix: give the path of an existing file" in text
    assert value_of(lambda s: y.existing_file(s, "key", required=False), {}) is None


def test_one_of():
    choices = ("ipmi", "redfish")
    assert value_of(lambda s: y.one_of(s, "driver", choices), {"driver": "ipmi"}) == "ipmi"
    text = problems_of(lambda s: y.one_of(s, "driver", choices), {"driver": "ilo"})
    assert "driver: 'ilo' is not one of ipmi, redfish" in text
    assert "fix: write one of ipmi, redfish" in text


def test_matching():
    def read(s):
        return y.matching(s, "name", r"[a-z]+", "nightly")
    assert value_of(read, {"name": "abc"}) == "abc"
    text = problems_of(read, {"name": "ABC"})
    assert "name: 'ABC' is not valid" in text and "fix: write it like nightly" in text
    text = problems_of(read, {})
    assert "name: is missing" in text and "fix: write `name:` like nightly" in text


def test_positive():
    assert value_of(lambda s: y.positive(s, "vcpus", 2), {}) == 2
    assert value_of(lambda s: y.positive(s, "vcpus", 2), {"vcpus": 4}) == 4
    text = problems_of(lambda s: y.positive(s, "vcpus", 2), {"vcpus": 0})
    assert "vcpus: 0 is too small" in text and "fix: use 1 or more" in text
    text = problems_of(lambda s: y.positive(s, "memory_mib", 4096, at_least=2048),
                       {"memory_mib": 1024})
    assert "memory_mib: 1024 is too small" in text and "fix: use 2048 or more" in text
