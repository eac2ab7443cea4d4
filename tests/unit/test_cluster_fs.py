"""The harness's /etc/pve commands, run for real by sh on a stand-in directory tree."""

from __future__ import annotations

import subprocess

from harness.pve import cluster_fs


def run(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=10)


def test_the_owner_is_the_node_whose_directory_lists_the_config(tmp_path):
    root = tmp_path / "pve"
    for node, confs in {"node1": ["101.conf"], "node2": ["100.conf", "1000.conf"]}.items():
        (root / "nodes" / node / "lxc").mkdir(parents=True)
        for conf in confs:
            (root / "nodes" / node / "lxc" / conf).write_text("")
    command = cluster_fs.guest_config_dirs_command(100).replace(cluster_fs.ETC_PVE, str(root))
    listing = run(command).stdout.replace(str(root), cluster_fs.ETC_PVE)
    assert listing == "/etc/pve/nodes/node2/lxc\n"
    assert cluster_fs.owner_of_listing(listing) == "node2"


def test_no_listing_means_no_owner():
    assert cluster_fs.owner_of_listing("") is None
    assert cluster_fs.owner_of_listing("\n") is None


def test_the_write_probe_makes_and_removes_its_file(tmp_path):
    probe = tmp_path / "probe"
    assert run(cluster_fs.write_probe_command(str(probe))).returncode == 0
    assert not probe.exists()


def test_the_write_probe_reports_a_refused_write(tmp_path):
    refused = run(cluster_fs.write_probe_command(str(tmp_path / "missing" / "probe")))
    assert refused.returncode != 0 and refused.stderr
