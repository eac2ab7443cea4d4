"""lab/qemu_bed/bmc.py's checks before anything starts: the address, the ports, the
password variable, missing packages; and the certificate it makes. No server is started
here (tests/qemu/test_bmc_real.py runs the real ones)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from harness.errors import ConfigError, LabError
from lab.qemu_bed import bmc
from lab.qemu_bed.bmc import BmcServers


@pytest.mark.parametrize("address", ["127.0.0.1", "198.18.0.1", "198.19.172.1"])
def test_addresses_inside_the_lab_range_or_loopback(address):
    assert bmc._check_address(address) == address


@pytest.mark.parametrize(("address", "problem"), [
    ("0.0.0.0", "outside the lab's range"),
    ("192.168.122.1", "outside the lab's range"),
    ("10.0.0.1", "outside the lab's range"),
    ("bmc.example", "is not an IP address"),
])
def test_other_addresses_are_refused(address, problem):
    with pytest.raises(ConfigError, match=problem) as e:
        bmc._check_address(address)
    assert "127.0.0.1" in e.value.hint


def test_a_taken_port_is_named_with_the_fix():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(LabError, match=f"UDP port {port} on 127.0.0.1 is taken") as e:
            bmc._free_port("127.0.0.1", socket.SOCK_DGRAM, port)
    assert f"sport = {port}" in e.value.hint


def test_a_free_port_is_found():
    port = bmc._free_port("127.0.0.1", socket.SOCK_STREAM)
    assert 0 < port < 65536


def test_a_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(bmc.importlib.util, "find_spec",
                        lambda name: None if name == "sushy_tools" else object())
    with pytest.raises(LabError, match="sushy-tools is not installed") as e:
        BmcServers(("d1",)).start()
    assert e.value.hint == "pip install -e '.[qemubed]' (sushy-tools, virtualbmc)"


def test_an_unset_password_variable_is_refused_before_anything_starts(monkeypatch):
    monkeypatch.delenv("PVECHAOS_TEST_NO_SUCH_PASSWORD", raising=False)
    monkeypatch.setattr(bmc.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(bmc.importlib.util, "find_spec", lambda name: object())
    servers = BmcServers(("d1",), password_env="PVECHAOS_TEST_NO_SUCH_PASSWORD")
    with pytest.raises(ConfigError, match="PVECHAOS_TEST_NO_SUCH_PASSWORD is not set"):
        servers.start()
    assert servers.workdir is None


def test_no_domains_is_refused():
    with pytest.raises(ConfigError, match="at least one libvirt domain"):
        BmcServers(()).start()


def test_the_certificate_names_its_address(tmp_path):
    from cryptography import x509

    bmc.make_certificate("198.19.172.1", tmp_path / "c.crt", tmp_path / "c.key")
    cert = x509.load_pem_x509_certificate((tmp_path / "c.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("198.19.172.1")]
    assert cert.issuer == cert.subject  # self-signed
    assert (tmp_path / "c.key").stat().st_mode & 0o777 == 0o600
