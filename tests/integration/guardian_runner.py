"""A test run that owns an embedded lab and is then killed (tests/integration/test_guardian.py).

``python -m tests.integration.guardian_runner NAME SUBNET FAULT``: starts the lab, applies
FAULT, prints "ready" and waits (bounded) for a signal, never closing the lab:

- ``power-cut``: node1 loses power (lab.power_cut);
- ``partition``: node3 isolated with nft inside the nodes (harness FaultInjector.isolate
  over SSH; the cluster need not be formed: the rules only drop corosync's UDP);
- ``netem``: node2's corosync traffic degraded (FaultInjector.degrade: netem delay and
  jitter, nft loss; or the NFQUEUE delayer where the kernel has no netem) and node3's
  cable pulled (lab.link_down, the veth outside the namespaces);
- ``none``: nothing.
"""

from __future__ import annotations

import sys
import time

from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig

WAIT_S = 300.0  # bound on the wait for the test's signal


def apply(lab: EmbeddedLab, fault: str) -> None:
    if fault == "power-cut":
        lab.power_cut("node1")
    elif fault == "partition":
        from harness.cluster import Cluster
        from harness.faults import FaultInjector
        from harness.timeline import Clock, Timeline

        cluster = Cluster(lab)
        faults = FaultInjector(lab, Timeline(Clock()), cluster)
        faults.isolate("node3")
    elif fault == "netem":  # node2's corosync traffic delayed and lossy, its cable pulled
        from harness.cluster import Cluster
        from harness.faults import FaultInjector
        from harness.timeline import Clock, Timeline

        faults = FaultInjector(lab, Timeline(Clock()), Cluster(lab))
        faults.degrade("node2", delay_ms=200, jitter_ms=20, loss_pct=10)
        lab.link_down("node3")
    elif fault != "none":
        raise SystemExit(f"unknown fault {fault!r}: power-cut, partition, netem or none")


def main(argv: list[str]) -> int:
    name, subnet, fault = argv
    lab = EmbeddedLab(EmbeddedConfig(name=name, subnet=subnet))
    lab.start()
    apply(lab, fault)
    print("ready", flush=True)
    time.sleep(WAIT_S)  # the test kills this process; the lab is never closed here
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
