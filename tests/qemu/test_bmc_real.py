"""The inventory lab's power drivers against real BMC servers: sushy-tools' Redfish
emulator (HTTPS, self-signed certificate, basic auth) and virtualbmc (IPMI over LAN, one
BMC per UDP port), both serving real libvirt domains of the system libvirtd.

The drivers are the real classes, built through the inventory loader from a YAML file this
module writes (passwords via ``password_env``); what happened is checked through libvirt,
not through the BMC that did it. The domains are bare (``pvechaos-bmcdev-*``: no disk,
SeaBIOS finds nothing to boot and waits): enough for power off, on and reset. SeaBIOS
prints its banner on the serial console (a file here) at every boot, so the number of
banners counts the boots a reset must add. A graceful shutdown needs a guest that answers
the ACPI power button: that test waits for the qemu bed's image (lab/qemu_bed/image.py).

Figures (time per verb per protocol, until libvirt shows the result) are printed (``-s``).
Skipped only when libvirt or qemu cannot run here; a missing BMC package is a failure that
names the fix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError, InterlockError, LabError
from harness.waits import NotYet, wait_until
from lab.inventory import config as inventory_config
from lab.inventory.lab import InventoryLab, driver_for
from lab.inventory.power_drivers import IpmiPower, RedfishPower
from lab.qemu_bed.bmc import BmcServers

pytestmark = pytest.mark.qemu

URI = "qemu:///system"
PREFIX = "pvechaos-bmcdev-"
DOMAINS = tuple(f"{PREFIX}{i}" for i in (1, 2, 3))
NODES = ("pve1", "pve2", "pve3")
CLUSTER = "bmclab"
PASSWORD_ENV = "PVECHAOS_TEST_BMC_PASSWORD"
WRONG_ENV = "PVECHAOS_TEST_BMC_WRONG_PASSWORD"
BANNER = "SeaBIOS (version"
FIGURES: dict[tuple[str, str], float] = {}

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
      <bios useserial='yes' rebootTimeout='-1'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='{serial}' append='on'/></serial>
  </devices>
</domain>
"""


def _libvirt_or_skip():
    try:
        import libvirt
    except ImportError:
        pytest.skip("libvirt-python is not installed (pip install -e '.[libvirt]')")
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError as e:
        pytest.skip(f"no libvirtd at {URI} ({e}); start it: virtlogd -d; libvirtd -d")
    return libvirt, conn


class Bed:
    """Three bare domains on the system libvirtd, their serial logs, and the BMCs."""

    def __init__(self, libvirt, conn, workdir: Path) -> None:
        self.libvirt, self.conn, self.workdir = libvirt, conn, workdir
        self.bmcs: BmcServers | None = None

    def serial(self, domain: str) -> Path:
        return self.workdir / f"{domain}.serial"

    def boots(self, domain: str) -> int:
        try:
            return self.serial(domain).read_text(errors="replace").count(BANNER)
        except FileNotFoundError:
            return 0

    def dom(self, domain: str):
        return self.conn.lookupByName(domain)

    def running(self, domain: str) -> bool:
        return self.dom(domain).state()[0] == self.libvirt.VIR_DOMAIN_RUNNING

    def shut_off(self, domain: str) -> bool:
        return self.dom(domain).state()[0] == self.libvirt.VIR_DOMAIN_SHUTOFF

    def remove(self, domain: str) -> None:
        with contextlib.suppress(self.libvirt.libvirtError):
            dom = self.conn.lookupByName(domain)
            if dom.isActive():
                dom.destroy()
            dom.undefine()

    def define(self, domain: str) -> None:
        self.conn.defineXML(DOMAIN_XML.format(name=domain, serial=self.serial(domain)))

    def ensure_running(self, domain: str) -> None:
        """Running, and SeaBIOS has printed at least one banner (it booted)."""
        if not self.running(domain):
            self.dom(domain).create()
        wait_until(f"{domain} to boot", lambda: self.running(domain) and self.boots(domain),
                   timeout_s=60)


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    libvirt, conn = _libvirt_or_skip()
    workdir = Path(tempfile.mkdtemp(prefix=PREFIX))
    workdir.chmod(0o755)  # qemu may run as its own user and writes the serial log here
    bed = Bed(libvirt, conn, workdir)
    stale = [d.name() for d in conn.listAllDomains() if d.name().startswith(PREFIX)]
    try:
        for name in stale:  # a killed earlier run of this module
            bed.remove(name)
        for name in DOMAINS:
            bed.define(name)
        try:
            bed.dom(DOMAINS[0]).create()
        except libvirt.libvirtError as e:
            pytest.skip(f"qemu cannot start a domain here: {e}")
        for name in DOMAINS:
            bed.ensure_running(name)
        with pytest.MonkeyPatch.context() as env:
            env.setenv(PASSWORD_ENV, secrets.token_urlsafe(12))
            env.setenv(WRONG_ENV, "not-" + secrets.token_urlsafe(8))
            with BmcServers(DOMAINS, user="admin", password_env=PASSWORD_ENV,
                            address="127.0.0.1", uri=URI) as bmcs:
                bed.bmcs = bmcs
                yield bed
    finally:
        for name in DOMAINS:
            bed.remove(name)
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)
        _print_figures()


def _print_figures() -> None:
    if not FIGURES:
        return
    print("\nBMC power verbs, request until libvirt shows the result (s):")
    for (protocol, verb), seconds in sorted(FIGURES.items()):
        print(f"  {protocol:8} {verb:18} {seconds:6.2f}")


def write_inventory(bed: Bed, path: Path, *, protocols: tuple[str, ...],
                    password_env: str = PASSWORD_ENV, verify_tls: bool = False,
                    system_by_name: bool = False) -> Path:
    """An inventory of three nodes, node i switched by the BMC of domain i through
    ``protocols[i]``. The node addresses are never reached by these tests."""
    assert bed.bmcs is not None
    nodes = []
    for i, (node, domain, protocol) in enumerate(zip(NODES, DOMAINS, protocols, strict=True)):
        if protocol == "ipmi":
            power = {"driver": "ipmi", "host": bed.bmcs.address,
                     "port": bed.bmcs.ipmi_ports[domain], "user": "admin",
                     "password_env": password_env}
        else:
            power = {"driver": "redfish", "url": bed.bmcs.redfish_url, "user": "admin",
                     "password_env": password_env,
                     "system": domain if system_by_name else bed.bmcs.system_id(domain),
                     "verify_tls": verify_tls}
        nodes.append({"name": node, "address": f"198.19.251.{11 + i}", "power": power})
    data = {"cluster": CLUSTER, "ssh": {"user": "root", "password_env": password_env},
            "nodes": nodes,
            "storage": {"id": "shared", "server": "198.19.251.5", "export": "/srv/shared"},
            "guest": {"template": "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz",
                      "first_address": "198.19.251.200/24"}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def timed(protocol: str, verb: str, action: Callable[[], object], what: str,
          done: Callable[[], object], timeout_s: float = 60) -> float:
    start = time.monotonic()
    action()
    wait_until(what, done, timeout_s=timeout_s, interval_s=0.1)
    took = time.monotonic() - start
    FIGURES[(protocol, verb)] = took
    print(f"\n{protocol} {verb}: {took:.2f} s")
    return took


# Which domain each protocol switches in the per-protocol tests, so that neither test
# depends on the state the other left.
TARGET = {"ipmi": 0, "redfish": 1}


@pytest.mark.parametrize("protocol", ["ipmi", "redfish"])
def test_power_off_on_reset_through_the_real_bmc(bed, tmp_path, protocol):
    index = TARGET[protocol]
    node, domain = NODES[index], DOMAINS[index]
    inventory = inventory_config.load(write_inventory(
        bed, tmp_path / "inv.yaml", protocols=(protocol, "redfish", "ipmi")
        if index == 0 else ("ipmi", protocol, "ipmi")))
    driver = driver_for(node, inventory.node(node).power)
    assert isinstance(driver, IpmiPower if protocol == "ipmi" else RedfishPower)
    bed.ensure_running(domain)
    driver.check()
    assert driver.is_on() is True

    timed(protocol, "power_off", driver.power_off, f"{domain} shut off",
          lambda: bed.shut_off(domain))
    assert driver.is_on() is False  # the BMC agrees with libvirt

    boots = bed.boots(domain)
    timed(protocol, "power_on", driver.power_on, f"{domain} running and booted",
          lambda: bed.running(domain) and bed.boots(domain) > boots)
    assert driver.is_on() is True

    boots, domain_id = bed.boots(domain), bed.dom(domain).ID()
    timed(protocol, "reset", driver.reset, f"{domain} booted again",
          lambda: bed.running(domain) and bed.boots(domain) > boots
          or NotYet(f"{bed.boots(domain)} boots, state {bed.dom(domain).state()}"))
    assert driver.is_on() is True
    new_id = bed.dom(domain).ID()
    # the two servers reset differently: virtualbmc's `chassis power reset` is libvirt's
    # virDomainReset (the same qemu process, the same domain id); sushy's ForceRestart is
    # virDomainDestroy + virDomainCreate (a new qemu process, a new domain id)
    if protocol == "ipmi":
        assert new_id == domain_id
    else:
        assert new_id != domain_id
    print(f"{protocol} reset: domain id {domain_id} -> {new_id}")


@pytest.mark.parametrize("protocol", ["ipmi", "redfish"])
def test_a_wrong_password_is_refused_clearly_and_nothing_changes(bed, tmp_path, protocol):
    index = TARGET[protocol]
    node, domain = NODES[index], DOMAINS[index]
    protocols = ("ipmi", "redfish", "ipmi")
    protocols = tuple(protocol if i == index else p for i, p in enumerate(protocols))
    inventory = inventory_config.load(write_inventory(
        bed, tmp_path / "inv.yaml", protocols=protocols, password_env=WRONG_ENV))
    driver = driver_for(node, inventory.node(node).power)
    bed.ensure_running(domain)
    boots, domain_id = bed.boots(domain), bed.dom(domain).ID()
    wrong = os.environ[WRONG_ENV]
    for attempt in (driver.is_on, driver.power_off, driver.reset):
        started = time.monotonic()
        with pytest.raises((ConfigError, LabError)) as info:
            attempt()
        text = str(info.value)
        print(f"\n{protocol} wrong password ({attempt.__name__}, "
              f"{time.monotonic() - started:.2f} s): {text}")
        assert node in text
        assert "check power.user and power.password_env in the inventory for " + node in text
        assert wrong not in text and os.environ[PASSWORD_ENV] not in text
        assert type(info.value) is ConfigError
        if protocol == "redfish":  # sushy answers 401 with a Redfish error body
            assert "refused the credentials of 'admin' (HTTP 401: Incorrect username or " \
                   "password)" in text
        else:  # plain ipmitool cannot tell; its verbose second try names the refusal
            assert f"{node}: the BMC at 127.0.0.1 refused the user name or password" in text
            assert "(ipmitool -v: RAKP 2 HMAC is invalid)" in text
    assert bed.running(domain) and bed.dom(domain).ID() == domain_id
    assert bed.boots(domain) == boots  # no reset either


def test_redfish_tls_is_verified_when_asked(bed, tmp_path, monkeypatch):
    """verify_tls true against the self-signed certificate fails, naming the cause; false
    works; and true works once the certificate is trusted (SSL_CERT_FILE)."""
    domain = DOMAINS[1]
    bed.ensure_running(domain)
    path = write_inventory(bed, tmp_path / "inv.yaml", protocols=("ipmi", "redfish", "ipmi"),
                           verify_tls=True)
    power = inventory_config.load(path).node("pve2").power
    assert power.verify_tls is True
    with pytest.raises(ConfigError) as info:
        driver_for("pve2", power).is_on()
    text = str(info.value)
    print(f"\nverify_tls true, self-signed: {text}")
    assert "has a certificate this machine does not trust: self-signed certificate" in text
    assert "power.verify_tls: false for pve2" in text
    assert bed.running(domain)

    unverified = inventory_config.load(write_inventory(
        bed, tmp_path / "inv2.yaml", protocols=("ipmi", "redfish", "ipmi"),
        verify_tls=False)).node("pve2").power
    driver = driver_for("pve2", unverified)
    assert driver.is_on() is True
    assert driver.describe().endswith("(TLS not verified)")

    assert bed.bmcs is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(bed.bmcs.certificate))
    assert driver_for("pve2", power).is_on() is True


def test_redfish_system_named_by_its_domain(bed, tmp_path):
    """sushy lists each domain by its UUID; power.system may name the domain instead."""
    assert bed.bmcs is not None
    power = inventory_config.load(write_inventory(
        bed, tmp_path / "inv.yaml", protocols=("ipmi", "redfish", "ipmi"),
        system_by_name=True)).node("pve2").power
    assert power.system == DOMAINS[1]
    driver = driver_for("pve2", power)
    bed.ensure_running(DOMAINS[1])
    assert driver.is_on() is True
    assert driver.system_path() == f"/redfish/v1/Systems/{bed.bmcs.system_id(DOMAINS[1])}"


def test_the_interlock_with_real_bmcs(bed, tmp_path):
    """Not armed without --destructive: the cut is refused and the domain keeps running;
    armed with --destructive and the cluster's own name: the cut really cuts. The node's
    `pvecm status` is read by a stand-in until the qemu bed's image gives the nodes a real
    one; the power switches are the real BMCs (IPMI, Redfish, IPMI)."""
    for domain in DOMAINS:
        bed.ensure_running(domain)
    inventory = inventory_config.load(write_inventory(
        bed, tmp_path / "inv.yaml", protocols=("ipmi", "redfish", "ipmi")))

    def read(cluster: str):
        return lambda node: (cluster, NODES)

    lab = InventoryLab(inventory, destructive=False, read=read(CLUSTER), settle_s=10)
    lab.start()  # checks every real power switch
    assert "not started with --destructive" in lab.describe()["armed"]
    for verb in (lab.power_cut, lab.reset, lab.shutdown):
        with pytest.raises(InterlockError, match="not started with --destructive"):
            verb("pve2")
    assert all(bed.running(d) for d in DOMAINS)

    other = InventoryLab(inventory, destructive=True, read=read("production"), settle_s=10)
    other.start()
    with pytest.raises(InterlockError, match="inventory names cluster 'bmclab'"):
        other.power_cut("pve1")
    assert all(bed.running(d) for d in DOMAINS)

    armed = InventoryLab(inventory, destructive=True, read=read(CLUSTER), settle_s=10)
    armed.start()
    assert armed.describe()["armed"] == "yes"
    armed.power_cut("pve1")
    wait_until("pve1's domain shut off", lambda: bed.shut_off(DOMAINS[0]), timeout_s=30)
    assert armed.is_powered("pve1") is False
    assert bed.running(DOMAINS[1]) and bed.running(DOMAINS[2])
    armed.close()  # powers back on what the run left off
    wait_until("pve1's domain running", lambda: bed.running(DOMAINS[0]), timeout_s=30)

