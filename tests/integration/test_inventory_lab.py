"""The inventory lab against a real cluster: an embedded lab stands in for the staging
cluster (real sshd, real `pvecm status` over SSH), its power switched through the
inventory's drivers. The interlock is checked on what the nodes really say."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cluster import Cluster
from harness.errors import InterlockError, LabError
from harness.formation import bring_up
from harness.timescale import Timescale
from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig
from lab.inventory import config as inventory_config
from lab.inventory.lab import InventoryLab
from tests.integration.conftest import running

PREFIX = "198.18.96"
ENV = {"BMC_PASSWORD": "not-used", "WRONG_ROOT_PASSWORD": "definitely-wrong"}


class EmbeddedPower:
    """A power driver whose switch is the embedded lab's (what IPMI would do to a node)."""

    def __init__(self, lab: EmbeddedLab, node: str) -> None:
        self.lab, self.node = lab, node
        self.checked = 0

    def describe(self) -> str:
        return f"embedded power of {self.node}"

    def check(self) -> None:
        self.checked += 1

    def is_on(self) -> bool:
        return self.lab.is_powered(self.node)

    def power_off(self) -> None:
        self.lab.power_cut(self.node)

    def power_on(self) -> None:
        self.lab.power_on(self.node)


@pytest.fixture(scope="module")
def staging():
    lab = EmbeddedLab(EmbeddedConfig(name="inv", subnet=f"{PREFIX}.0/24", timescale=Timescale(0.1)))
    with running(lab, formed="stage"):
        yield lab


def inventory_file(tmp_path: Path, lab: EmbeddedLab, *, cluster: str = "stage",
                   ssh: str | None = None, node1_address: str | None = None) -> Path:
    key = lab.config.lab_dir / "id_ed25519"
    ssh = ssh or f"{{user: root, key: {key}}}"
    lines = []
    for n in lab.nodes():
        address = node1_address if n.name == "node1" and node1_address else n.address
        lines.append(f"  - {{name: {n.name}, address: {address}, power: {{driver: ipmi, "
                     f"host: {PREFIX}.250, user: admin, password_env: BMC_PASSWORD}}}}")
    nodes = "\n".join(lines)
    path = tmp_path / "cluster.yaml"
    path.write_text(f"""cluster: {cluster}
ssh: {ssh}
nodes:
{nodes}
storage: {{id: shared, server: {PREFIX}.1, export: /export}}
guest: {{template: "shared:vztmpl/pvechaos-guest_1.0_amd64.tar.xz",
        first_address: {PREFIX}.200/24}}
""")
    return path


def inventory_lab(path: Path, lab: EmbeddedLab, *, destructive: bool) -> InventoryLab:
    drivers = {n: EmbeddedPower(lab, n) for n in lab.config.node_names}
    return InventoryLab(inventory_config.load(path, environ=ENV), destructive=destructive,
                        drivers=drivers, settle_s=60)


def test_armed_only_with_the_right_cluster_and_the_destructive_flag(staging, tmp_path,
                                                                     capsys):
    lab = inventory_lab(inventory_file(tmp_path, staging), staging, destructive=True)
    lab.start()
    assert "armed: power cuts allowed" in capsys.readouterr().out
    lab.power_cut("node3")
    assert staging.is_powered("node3") is False
    lab.close()  # a node the run left off is switched back on
    assert staging.is_powered("node3") is True


def test_without_the_flag_nothing_is_cut_and_the_reason_is_given(staging, tmp_path):
    lab = inventory_lab(inventory_file(tmp_path, staging), staging, destructive=False)
    lab.start()
    with pytest.raises(InterlockError, match="not started with --destructive"):
        lab.power_cut("node2")
    assert staging.is_powered("node2") is True


def test_another_clusters_name_disarms_the_interlock(staging, tmp_path):
    path = inventory_file(tmp_path, staging, cluster="prod")
    lab = inventory_lab(path, staging, destructive=True)
    lab.start()
    with pytest.raises(InterlockError) as info:
        lab.power_cut("node1")
    assert "names cluster 'prod'" in str(info.value)
    assert "node1 is in cluster 'stage'" in str(info.value)
    assert staging.is_powered("node1") is True


def test_a_wrong_password_names_the_node_and_the_fix(staging, tmp_path):
    path = inventory_file(tmp_path, staging,
                          ssh="{user: root, password_env: WRONG_ROOT_PASSWORD}")
    lab = inventory_lab(path, staging, destructive=True)
    with pytest.raises(LabError) as info:
        lab.start()
    text = str(info.value)
    assert "cannot read the cluster on node1" in text and "authentication failed" in text
    assert "check the node's address and SSH credentials in the inventory" in text
    assert all(staging.is_powered(n) for n in staging.config.node_names)


def test_an_unreachable_node_names_the_node_and_the_fix(staging, tmp_path):
    staging.power_cut("node2")  # its address stays in the lab's own namespace, unanswered
    try:
        lab = inventory_lab(inventory_file(tmp_path, staging), staging, destructive=True)
        lab.settle_s = 5
        with pytest.raises(LabError) as info:
            lab.start()
        assert "cannot read the cluster on node2" in str(info.value)
        assert "is unreachable over SSH" in str(info.value)
    finally:
        staging.power_on("node2")


def test_the_scenario_guest_is_removed_from_a_cluster_that_outlives_the_run(staging,
                                                                             tmp_path):
    from harness.ha_guest import HaGuest

    lab = inventory_lab(inventory_file(tmp_path, staging), staging, destructive=True)
    lab.start()
    assert lab.keeps_changes() is True
    cluster = Cluster(lab)
    try:
        bring_up(cluster, "stage")  # as the `cluster` fixture: node2 may just have rejoined
        # the embedded nodes run the embedded template; the rest is what scenarios do
        guest = HaGuest(cluster, staging.guest_recipe(100), staging.shared_storage())
        guest.set_up("node2", timeout_s=60)
        assert guest.placement() == ("node2", "started")
        assert guest.remove() is None
        assert guest.placement() is None  # out of HA
        listed = cluster.node("node1").check("sh", "-c", "ls /etc/pve/nodes/*/lxc/ || true")
        assert "100.conf" not in listed
        assert guest.remove() is None  # nothing left: a second removal is a no-op
    finally:
        cluster.close()
