"""PVE's recovery windows computed from the constants a running cluster really uses."""

from __future__ import annotations

from harness.cluster import Cluster
from harness.expectations import read_constants, recovery_window
from harness.formation import form_cluster
from harness.timescale import REAL_TIME


def test_the_windows_come_from_the_running_corosync(make_lab):
    lab = make_lab("consts", "198.18.46.0/24", pve_version="9.1.1")  # token_coefficient 125
    lab.start()
    cluster = Cluster(lab)
    try:
        form_cluster(cluster)
        constants = read_constants(cluster.node("node2"), timescale=REAL_TIME, nodes=3)
    finally:
        cluster.close()
    # pvecm create on PVE >= 9.1 writes token_coefficient 125: token 3000 + 125 = 3125 ms
    assert (constants.token_ms, constants.token_coefficient_ms) == (3125, 125)
    assert constants.consensus_ms == 3750  # 1.2 x token, as corosync computes it
    window = recovery_window(constants, master_died=False)
    assert 115 < window.low_s < 125 and 140 < window.high_s < 160
