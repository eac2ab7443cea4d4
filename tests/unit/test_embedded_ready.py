"""lab/embedded/ready.py: the key a saved formed cluster must match, what a ready state
holds and leaves out, save / find / restore on disk, its removal; and how the embedded
lab, --lab-formed and the `formation` marker choose between booting it and forming."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from harness.errors import ConfigError, LabError
from harness.lab_api import Capability
from harness.timescale import Timescale
from lab import options
from lab import pytest_plugin as plugin
from lab.embedded import EmbeddedLab, ready
from lab.embedded.config import EmbeddedConfig
from lab.embedded.state import lab_names

CODE = "c0de"


def config(tmp_path: Path, **changes: object) -> EmbeddedConfig:
    return EmbeddedConfig(**{"name": "rdy", "subnet": "198.18.120.0/24", "pmxcfs": "cpg",
                             "state_root": tmp_path / "labs", **changes})


def corosync_conf(name: str, nodes: int) -> str:
    listed = "".join(f"  node {{\n    name: node{i}\n    nodeid: {i}\n  }}\n"
                     for i in range(1, nodes + 1))
    return (f"nodelist {{\n{listed}}}\n\ntotem {{\n  cluster_name: {name}\n"
            "  config_version: 3\n}\n")


def formed_lab_dir(cfg: EmbeddedConfig, cluster: str = "pvechaos") -> None:
    """A lab directory laid out as provisioning and formation leave it."""
    lab = cfg.lab_dir
    for name in ("id_ed25519", "id_ed25519.pub", "state.json", "nfs-server.log"):
        (lab / name).parent.mkdir(parents=True, exist_ok=True)
        (lab / name).write_text(name)
    (lab / "nfs/template/cache").mkdir(parents=True)
    (lab / "nfs/template/cache/t.tar.zst").write_text("")
    (lab / "pmxcfs/cluster").mkdir(parents=True)
    (lab / "pmxcfs/cluster/storage.cfg").write_text("nfs: shared\n")
    for node in cfg.node_names:
        root = lab / "nodes" / node
        for sub in ("etc/corosync", "etc/pve", ".etc-work/work", "tmp", ".tmp-work", "mnt/pve",
                    ".mnt-work", "root", ".root-work", "corosync", "log/corosync", "bin",
                    "pmxcfs-db/priv"):
            (root / sub).mkdir(parents=True)
        (root / "etc/corosync/corosync.conf").write_text(corosync_conf(cluster,
                                                                       cfg.node_count))
        (root / "etc/corosync/authkey").write_text("key")
        (root / "corosync/ringid_1").write_text("1.8")
        (root / "pmxcfs-db/corosync.conf").write_text("db")
        (root / "pmxcfs-db.meta.json").write_text('{"version": 7}')
        (root / "log/corosync/corosync.log").write_text("log")
        (root / "bin/pvecm").write_text("#!/bin/sh")
        (root / "boot.json").write_text("{}")


# -- the key -------------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    {"node_count": 5}, {"subnet": "198.18.121.0/24"}, {"pve_version": "8.3.0"},
    {"node_versions": {"node3": "8.3.0"}}, {"cluster_name": "other"}, {"pmxcfs": "shared"},
    {"qdevice": True},
], ids=lambda c: next(iter(c)))
def test_what_shapes_the_cluster_changes_the_key(tmp_path, change):
    base = ready.key(config(tmp_path), CODE)
    changed = ready.key(config(tmp_path, **change), CODE)
    assert changed != base
    assert ready.differences(base, changed)


def test_the_emulator_code_changes_the_key(tmp_path):
    cfg = config(tmp_path)
    assert ready.differences(ready.key(cfg, "a"), ready.key(cfg, "b")) == ["code"]


def test_the_timescale_alone_does_not_change_the_key(tmp_path):
    """It shapes no formed file: node.json, which holds it, is written at every start."""
    assert ready.key(config(tmp_path, timescale=Timescale(0.1)), CODE) == \
        ready.key(config(tmp_path), CODE)


def test_the_code_fingerprint_follows_every_emulator_file(tmp_path):
    repo = tmp_path / "repo"
    for path in ("pvemu/a.py", "pvemu/cli/b.py", "lab/embedded/c.py", "harness/formation.py",
                 "harness/shared_storage.py", "harness/other.py"):
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(path)
    first = ready.code_fingerprint(repo)
    (repo / "harness/other.py").write_text("not the emulator")
    assert ready.code_fingerprint(repo) == first
    (repo / "pvemu/cli/b.py").write_text("changed")
    assert ready.code_fingerprint(repo) != first
    assert len(ready.code_fingerprint()) == 64  # this repository's own code hashes


# -- what a ready state holds --------------------------------------------------------------
def test_the_state_holds_each_nodes_persistent_files_and_the_hosts_shared_ones(tmp_path):
    cfg = config(tmp_path)
    formed_lab_dir(cfg)
    saved = {str(p) for p in ready.saved_paths(cfg)}
    assert {"id_ed25519", "id_ed25519.pub", "pmxcfs", "nfs"} <= saved
    for node in cfg.node_names:
        for kept in ("etc", "corosync", "pmxcfs-db", "pmxcfs-db.meta.json", "root", "mnt",
                     "tmp"):
            assert f"nodes/{node}/{kept}" in saved
        for left in ("log", "bin", "boot.json", ".etc-work", ".tmp-work"):
            assert f"nodes/{node}/{left}" not in saved
    assert "state.json" not in saved and "nfs-server.log" not in saved


def test_save_then_find_then_restore_gives_the_formed_files_back(tmp_path):
    cfg = config(tmp_path)
    formed_lab_dir(cfg)
    where = ready.save(cfg, now=1_700_000_000.0)
    assert where == tmp_path / "labs/.ready/rdy"
    assert not list(where.parent.glob(".*partial"))
    found = ready.find(cfg)
    assert found is not None and found.saved_at == 1_700_000_000.0
    fresh = config(tmp_path, name="other")
    ready.restore(found, fresh)
    node = fresh.lab_dir / "nodes/node2"
    assert (node / "etc/corosync/authkey").read_text() == "key"
    assert (node / "pmxcfs-db.meta.json").read_text() == '{"version": 7}'
    assert (fresh.lab_dir / "pmxcfs/cluster/storage.cfg").read_text() == "nfs: shared\n"
    assert (fresh.lab_dir / "id_ed25519").read_text() == "id_ed25519"
    assert not (node / "log").exists() and not (node / "boot.json").exists()
    assert not (fresh.lab_dir / "state.json").exists()


def test_a_state_of_another_shape_is_removed_when_found_and_says_why(tmp_path, caplog):
    cfg = config(tmp_path)
    formed_lab_dir(cfg)
    ready.save(cfg)
    with caplog.at_level(logging.INFO, logger="pvechaos.lab"):
        assert ready.find(config(tmp_path, node_count=5)) is None
    assert "made for another node_count, nodes" in caplog.text
    assert not ready.path_of(cfg).exists()
    assert ready.find(cfg) is None  # gone for the old shape too


def test_a_broken_state_is_removed_not_booted(tmp_path):
    cfg = config(tmp_path)
    where = ready.path_of(cfg)
    where.mkdir(parents=True)
    (where / ready.META).write_text("{not json")
    assert ready.find(cfg) is None and not where.exists()


def test_only_the_cluster_the_key_names_is_saved(tmp_path):
    cfg = config(tmp_path)
    formed_lab_dir(cfg, cluster="elsewhere")
    with pytest.raises(LabError, match="names cluster 'elsewhere' of 3 nodes"):
        ready.save(cfg)
    assert not ready.path_of(cfg).exists()


def test_an_unformed_lab_is_not_saved(tmp_path):
    cfg = config(tmp_path)
    formed_lab_dir(cfg)
    (cfg.lab_dir / "nodes/node3/etc/corosync/corosync.conf").unlink()
    with pytest.raises(LabError, match="node3 has no readable corosync.conf"):
        ready.save(cfg)


def test_cleanup_removes_the_named_states_or_all_and_is_no_lab(tmp_path):
    for name in ("rdy", "gw0", "gw1"):
        cfg = config(tmp_path, name=name)
        formed_lab_dir(cfg)
        ready.save(cfg)
    root = tmp_path / "labs"
    assert lab_names(root) == ["gw0", "gw1", "rdy"]  # .ready is not a lab
    assert ready.remove(root, ["gw1", "nope"]) == ["gw1"]
    assert sorted(p.name for p in (root / ".ready").iterdir()) == ["gw0", "rdy"]
    assert ready.remove(root) == ["gw0", "rdy"]
    assert not (root / ".ready").exists()
    assert ready.remove(root) == []


# -- the lab and its options ---------------------------------------------------------------
def test_a_lab_that_forms_every_time_keeps_no_ready_state(tmp_path):
    never = EmbeddedLab(config(tmp_path, formed="never"))
    assert Capability.SNAPSHOT not in never.capabilities and not never.prepared()
    with pytest.raises(LabError, match="keeps no ready state"):
        never.save_ready()
    reuse = EmbeddedLab(config(tmp_path, formed="reuse"))
    assert Capability.SNAPSHOT in reuse.capabilities and not reuse.prepared()
    assert "lab.ready" not in reuse.describe()


def test_a_directly_made_lab_forms_every_time_and_a_bad_mode_is_refused(tmp_path):
    assert EmbeddedConfig().formed == "never"  # `pvechaos lab up`, the integration tests
    with pytest.raises(ConfigError, match="formed-cluster mode 'always'"):
        config(tmp_path, formed="always")


@pytest.mark.parametrize(("raw", "kind", "problem"), [
    ("always", "embedded", "not a formed-cluster mode"),
    ("", "embedded", "not a formed-cluster mode"),
    ("never", "libvirt", "only the embedded lab takes it"),
])
def test_a_bad_lab_formed_value_is_refused_with_the_fix(raw, kind, problem):
    with pytest.raises(pytest.UsageError) as info:
        options.lab_formed(raw, kind)
    assert problem in str(info.value) and "fix:" in str(info.value)


def test_lab_formed_values():
    assert [options.lab_formed(v) for v in options.FORMED] == ["reuse", "never"]
    assert options.lab_formed("reuse", "inventory") == "reuse"  # the default, ignored


class Options:
    """A pytest config's getoption, for lab/pytest_plugin.py's lab_options."""

    def __init__(self, **given: object) -> None:
        self.values = {"lab": "embedded", "nodes": None, "lab_subnet": "198.18.0.0/24",
                       "lab_range": "198.18.0.0/15", "node_version": [], "lab_name": None,
                       "pve_version": None, "pve_flavour": "8", "cluster_name": "pvechaos",
                       "lab_formed": "reuse", "qdevice": False, "timescale": 0.1,
                       "upgrade_to": None, "upgrade_command": None, "emulation_bug": [],
                       **given}

    def getoption(self, name: str) -> object:
        return self.values[name]


@pytest.fixture
def run_timescale(monkeypatch):
    monkeypatch.setattr(plugin, "run_timescale", lambda config: Timescale(0.1))


def test_a_module_that_tests_formation_always_forms(run_timescale):
    config = Options(cluster_name="stage")
    assert plugin.lab_options(config)["formed"] == "reuse"
    assert plugin.lab_options(config)["cluster_name"] == "stage"
    assert plugin.lab_options(config, forms=True)["formed"] == "never"
    assert plugin.lab_options(Options(lab_formed="never"))["formed"] == "never"
    with pytest.raises(pytest.UsageError, match="--lab-formed 'sometimes'"):
        plugin.lab_options(Options(lab_formed="sometimes"))


def test_the_quorum_story_is_marked_as_testing_formation():
    from scenarios import test_quorum_story

    assert any(m.name == "formation" for m in test_quorum_story.pytestmark)


def test_the_meta_file_records_the_key_and_the_time(tmp_path):
    cfg = config(tmp_path)
    formed_lab_dir(cfg)
    meta = json.loads((ready.save(cfg, now=5.0) / ready.META).read_text())
    assert meta["saved_at"] == 5.0 and meta["key"]["cluster_name"] == "pvechaos"
    assert meta["key"]["nodes"]["node1"] == ["198.18.120.11", "8.4.1"]
