"""A test run that owns a qemu test bed, its libvirt lab and BMC servers, and is then
killed (tests/qemu/test_qemu_guardian.py).

``python -m tests.qemu.bed_runner NAME MANAGEMENT COROSYNC``: prepares the bed, starts
its lab (every VM booted and answering SSH), cuts node1's power, starts sushy-tools and
vbmcd for node2 and node3, prints "ready" and the bed's directory, and waits (bounded)
for a signal, never tearing anything down itself.
"""

from __future__ import annotations

import sys
import time

from lab.qemu_bed.bmc import BmcServers
from tests.qemu.conftest import make_bed

WAIT_S = 600.0  # bound on the wait for the test's signal


def main(argv: list[str]) -> int:
    name, management, corosync = argv
    bed = make_bed(name, management, corosync)
    bed.prepare()
    lab = bed.lab()
    lab.start()
    lab.power_cut("node1")
    domains = tuple(lab.plan.machine(n).domain for n in ("node2", "node3"))
    bmcs = BmcServers(domains, password_env="PVECHAOS_BMC_PASSWORD",
                      address=lab.plan.host_address)
    bmcs.start()
    print(f"ready {bed.workdir} {bmcs.workdir}", flush=True)
    time.sleep(WAIT_S)  # the test kills this process; nothing is torn down here
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
