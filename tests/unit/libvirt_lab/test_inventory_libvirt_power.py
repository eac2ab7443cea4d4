"""An inventory node that is a libvirt domain: its power driver on the test driver."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from lab.inventory.lab import LibvirtPower

DOMAIN = """<domain type='kvm'><name>pve3</name><memory unit='MiB'>4096</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os></domain>"""


@pytest.fixture
def power(host):
    host.conn.defineXML(DOMAIN).create()
    return LibvirtPower("pve3", host.uri, "pve3", host=host)


def test_the_switch_follows_the_domain(power, host):
    assert power.is_on() is True
    power.power_off()
    assert host.domain("pve3").state() == [5, 2]  # shut off, destroyed: no shutdown
    power.power_on()
    power.reset()
    assert power.is_on() is True
    power.shutdown()
    assert host.state("pve3") == "shutoff"
    assert "libvirt domain pve3 on test://" in power.describe()


def test_a_domain_that_is_not_there_is_named_with_the_fix(power, host):
    wrong = LibvirtPower("pve9", host.uri, "pve9", host=host)
    with pytest.raises(ConfigError, match="libvirt domain pve9 is not defined") as info:
        wrong.check()
    assert "fix power.domain of pve9 in the inventory (domains there: pve3)" in str(info.value)
