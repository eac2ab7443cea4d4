"""Golden-image build against the test driver: answer images, golden volumes, the
parallel installs and their bounded wait. The installer itself is simulated by powering
the install VMs off, as the PVE installer does when it is done (ISO 8.4.3+)."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import ConfigError, LabError
from lab.libvirt import admin, answer
from lab.libvirt.build import Builder, node_answers
from lab.libvirt.host import RecordedLinks
from lab.libvirt.lab import LibvirtLab
from lab.libvirt.plan import Plan
from tests.unit.libvirt_lab.twins import KeptOpen, RecordingAccess

TOOLS = {"mkfs.vfat": "/sbin/mkfs.vfat", "mcopy": "/usr/bin/mcopy", "xorriso": "/usr/bin/xorriso"}


class Runner:
    """Runs mkfs.vfat/mcopy for real; the ISO preparation only leaves its output file."""

    def __init__(self) -> None:
        self.argv: list[list[str]] = []

    def __call__(self, argv, **kwargs):
        self.argv.append(list(argv))
        if argv[0] == "xorriso":
            Path(argv[argv.index("-outdev") + 1]).write_bytes(b"prepared iso")
            return subprocess.CompletedProcess(argv, 0, "", "")
        return subprocess.run(argv, **kwargs)


class Installer:
    """Stands in for the PVE installer: on the first wait it records what each install
    VM was given and powers them off, as `reboot_mode = "power-off"` does."""

    def __init__(self, host, finish: bool = True) -> None:
        self.host, self.finish = host, finish
        self.seen: dict[str, ET.Element] = {}

    def sleep(self, _seconds: float) -> None:
        for dom in self.host.conn.listAllDomains():
            if dom.isActive():
                self.seen[dom.name()] = ET.fromstring(dom.XMLDesc(0))
                if self.finish:
                    dom.destroy()


@pytest.fixture
def iso(config):
    config.iso.write_bytes(b"original iso")
    return config.iso


def builder(config, host, installer, runner, messages):
    return Builder(config, host, run=runner, which=TOOLS.get, sleep=installer.sleep,
                   progress=messages.append, answers_ssh=no_network)


def no_network(domain: str) -> bool:
    raise AssertionError(f"the build tried to reach {domain} over the network")


def test_answers_follow_the_plan_and_the_iso_spelling(config):
    answers = node_answers(config, Plan(config))
    parsed = answer.validate(answers["node2"], iso_version=config.iso_version)
    assert parsed["global"]["fqdn"] == "node2.lab.test"
    assert parsed["global"]["root-ssh-keys"] == ["ssh-ed25519 AAAAC3Nza harness@test"]
    assert parsed["network"]["cidr"] == "198.19.4.12/24"
    assert parsed["network"]["filter"] == {"ID_NET_NAME_MAC": "*52540004010c"}
    assert parsed["global"]["reboot-mode"] == "power-off"


@pytest.mark.skipif(not all(Path(p).exists() or __import__("shutil").which(t)
                            for t, p in TOOLS.items() if t != "xorriso"),
                    reason="mkfs.vfat/mcopy missing (apt-get install dosfstools mtools)")
def test_build_installs_every_node_in_parallel_and_leaves_only_golden_images(
        config, host, iso, tmp_path):
    installer, runner, messages = Installer(host), Runner(), []
    made = builder(config, host, installer, runner, messages).build()
    assert made == {f"node{i}": f"pvechaos-golden-9.1-1-t-node{i}.qcow2" for i in (1, 2, 3)}
    # all three installers ran at once, each with the prepared ISO and its own answer disk
    assert sorted(installer.seen) == [f"pvechaos-install-9.1-1-node{i}" for i in (1, 2, 3)]
    disks = {d.find("target").get("dev"): d.find("source").get("file")
             for d in installer.seen["pvechaos-install-9.1-1-node3"].findall("devices/disk")}
    assert disks["sda"].endswith("pvechaos-9.1-1-auto.iso")
    assert disks["vdz"].endswith("pvechaos-9.1-1-node3-answer.img")
    text = answer.read_answer_image(Path(disks["vdz"]))
    assert 'fqdn = "node3.lab.test"' in text
    assert answer.image_label(Path(disks["vdz"])) == "PROXMOX-AIS"
    pool = host.conn.storagePoolLookupByName("pvechaos")
    assert {v for v in pool.listVolumes() if "golden" in v} == set(made.values())
    assert host.conn.listAllDomains() == []  # install VMs removed
    assert runner.argv[0][0] == "xorriso"  # no assistant here: the fallback
    assert any("installed" in m for m in messages)


def test_an_install_that_never_ends_is_bounded_and_names_the_serial_logs(
        config, host, iso):
    config = replace(config, install_timeout_s=0.0)
    installer, messages = Installer(host, finish=False), []
    with pytest.raises(LabError, match="did not finish within 0 min") as info:
        builder(config, host, installer, Runner(), messages).build()
    assert "serial logs" in str(info.value) and "node1-serial.log" in str(info.value)
    assert host.conn.listAllDomains() == []  # nothing left running or defined


def test_build_refuses_without_iso_or_tools(config, host):
    with pytest.raises(ConfigError, match="does not exist"):
        Builder(config, host, which=TOOLS.get).check_prerequisites()
    config.iso.write_bytes(b"iso")
    with pytest.raises(LabError, match="apt-get install dosfstools mtools xorriso"):
        Builder(config, host, which=lambda tool: None).check_prerequisites()
    with pytest.raises(ConfigError, match="iso:"):
        Builder(replace(config, iso=None), host).check_prerequisites()


def test_status_and_destroy_of_a_started_lab(config, host, golden):
    kept = KeptOpen(host)
    lab = LibvirtLab(config, host=kept, links=RecordedLinks(), access=RecordingAccess())
    lab.start()
    lab.save_ready()
    lines: list[str] = []
    admin.status(config, host=kept, out=lines.append)
    assert "node2  pvechaos-t-node2: running, ready snapshot, 198.19.4.12" in "\n".join(lines)
    removed: list[str] = []
    admin.destroy(config, host=kept, out=removed.append)
    assert host.conn.listAllDomains() == []
    assert host.conn.listAllNetworks() == []
    pool = host.conn.storagePoolLookupByName("pvechaos")
    assert not [v for v in pool.listVolumes() if v.startswith("pvechaos-t-")]
    assert "pvechaos-golden-9.1-1-t-node1.qcow2" in pool.listVolumes()  # kept for next time


def test_each_xdist_workers_lab_has_its_own_golden_images(config):
    """The installer writes a node's static address into its image: a worker's lab, with
    its own subnet, cannot share another's."""
    workers = [Plan(replace(config, name=n)) for n in ("t", "t1")]
    assert workers[0].golden("node1", "9.1-1") != workers[1].golden("node1", "9.1-1")
