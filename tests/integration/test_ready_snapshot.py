"""What the `cluster` fixture does on a lab with a `ready` snapshot (harness/formation.py
`bring_up`), on a real embedded cluster. Namespaces cannot be snapshotted, so the twin's
`save_ready` records what every node said at that moment: the snapshot must catch a
whole, quorate cluster with the shared storage active everywhere."""

from __future__ import annotations

import pytest

from harness.cluster import Cluster
from harness.errors import WaitTimeout
from harness.formation import bring_up
from harness.lab_api import Capability
from harness.shared_storage import storage_state
from harness.timescale import Timescale
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from tests.integration.conftest import running


class SnapshotTwin(EmbeddedLab):
    capabilities = EmbeddedLab.capabilities | Capability.SNAPSHOT

    def __init__(self, config: EmbeddedConfig) -> None:
        super().__init__(config)
        self.saved: list[dict[str, tuple[bool, int, str | None]]] = []
        self.reverted = False

    def prepared(self) -> bool:
        return self.reverted

    def save_ready(self) -> None:
        seen = Cluster(self)
        try:
            storage = self.shared_storage().storage_id
            said = {}
            for n in seen.nodes():
                quorum = n.quorum(timeout_s=10)
                said[n.name] = (quorum.quorate, quorum.nodes, storage_state(n, storage))
            self.saved.append(said)
        finally:
            seen.close()


@pytest.fixture(scope="module")
def twin():
    # formed="reuse": a lab that keeps a ready state (formed="never" drops SNAPSHOT)
    lab = SnapshotTwin(EmbeddedConfig(name="ready", subnet="198.18.98.0/24",
                                      timescale=Timescale(0.1), formed="reuse"))
    with running(lab) as cluster:  # not formed: bring_up does that
        yield lab, cluster


def test_a_fresh_lab_is_formed_and_snapshotted_with_its_shared_storage(twin):
    lab, cluster = twin
    bring_up(cluster, "ready")
    assert lab.saved == [{name: (True, 3, "active") for name in cluster.names}]
    # the guest is each scenario's own step: nothing of it is in the snapshot
    assert cluster.nodes()[0].check("pct", "list", timeout_s=15).strip() == ""


def test_a_reverted_lab_is_only_waited_for(twin):
    lab, cluster = twin
    lab.reverted = True
    bring_up(cluster, "ready")  # forming again would fail: node1 is in a cluster already
    assert len(lab.saved) == 1  # and no second snapshot


def test_a_reverted_lab_missing_a_node_times_out_naming_it(twin):
    lab, cluster = twin
    lab.reverted = True
    lab.power_cut("node3")
    with pytest.raises(WaitTimeout) as caught:
        bring_up(cluster, "ready", wait_s=3)
    assert "all 3 nodes quorate with 3 members" in str(caught.value)
    assert "node3" in str(caught.value) or "members=2" in str(caught.value)
