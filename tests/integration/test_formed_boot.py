"""The embedded lab's ready state on real labs (lab/embedded/ready.py): a lab forms its
cluster once and saves it; the next lab of the same shape boots it whole, quorate, with
its shared storage, and HA runs a guest on it; a lab of another shape forms afresh."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.formation import bring_up
from harness.ha_guest import HaGuest
from harness.shared_storage import storage_state
from harness.timescale import Timescale
from lab.embedded import EmbeddedLab, ready
from lab.embedded.config import STATE_ROOT, EmbeddedConfig
from tests.integration.conftest import running

NAME = "formed"
SUBNET = "198.18.120.0/24"


def make(**changes: object) -> EmbeddedLab:
    return EmbeddedLab(EmbeddedConfig(**{"name": NAME, "subnet": SUBNET, "formed": "reuse",
                                         "timescale": Timescale(0.1), **changes}))


@pytest.fixture(scope="module")
def first_formed() -> Iterator[dict[str, object]]:
    """A lab that found no ready state: it forms the cluster and saves it."""
    ready.remove(STATE_ROOT, [NAME])
    lab = make()
    with running(lab) as cluster:
        assert not lab.prepared()
        bring_up(cluster, "pvechaos")
        status = cluster.node("node3").quorum(timeout_s=10)
    yield {"name": status.cluster_name, "config_version": status.config_version}
    ready.remove(STATE_ROOT, [NAME])


def test_a_formed_cluster_is_saved_and_boots_again_whole(first_formed):
    assert ready.path_of(make().config).is_dir()
    lab = make()
    started = time.monotonic()
    with running(lab) as cluster:
        assert lab.prepared()
        assert "lab.ready" in lab.describe()
        bring_up(cluster, "pvechaos")  # only waits: forming again would fail
        quorate_s = time.monotonic() - started
        for node in cluster.nodes():
            status = node.quorum(timeout_s=10)
            assert (status.quorate, status.nodes) == (True, 3), node.name
            assert (status.cluster_name, status.config_version) == \
                (first_formed["name"], first_formed["config_version"])
            assert storage_state(node, "shared") == "active", node.name
        guest = HaGuest(cluster, lab.guest_recipe(100), lab.shared_storage())
        guest.set_up("node2", timeout_s=60)
        assert guest.placement() == ("node2", "started")
    print(f"formed boot: quorate {quorate_s:.1f} s after start")


def test_a_lab_of_another_shape_forms_afresh_and_saves_its_own(first_formed):
    lab = make(node_count=4)
    with running(lab) as cluster:
        assert not lab.prepared()  # the 3-node state is not booted, and is gone
        assert not ready.path_of(lab.config).exists()
        bring_up(cluster, "pvechaos")
        assert cluster.node("node4").quorum(timeout_s=10).nodes == 4
    found = ready.find(lab.config)
    assert found is not None
    assert ready.find(make().config) is None  # and the 3-node lab forms again
