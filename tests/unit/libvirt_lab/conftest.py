"""libvirt's in-process test driver, one private instance per test (`test:///<file>`),
holding the lab's storage pool with golden images, plus a lab config pointing at it."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from lab.libvirt.config import Gateway, GuestSpec, LibvirtConfig, NodeShape
from lab.libvirt.host import Host
from lab.libvirt.plan import Plan

libvirt = pytest.importorskip(
    "libvirt", reason="libvirt-python is not installed (.ci/setup installs it)")

ISO_VERSION = "9.1-1"
GATEWAY_IMAGE = "gw-debian12.qcow2"


def make_config(tmp_path: Path, uri: str, **changes) -> LibvirtConfig:
    key = tmp_path / "id_ed25519"
    if not key.exists():
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n")
        key.with_name("id_ed25519.pub").write_text("ssh-ed25519 AAAAC3Nza harness@test\n")
    values = dict(
        source=str(tmp_path / "lab.yaml"), name="t", hosts=(uri,), pool="pvechaos",
        pool_path=tmp_path / "pool", iso=tmp_path / "pve.iso", iso_version=ISO_VERSION,
        root_password="lab-secret-1", ssh_key=key, domain="lab.test",
        allowed_range=ipaddress.ip_network("198.18.0.0/15"),
        management=ipaddress.ip_network("198.19.4.0/24"),
        corosync=ipaddress.ip_network("198.19.132.0/24"), forward="none", node_count=3,
        node=NodeShape(disk_gib=8), gateway=Gateway(image=GATEWAY_IMAGE),
        guest=GuestSpec(template="shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz"),
        install_timeout_s=60.0, boot_timeout_s=60.0)
    values.update(changes)
    return LibvirtConfig(**values)


@pytest.fixture
def test_uri(tmp_path: Path) -> str:
    """A private test-driver instance with an empty dir pool named like the lab's."""
    pool_path = tmp_path / "pool"
    pool_path.mkdir()
    node = tmp_path / "node.xml"
    node.write_text(f"""<node>
  <pool type='dir'>
    <name>pvechaos</name>
    <uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>
    <capacity>109951162777600</capacity><allocation>0</allocation>
    <available>109951162777600</available>
    <target><path>{pool_path}</path></target>
  </pool>
</node>""")
    return f"test://{node}"


@pytest.fixture
def config(tmp_path: Path, test_uri: str) -> LibvirtConfig:
    return make_config(tmp_path, test_uri)


@pytest.fixture
def host(test_uri: str):
    the_host = Host(test_uri)
    yield the_host
    the_host.close()


@pytest.fixture
def golden(config: LibvirtConfig, host: Host) -> Plan:
    """The golden images `build` leaves in the pool, and the gateway's prepared disk."""
    plan = Plan(config)
    pool = host.conn.storagePoolLookupByName("pvechaos")
    for volume in [plan.golden(n, ISO_VERSION) for n in plan.node_names] + [GATEWAY_IMAGE]:
        pool.createXML(f"<volume><name>{volume}</name><capacity unit='GiB'>1</capacity>"
                       "<target><format type='qcow2'/></target></volume>", 0)
    return plan
