"""The embedded lab's qnetd host (lab/embedded/qnetd.py) and the nodes' corosync-qdevice
unit (lab/embedded/pid1.py): names, files and the boot script, without a lab."""

from __future__ import annotations

import pytest

from harness.errors import LabError
from harness.timescale import REAL_TIME
from lab.embedded import pid1, provision, qnetd
from lab.embedded.config import EmbeddedConfig
from pvemu.timing import Timing


def test_the_qnetd_host_has_its_own_address_and_kernel_object_names():
    config = EmbeddedConfig(name="lab12345", subnet="198.18.140.0/24", node_count=2,
                            qdevice=True)
    assert config.qnetd_address == "198.18.140.10"
    assert config.qnetd_address not in [config.node_address(n) for n in config.node_names]
    assert config.qnetd_address != config.host_address
    assert len(config.qnetd_veth) <= 15  # IFNAMSIZ - 1, with the longest lab name
    assert config.netns(config.QNETD) == "pvechaos-lab12345-qnetd"
    assert config.QNETD not in config.node_names


def test_the_boot_script_makes_the_db_as_the_postinst_and_runs_qnetd_as_its_user():
    script = qnetd.SCRIPT.replace("{port}", "5403")
    # the host's own /etc/corosync/qnetd (its install's CA) is covered by the host's own dir
    assert 'mount --bind "$root/qnetd" /etc/corosync/qnetd' in script
    assert "corosync-qnetd-certutil -i -G" in script
    assert "setpriv --reuid=coroqnetd --regid=coroqnetd" in script
    assert 'corosync-qnetd -f -l "$address" -p 5403' in script
    assert "/usr/sbin/sshd -D" in script
    assert script.rstrip().endswith("wait")


def test_provisioning_lets_every_node_ssh_to_it(tmp_path):
    config = EmbeddedConfig(name="qd", subnet="198.18.140.0/24", node_count=2, qdevice=True,
                            state_root=tmp_path)
    config.lab_dir.mkdir()
    key = provision.make_lab_key(config)
    for node in config.node_names:
        provision.provision_node(config, node, key)
    provision.write_known_hosts(config)
    qnetd.provision_host(config, key)
    root = qnetd.qnetd_dir(config)
    sshd = (root / "etc/ssh/sshd_config").read_text()
    assert "ListenAddress 198.18.140.10" in sshd and "PasswordAuthentication no" in sshd
    assert (root / "etc/ssh/pvechaos_authorized_keys").read_text() == \
        key.with_suffix(".pub").read_text()
    host_key = (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()
    for node in config.node_names:
        known = (provision.node_dir(config, node) / "etc/ssh/pvechaos_known_hosts").read_text()
        assert f"qnetd,198.18.140.10 {host_key}" in known.splitlines()
        assert known.count("198.18.140.1") == 3  # both nodes and the qnetd host


def test_a_missing_package_names_the_setup_command(monkeypatch):
    monkeypatch.setattr(qnetd.shutil, "which", lambda tool: None)
    monkeypatch.setattr(qnetd.Path, "exists", lambda self: False)
    with pytest.raises(LabError) as info:
        qnetd.check_installed()
    assert "corosync-qnetd" in str(info.value) and ".ci/setup" in str(info.value)


def test_the_nodes_run_corosync_qdevice_once_its_db_exists():
    units = pid1.services("/usr/bin/python3", Timing(REAL_TIME.factor))
    unit = units["corosync-qdevice"]
    names = list(units)
    assert names.index("corosync") < names.index("corosync-qdevice")  # After=corosync
    assert unit.condition == "/etc/corosync/qdevice/net/nssdb/cert9.db"
    assert unit.restart_on_failure  # Restart=on-failure
    start = unit.argv[-1]
    assert start.endswith("exec /usr/sbin/corosync-qdevice -f")
    # it waits (bounded) for corosync's cmap to hold the device, as After=corosync does
    assert "for _ in $(seq 100)" in start and "corosync-cmapctl -g quorum.device.model" in start
    order = pid1.SHUTDOWN_ORDER
    assert order.index("corosync-qdevice") < order.index("corosync")
