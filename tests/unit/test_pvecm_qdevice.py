"""The embedded `pvecm qdevice setup` / `remove`: their checks, then their steps in PVE's
order (pve-cluster src/PVE/CLI/pvecm.pm setup_qdevice / remove_qdevice; pve-operations.md
§1.2, §1.6), the commands recorded instead of run; and the corosync.conf they write."""

from __future__ import annotations

import json

import pytest

from pvemu import corosync_conf
from pvemu.cli import pvecm, pvecm_qdevice
from pvemu.etc_pve import EtcPve

QNETD = "198.18.140.10"
TWO = {"node1": "198.18.140.11", "node2": "198.18.140.12"}


def conf_text(names, *, device: bool = False) -> str:
    conf = corosync_conf.create("pvechaos", "node1", 1, 1, {0: TWO["node1"]},
                                token_coefficient=None)
    for i, name in enumerate(names[1:], start=2):
        corosync_conf.nodes(conf).append({"name": name, "nodeid": str(i), "quorum_votes": "1",
                                          "ring0_addr": f"198.18.140.{10 + i}"})
    conf["totem"]["config_version"] = "3"
    if device:
        conf["quorum"]["device"] = pvecm_qdevice.device_section(QNETD, "ffsplit")
    return corosync_conf.render(conf)


@pytest.fixture
def node(monkeypatch, tmp_path):
    """A node of a cluster: /etc/pve in tmp, its members online, every command recorded."""
    root = tmp_path / "pve"
    (root / "nodes/node1").mkdir(parents=True)
    monkeypatch.setenv("PVECHAOS_PVE_ROOT", str(root))
    monkeypatch.setattr(pvecm_qdevice, "NODE_DB", str(tmp_path / "nssdb"))
    calls: list[tuple[list[str], bool]] = []
    monkeypatch.setattr(pvecm_qdevice, "run",
                        lambda argv, noerr=False, prefix="": calls.append((argv, noerr)) or 0)

    def members(names, offline=()):
        (root / ".members").write_text(json.dumps({"nodelist": {
            n: {"id": i + 1, "online": n not in offline, "ip": f"198.18.140.{11 + i}"}
            for i, n in enumerate(names)}}))
        if not (root / "corosync.conf").exists():
            (root / "corosync.conf").write_text(conf_text(names))

    members(list(TWO))
    return type("Node", (), {"root": root, "calls": calls, "members": staticmethod(members),
                             "etc": EtcPve(root), "db": tmp_path / "nssdb"})


def commands(node) -> list[str]:
    return [" ".join(argv) for argv, _ in node.calls]


def test_setup_runs_pve_steps_in_order_and_writes_the_device(node, capsys):
    assert pvecm.main(["qdevice", "setup", QNETD]) == 0
    ssh, scp = "ssh -o BatchMode=yes -lroot", "scp -o BatchMode=yes"
    db, qdb = str(node.db), "/etc/corosync/qnetd/nssdb"
    assert commands(node) == [
        f"{ssh} {QNETD} corosync-qnetd-certutil -i",
        f"{scp} root@[{QNETD}]:{qdb}/qnetd-cacert.crt /etc/pve/qnetd-cacert.crt",
        f"{ssh} 198.18.140.11 corosync-qdevice-net-certutil -i -c /etc/pve/qnetd-cacert.crt",
        f"{ssh} 198.18.140.12 corosync-qdevice-net-certutil -i -c /etc/pve/qnetd-cacert.crt",
        "corosync-qdevice-net-certutil -r -n pvechaos",
        f"{scp} {db}/qdevice-net-node.crq root@[{QNETD}]:/tmp",
        f"{ssh} {QNETD} corosync-qnetd-certutil -s -c /tmp/qdevice-net-node.crq -n pvechaos",
        f"{scp} root@[{QNETD}]:{qdb}/cluster-pvechaos.crt {db}",
        f"corosync-qdevice-net-certutil -M -c {db}/cluster-pvechaos.crt",
        f"{scp} {db}/qdevice-net-node.p12 /etc/pve/",
        f"{ssh} 198.18.140.11 corosync-qdevice-net-certutil -m -c /etc/pve/qdevice-net-node.p12",
        f"{ssh} 198.18.140.12 corosync-qdevice-net-certutil -m -c /etc/pve/qdevice-net-node.p12",
        f"{ssh} 198.18.140.11 systemctl start corosync-qdevice",
        f"{ssh} 198.18.140.12 systemctl start corosync-qdevice",
        "corosync-cfgtool -R",
    ]
    # the errors PVE ignores (noerr): the qnetd init and each node's DB init
    assert [i for i, (_, noerr) in enumerate(node.calls) if noerr] == [0, 2, 3]
    conf = corosync_conf.parse((node.root / "corosync.conf").read_text())
    assert conf["totem"]["config_version"] == "4"  # atomic_write_conf: + 1
    assert conf["quorum"] == {"provider": "corosync_votequorum", "device": {
        "model": "net", "votes": "1",
        "net": {"algorithm": "ffsplit", "host": QNETD, "tls": "on"}}}
    assert "INFO: add QDevice to cluster configuration" in capsys.readouterr().out
    assert not (node.root / "priv/lock/file-corosync_conf").exists()


def test_the_written_device_section_is_pve_layout(node):
    """Keys sorted, two-space indent: the §1.3 block."""
    pvecm.main(["qdevice", "setup", QNETD])
    text = (node.root / "corosync.conf").read_text()
    assert ("quorum {\n  device {\n    model: net\n    net {\n      algorithm: ffsplit\n"
            f"      host: {QNETD}\n      tls: on\n    }}\n    votes: 1\n  }}\n"
            "  provider: corosync_votequorum\n}") in text


@pytest.mark.parametrize("argv, offline, message", [
    (["setup", QNETD], ("node2",), "All nodes must be online! Node node2 is offline, aborting."),
    (["remove"], ("node2",), "All nodes must be online! Node node2 is offline, aborting."),
])
def test_every_member_must_be_online(node, capsys, argv, offline, message):
    node.members(list(TWO), offline)
    assert pvecm.main(["qdevice", *argv]) == 255
    assert capsys.readouterr().err.strip() == message
    assert node.calls == []


def test_an_odd_count_needs_force_and_gets_lms(node, capsys):
    (node.root / "corosync.conf").unlink()
    node.members(["node1", "node2", "node3"])
    assert pvecm.main(["qdevice", "setup", QNETD]) == 255
    assert "Clusters with an odd node count are not officially supported!" in \
        capsys.readouterr().err
    assert node.calls == []
    assert pvecm.main(["qdevice", "setup", QNETD, "--force"]) == 0
    device = corosync_conf.parse((node.root / "corosync.conf").read_text())["quorum"]["device"]
    assert device["net"]["algorithm"] == "lms" and "votes" not in device


def test_an_existing_device_is_refused_and_force_cannot_replace_it(node, capsys):
    (node.root / "corosync.conf").write_text(conf_text(list(TWO), device=True))
    assert pvecm.main(["qdevice", "setup", QNETD]) == 255
    assert capsys.readouterr().err.strip() == "QDevice already configured!"
    assert node.calls == []
    # --force passes the first check, then the one under the lock refuses (never forced)
    assert pvecm.main(["qdevice", "setup", QNETD, "--force"]) == 255
    assert "must be removed before setting up new one!" in capsys.readouterr().err
    assert "corosync-cfgtool -R" not in commands(node)


def test_a_local_certificate_store_needs_force(node, capsys):
    node.db.mkdir()
    assert pvecm.main(["qdevice", "setup", QNETD]) == 255
    assert capsys.readouterr().err.strip() == ("QDevice certificate store already "
                                               "initialised, set force to delete!")
    assert pvecm.main(["qdevice", "setup", QNETD, "--force"]) == 0
    assert commands(node)[0] == f"rm -rf {node.db}"


def test_remove_drops_the_device_then_the_stores_then_the_daemons(node, capsys):
    (node.root / "corosync.conf").write_text(conf_text(list(TWO), device=True))
    assert pvecm.main(["qdevice", "remove"]) == 0
    ssh = "ssh -o BatchMode=yes -lroot"
    assert commands(node) == [
        f"{ssh} 198.18.140.11 -- rm -rf /etc/corosync/qdevice",
        f"{ssh} 198.18.140.12 -- rm -rf /etc/corosync/qdevice",
        f"{ssh} 198.18.140.11 systemctl stop corosync-qdevice",
        f"{ssh} 198.18.140.12 systemctl stop corosync-qdevice",
        "corosync-cfgtool -R",
    ]
    conf = corosync_conf.parse((node.root / "corosync.conf").read_text())
    assert conf["quorum"] == {"provider": "corosync_votequorum"}
    assert conf["totem"]["config_version"] == "4"
    assert capsys.readouterr().out.strip().endswith("Removed Qdevice.")


def test_remove_without_a_device(node, capsys):
    assert pvecm.main(["qdevice", "remove"]) == 255
    assert capsys.readouterr().err.strip() == "No QDevice configured!"
    assert node.calls == []


def test_an_unknown_subcommand_prints_the_usage(node, capsys):
    assert pvecm.main(["qdevice", "status"]) == 255
    err = capsys.readouterr().err
    assert "unknown command 'pvecm qdevice status'" in err
    assert "pvecm qdevice remove" in err and "pvecm qdevice setup" in err
