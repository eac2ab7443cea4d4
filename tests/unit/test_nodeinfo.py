"""pvemu.nodeinfo: what an emulated node knows about itself; its timers come from the
timescale its node.json carries, which it must carry (no default)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pvemu.nodeinfo import load
from pvemu.timing import Timing

NODE = {"name": "node1", "address": "198.18.0.11", "prefixlen": 24, "pve_version": "8.4.1",
        "kernel": "6.8.12-9-pve", "local_db": "/x", "nfs_export": "/n"}


def write(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "node.json"
    path.write_text(json.dumps({**NODE, **fields}))
    return path


def test_the_timers_come_from_the_node_json_timescale(tmp_path):
    info = load(write(tmp_path, timescale=0.05))
    assert info.timing == Timing(0.05)
    assert info.timing.lock_lifetime == pytest.approx(6.0)  # pmxcfs's 120 s lock


def test_a_node_json_without_a_timescale_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no timescale"):
        load(write(tmp_path))


@pytest.mark.parametrize("scale", [0, -0.1, math.nan, math.inf, "0.1", None])
def test_a_bad_timescale_is_refused(tmp_path, scale):
    with pytest.raises(ValueError, match="timescale"):
        load(write(tmp_path, timescale=scale))


def test_a_node_json_without_bugs_runs_no_emulation_bug(tmp_path):
    assert load(write(tmp_path, timescale=1)).bugs == frozenset()


def test_the_labs_emulation_bugs_reach_the_node_through_its_node_json(tmp_path):
    """Provisioning writes them; the node reads them back (a round trip)."""
    from lab.embedded import provision
    from lab.embedded.config import EmbeddedConfig

    for bugs, read in (((), frozenset()), (("double-start",), frozenset({"double-start"}))):
        config = EmbeddedConfig(name="bugs", subnet="198.18.0.0/24", state_root=tmp_path,
                                emulation_bugs=bugs)
        config.lab_dir.mkdir(exist_ok=True)
        key = provision.make_lab_key(config)
        provision.provision_node(config, "node2", key)
        path = provision.node_json(config, "node2")
        assert json.loads(path.read_text())["bugs"] == list(bugs)
        info = load(path)
        assert (info.name, info.bugs) == ("node2", read)
