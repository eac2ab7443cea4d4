"""The inventory lab's power drivers against real BMC servers: sushy-tools' Redfish
emulator (HTTPS, self-signed certificate, basic auth) and virtualbmc (IPMI over LAN, one
BMC per UDP port), both serving real libvirt domains of the system libvirtd (started by
the qemu bed's lab/qemu_bed/daemons.py).

The drivers are the real classes, built through the inventory loader from a YAML file this
module writes (passwords via ``password_env``); what happened is checked through libvirt
or over SSH, not through the BMC that did it. Two kinds of machine:

- bare domains (``pvechaos-bmcdev-*``: no disk, SeaBIOS finds nothing to boot and waits),
  BMCs on 127.0.0.1: power off, on, reset, wrong passwords, TLS, the interlock with the
  cluster name given by a stand-in reader. SeaBIOS prints its banner on the serial
  console (a file here) at every boot, so the number of banners counts the boots a reset
  must add;
- the qemu bed's image (three small Debian VMs, bed ``qbmc``), BMCs on the lab's
  management bridge address: reset (a new boot id), graceful shutdown (acpid powers the
  guest off), `pvechaos-lab inventory check` with SSH to the nodes and their stand-in
  `pvecm`, and the interlock reading the cluster name from the nodes.

Figures (time per verb per protocol, until libvirt or SSH shows the result) are printed
at the end (``-s``). tests/qemu/conftest.py skips the module only where qemu cannot run
at all; a missing BMC package is a failure that names the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
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
from tests.qemu.conftest import wait_answers

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


@contextlib.contextmanager
def libvirtd() -> Iterator[tuple]:
    """The system libvirtd through the qemu bed's starter (a shared user of it: the last
    user out stops it); (the libvirt module, a connection). tests/qemu/conftest.py skips
    this module where qemu cannot run at all (not root, no qemu)."""
    from lab.qemu_bed.daemons import Daemons

    daemons = Daemons()
    daemons.start()
    try:
        import libvirt

        conn = libvirt.open(URI)
        try:
            yield libvirt, conn
        finally:
            conn.close()
    finally:
        daemons.stop()


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
def passwords() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_ENV, secrets.token_urlsafe(12))
        env.setenv(WRONG_ENV, "not-" + secrets.token_urlsafe(8))
        yield


@pytest.fixture(scope="module")
def bed(passwords) -> Iterator[Bed]:
    workdir = Path(tempfile.mkdtemp(prefix=PREFIX))
    workdir.chmod(0o755)  # qemu may run as its own user and writes the serial log here
    try:
        with libvirtd() as (libvirt, conn):
            bed = Bed(libvirt, conn, workdir)
            stale = [d.name() for d in conn.listAllDomains() if d.name().startswith(PREFIX)]
            try:
                for name in stale:  # a killed earlier run of this module
                    bed.remove(name)
                for name in DOMAINS:
                    bed.define(name)
                for name in DOMAINS:
                    bed.ensure_running(name)
                # 127.0.0.1: these bare domains have no lab network, so no bridge address
                with BmcServers(DOMAINS, user="admin", password_env=PASSWORD_ENV,
                                address="127.0.0.1", uri=URI) as bmcs:
                    bed.bmcs = bmcs
                    yield bed
            finally:
                for name in DOMAINS:
                    bed.remove(name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    """The module's figures, printed once at its end (``-s``)."""
    yield
    if FIGURES:
        print("\nBMC power verbs: from the request until libvirt (or SSH) shows the result")
        for (protocol, verb), seconds in sorted(FIGURES.items()):
            print(f"  {protocol:8} {verb:36} {seconds:6.2f} s")


def write_inventory(bed: Bed, path: Path, *, protocols: tuple[str, ...],
                    password_env: str = PASSWORD_ENV, verify_tls: bool = False,
                    system_by_name: bool = False, user: str = "admin") -> Path:
    """An inventory of three nodes, node i switched by the BMC of domain i through
    ``protocols[i]``. The node addresses are never reached by these tests."""
    assert bed.bmcs is not None
    nodes = []
    for i, (node, domain, protocol) in enumerate(zip(NODES, DOMAINS, protocols, strict=True)):
        if protocol == "ipmi":
            power = {"driver": "ipmi", "host": bed.bmcs.address,
                     "port": bed.bmcs.ipmi_ports[domain], "user": user,
                     "password_env": password_env}
        else:
            power = {"driver": "redfish", "url": bed.bmcs.redfish_url, "user": user,
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


def test_an_unknown_ipmi_user_meets_silence(bed, tmp_path):
    """virtualbmc does not answer the session's first step for a user it does not know:
    ipmitool retries for about 14 s, then says no more than for a BMC that is not there.
    The driver says what it can (and does not ask again: the failure was slow)."""
    domain = DOMAINS[0]
    bed.ensure_running(domain)
    power = inventory_config.load(write_inventory(
        bed, tmp_path / "inv.yaml", protocols=("ipmi", "redfish", "ipmi"),
        user="nobody")).node("pve1").power
    started = time.monotonic()
    with pytest.raises(LabError) as info:
        driver_for("pve1", power).power_off()
    took = time.monotonic() - started
    text = str(info.value)
    print(f"\nipmi unknown user ({took:.1f} s): {text}")
    assert not isinstance(info.value, ConfigError)
    assert "wrong user/password, or the BMC is unreachable (it did not answer the " \
           "session's first step, as a BMC that does not know the user name may do)" in text
    assert took < 20  # one ipmitool run (its own retries), no verbose second one
    assert bed.running(domain)


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


def test_the_password_is_in_no_argv_environment_or_log(bed):
    """After every test above used the servers: the password is in no server's argv or
    environment, and in no file of the bed but virtualbmc's per-BMC config (where vbmcd
    reads it; mode 0600 in a 0700 directory); the htpasswd file holds its bcrypt hash."""
    assert bed.bmcs is not None and bed.bmcs.workdir is not None
    password = os.environ[PASSWORD_ENV].encode()
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    groups = {s.process.pid for s in bed.bmcs._servers}
    seen = 0
    for pid in pids:
        try:
            if os.getpgid(pid) not in groups:
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        seen += 1
        assert password not in cmdline and password not in environ, pid
    assert seen >= 3  # sushy-emulator, vbmcd and at least one BMC process of it
    holders = sorted(str(f.relative_to(bed.bmcs.workdir)) for f in bed.bmcs.workdir.rglob("*")
                     if f.is_file() and password in f.read_bytes())
    assert holders == [f"vbmc/bmcs/{d}/config" for d in sorted(DOMAINS)]
    for domain in DOMAINS:
        config = bed.bmcs.workdir / "vbmc" / "bmcs" / domain / "config"
        assert config.stat().st_mode & 0o777 == 0o600
        assert config.parent.stat().st_mode & 0o777 == 0o700
    assert (bed.bmcs.workdir / "htpasswd").read_text().startswith("admin:$2b$")


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



# ------------------------------------------------------------ on the qemu bed's image
# Three small Debian VMs (lab/qemu_bed/image.py) that boot, answer SSH, power themselves
# off on the ACPI power button (acpid) and carry a `pvecm` that prints PVE 8's recorded
# answers with this module's cluster name. The BMCs listen on the lab's management bridge
# address (198.19.172.1), the nodes' own network.

IMAGE_CLUSTER = "qbmc"
IMAGE_PROTOCOLS = ("ipmi", "redfish", "ipmi")  # node1, node2, node3
RECORDED = Path(__file__).resolve().parents[1] / "data" / "pve8"


def recorded(name: str) -> str:
    lines = (RECORDED / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("# recorded"))


def pvecm_standin(cluster: str) -> str:
    status = re.sub(r"(?m)^Name:(\s+)\S+$", rf"Name:\g<1>{cluster}",
                    recorded("pvecm_status_quorate.txt"))
    nodes = recorded("pvecm_nodes_quorate.txt")
    return (f"#!/bin/sh\n# pvecm stand-in (tests/qemu/test_bmc_real.py): PVE 8's recorded "
            f"answers, cluster {cluster}\n"
            'case "$1" in\n'
            f"  status) cat <<'PVECM_EOF'\n{status}PVECM_EOF\n  ;;\n"
            f"  nodes) cat <<'PVECM_EOF'\n{nodes}PVECM_EOF\n  ;;\n"
            '  *) echo "pvecm stand-in: only status and nodes are recorded" >&2; exit 2 ;;\n'
            "esac\n")


def test_the_stand_in_pvecm_parses_as_pve_prints_it():
    from harness.pve.pvecm import parse_pvecm_nodes, parse_pvecm_status

    script = pvecm_standin("qbmc")
    status = script.split("status) cat <<'PVECM_EOF'\n", 1)[1].split("PVECM_EOF", 1)[0]
    nodes = script.split("nodes) cat <<'PVECM_EOF'\n", 1)[1].split("PVECM_EOF", 1)[0]
    assert parse_pvecm_status(status).cluster_name == "qbmc"
    assert [m.name for m in parse_pvecm_nodes(nodes)] == ["node1", "node2", "node3"]


class ImageBed:
    def __init__(self, bed, lab, bmcs: BmcServers, conn, libvirt) -> None:
        self.bed, self.lab, self.bmcs, self.conn, self.libvirt = bed, lab, bmcs, conn, libvirt
        self.nodes = {n.name: n for n in lab.nodes()}

    def domain(self, node: str) -> str:
        return self.lab.plan.machine(node).domain

    def shut_off(self, node: str) -> bool:
        state = self.conn.lookupByName(self.domain(node)).state()[0]
        return state == self.libvirt.VIR_DOMAIN_SHUTOFF

    def inventory(self, path: Path, *, cluster: str = IMAGE_CLUSTER) -> Path:
        nodes = []
        for name, protocol in zip(self.nodes, IMAGE_PROTOCOLS, strict=True):
            domain = self.domain(name)
            if protocol == "ipmi":
                power = {"driver": "ipmi", "host": self.bmcs.address,
                         "port": self.bmcs.ipmi_ports[domain], "user": "admin",
                         "password_env": PASSWORD_ENV}
            else:
                power = {"driver": "redfish", "url": self.bmcs.redfish_url, "user": "admin",
                         "password_env": PASSWORD_ENV, "system": domain,
                         "verify_tls": False}
            nodes.append({"name": name, "address": self.nodes[name].address,
                          "power": power})
        data = {"cluster": cluster, "ssh": {"user": "root", "key": str(self.bed.key)},
                "nodes": nodes,
                "storage": {"id": "shared", "server": self.lab.plan.host_address,
                            "export": "/srv/shared"},
                "guest": {"template": "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz",
                          "first_address": "198.19.172.200/24"}}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


@pytest.fixture(scope="module")
def image_bed(bed_factory, passwords) -> Iterator[ImageBed]:
    qemu_bed = bed_factory("qbmc", "198.19.172.0/24", "198.19.173.0/24",
                           extra_files={"/usr/bin/pvecm": pvecm_standin(IMAGE_CLUSTER)})
    lab = qemu_bed.lab()
    try:
        lab.start()
        domains = tuple(lab.plan.machine(n).domain for n in lab.plan.node_names)
        with libvirtd() as (libvirt, conn), \
                BmcServers(domains, user="admin", password_env=PASSWORD_ENV,
                           address=lab.plan.host_address, uri=URI) as bmcs:
            image = ImageBed(qemu_bed, lab, bmcs, conn, libvirt)
            for node in image.nodes.values():
                wait_answers(node, f"{node.name} to answer SSH")
            yield image
    finally:
        lab.close()


@pytest.mark.parametrize("protocol", ["ipmi", "redfish"])
def test_image_reset_graceful_shutdown_and_power_on(image_bed, tmp_path, protocol):
    """reset: the guest boots again (a new boot id); shutdown: the guest powers itself off
    on the ACPI power button (the domain reaches shutoff); power on: it boots."""
    name = f"node{IMAGE_PROTOCOLS.index(protocol) + 1}"
    node = image_bed.nodes[name]
    inventory = inventory_config.load(image_bed.inventory(tmp_path / "inv.yaml"))
    driver = driver_for(name, inventory.node(name).power)
    assert isinstance(driver, IpmiPower if protocol == "ipmi" else RedfishPower)
    old = wait_answers(node, f"{name} to answer SSH")
    assert driver.is_on() is True

    new = None

    def new_boot_answers():
        nonlocal new
        new = wait_answers(node, f"{name} on a new boot", not_boot=old)
        return True

    timed(protocol, "reset (new boot answers SSH)", driver.reset, f"{name}'s new boot",
          new_boot_answers, timeout_s=180)
    assert new and new != old

    timed(protocol, "graceful shutdown (until shutoff)", driver.shutdown,
          f"{name} to power itself off", lambda: image_bed.shut_off(name), timeout_s=120)
    assert driver.is_on() is False

    def answers_again():
        wait_answers(node, f"{name} after power on", not_boot=new)
        return True

    timed(protocol, "power_on (boot answers SSH)", driver.power_on, f"{name} booted",
          answers_again, timeout_s=180)


def run_check(path: Path, *flags: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-c", "import sys; from lab.cli import lab_main; sys.exit(lab_main())",
         "inventory", "check", "--inventory", str(path), *flags],
        cwd=root, capture_output=True, text=True, timeout=300, check=False)


def test_inventory_check_against_the_image_and_its_bmcs(image_bed, tmp_path):
    """`pvechaos-lab inventory check`: SSH to every node (`pvecm status`/`nodes` there),
    every power switch through its real BMC, the interlock's verdict."""
    path = image_bed.inventory(tmp_path / "inv.yaml")
    plain = run_check(path)
    print(f"\ninventory check:\n{plain.stdout}{plain.stderr}")
    assert plain.returncode == 0, plain.stderr
    assert "NOT armed: the run was not started with --destructive" in plain.stdout
    bmc = image_bed.bmcs
    power = next(line for line in plain.stdout.splitlines() if line.startswith("power: "))
    assert f"node1: IPMI lanplus {bmc.address}:{bmc.ipmi_ports[image_bed.domain('node1')]}" \
        in power
    assert f"node2: Redfish {bmc.redfish_url} system {image_bed.domain('node2')} as admin " \
           "(TLS not verified)" in power
    assert os.environ[PASSWORD_ENV] not in plain.stdout + plain.stderr

    armed = run_check(path, "--destructive")
    assert armed.returncode == 0, armed.stderr
    assert "armed: power cuts allowed" in armed.stdout and "NOT armed" not in armed.stdout

    other = run_check(image_bed.inventory(tmp_path / "staging.yaml", cluster="staging"),
                      "--destructive")
    assert other.returncode == 0, other.stderr
    assert ("NOT armed: the inventory names cluster 'staging', but node1 is in cluster "
            "'qbmc'") in other.stdout

    wrong = image_bed.inventory(tmp_path / "wrong.yaml")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PASSWORD_ENV, os.environ[WRONG_ENV])
        refused = run_check(wrong)
    assert refused.returncode != 0
    assert "node1: the BMC at" in refused.stderr and "refused the user name or password" \
        in refused.stderr, refused.stderr


def test_interlock_cuts_only_when_armed_on_the_image(image_bed, tmp_path):
    """The interlock reads the cluster name from the nodes over SSH (the stand-in pvecm);
    refused without --destructive; armed, the cut really cuts (libvirt: shutoff); close()
    powers the node back on."""
    inventory = inventory_config.load(image_bed.inventory(tmp_path / "inv.yaml"))
    node3 = image_bed.nodes["node3"]
    before = wait_answers(node3, "node3 to answer SSH")
    lab = InventoryLab(inventory, destructive=False)
    lab.start()
    with pytest.raises(InterlockError, match="not started with --destructive"):
        lab.power_cut("node3")
    assert not image_bed.shut_off("node3")

    armed = InventoryLab(inventory, destructive=True)
    armed.start()
    assert armed.describe()["armed"] == "yes"
    armed.power_cut("node3")
    wait_until("node3 cut", lambda: image_bed.shut_off("node3"), timeout_s=30)
    assert armed.is_powered("node3") is False
    armed.close()
    assert wait_answers(node3, "node3 back after close()", not_boot=before, timeout_s=180)
