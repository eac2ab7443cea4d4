"""The link switch's contract, held by both implementations: the real one
(``LibvirtLinks``: a live ``updateDeviceFlags`` of the NIC) and the twin the test-driver
labs use (``RecordedLinks``). libvirt's test driver has no live device updates, so the
real one runs here against ``LiveDevices``: a test-driver domain given the qemu driver's
documented behaviour (real-lab.md 3.3: the device is matched by MAC, only the live state
changes, it lasts while the QEMU process does, an inactive domain is refused)."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from harness.errors import LabError
from lab.libvirt.host import LibvirtLinks, RecordedLinks
from lab.libvirt.lab import LibvirtLab
from tests.unit.libvirt_lab.twins import RecordingAccess

libvirt = pytest.importorskip("libvirt")


class LiveDevices:
    """A test-driver domain whose NICs take live link changes, as the qemu driver's do."""

    def __init__(self, host, name: str) -> None:
        self._host, self._name = host, name
        self._live: tuple[int, ET.Element] | None = None  # (QEMU process = domain ID, XML)

    @property
    def _dom(self):  # looked up afresh: a handle keeps the ID it was looked up with
        return self._host.domain(self._name)

    def __getattr__(self, name):
        return getattr(self._dom, name)

    def _live_xml(self) -> ET.Element:
        dom = self._dom
        if self._live is None or self._live[0] != dom.ID():  # a new QEMU process
            self._live = (dom.ID(), ET.fromstring(dom.XMLDesc(0)))
        return self._live[1]

    def XMLDesc(self, flags: int = 0) -> str:  # noqa: N802 (libvirt's name)
        if not self._dom.isActive():
            return self._dom.XMLDesc(flags)
        return ET.tostring(self._live_xml(), encoding="unicode")

    def updateDeviceFlags(self, text: str, flags: int) -> int:  # noqa: N802
        if not self._dom.isActive():
            raise libvirt.libvirtError("Requested operation is not valid: domain is not "
                                       "running")
        if not flags & libvirt.VIR_DOMAIN_AFFECT_LIVE:
            raise libvirt.libvirtError("this twin only takes live updates")
        wanted = ET.fromstring(text)
        mac = wanted.find("mac").get("address").lower()
        for iface in self._live_xml().iter("interface"):
            if iface.find("mac").get("address").lower() == mac:
                if iface.find("source").attrib != wanted.find("source").attrib:
                    raise libvirt.libvirtError("Operation not supported: cannot modify "
                                               "network device source")
                link = iface.find("link")
                if link is not None:
                    iface.remove(link)
                iface.append(copy.deepcopy(wanted.find("link")))
                return 0
        raise libvirt.libvirtError(f"device not found: no device matching MAC address "
                                   f"{mac} found")


@pytest.fixture(params=["LibvirtLinks on live devices", "RecordedLinks"])
def switch(request, config, host, golden):
    """(lab, links, node2's domain) with the lab started: the lab's verbs and the test's
    questions reach node2 through the same domain object."""
    real = request.param.startswith("LibvirtLinks")
    links = LibvirtLinks(host) if real else RecordedLinks()
    lab = LibvirtLab(config, host=host, links=links, access=RecordingAccess())
    lab.start()
    if real:
        dom = LiveDevices(host, "pvechaos-t-node2")
        lab._node = lambda node: dom if node == "node2" else host.domain(
            lab.plan.machine(node).domain)
    else:
        dom = host.domain("pvechaos-t-node2")
    yield lab, links, dom
    lab.close()


def nics(lab: LibvirtLab):
    machine = lab.plan.machine("node2")
    return machine.corosync, machine.management


def test_every_nic_starts_up(switch):
    lab, links, dom = switch
    corosync, management = nics(lab)
    assert links.link_is_up(dom, corosync) and links.link_is_up(dom, management)


def test_down_and_up_switch_only_that_nic(switch):
    lab, links, dom = switch
    corosync, management = nics(lab)
    lab.link_down("node2")
    assert (links.link_is_up(dom, corosync), links.link_is_up(dom, management)) == \
        (False, True)
    lab.link_up("node2")
    assert links.link_is_up(dom, corosync) is True


def test_a_cut_link_stays_cut_across_a_reset(switch):
    """The reset button restarts the guest in the same QEMU process (a watchdog reset
    does the same): the link stays down until the harness sets it up."""
    lab, links, dom = switch
    lab.link_down("node2")
    lab.reset("node2")
    assert links.link_is_up(dom, nics(lab)[0]) is False


def test_a_cut_link_does_not_outlive_a_power_cycle(switch):
    """A live change is lost with the QEMU process; the next boot reads the definition."""
    lab, links, dom = switch
    lab.link_down("node2")
    lab.power_cut("node2")
    assert links.link_is_up(dom, nics(lab)[0]) is True
    lab.power_on("node2")
    assert links.link_is_up(dom, nics(lab)[0]) is True


def test_a_vm_that_is_off_is_refused_naming_it(switch):
    lab, links, dom = switch
    lab.power_cut("node2")
    with pytest.raises(LabError, match=r"link down of .* on pvechaos-t-node2 failed.*"
                                       r"domain is not running"):
        lab.link_down("node2")
