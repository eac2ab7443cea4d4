"""Guest config files in PVE's format (pvemu.guest_config), no root."""

from __future__ import annotations

import pytest

from pvemu.guest_config import GuestConfig, GuestError, parse_sid, property_string


def test_description_lines_and_snapshots_survive_a_round_trip():
    text = ("#pvechaos: fail-start 2\n#pvechaos: port 9000\narch: amd64\nhostname: a\n"
            "\n[snap1]\narch: amd64\n")
    conf = GuestConfig.parse(text)
    assert conf.knobs() == {"fail-start": "2", "port": "9000"}
    assert conf.values == {"arch": "amd64", "hostname": "a"}
    assert conf.render() == text


def test_sids_and_property_strings_parse_as_pve_parses_them():
    assert parse_sid("ct:100") == ("ct", 100)
    with pytest.raises(GuestError, match="^unable to parse service id 'ct:99'$"):
        parse_sid("ct:99")
    assert property_string("virtio=BC:24:11:00:00:01,bridge=vmbr0") == {
        "virtio": "BC:24:11:00:00:01", "bridge": "vmbr0"}
    assert property_string("shared:1,size=1G") == {"": "shared:1", "size": "1G"}
