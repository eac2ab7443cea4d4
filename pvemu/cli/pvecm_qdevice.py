"""`pvecm qdevice setup <address> [--force] [--network CIDR]` and `pvecm qdevice remove`
on an embedded node, step by step as pve-cluster's `setup_qdevice` / `remove_qdevice`
(src/PVE/CLI/pvecm.pm; pve-operations.md §1.2, §1.6), with the real Debian
corosync-qdevice-net-certutil here and corosync-qnetd-certutil on the qnetd host over SSH.

Differences from PVE, on purpose:
- no `ssh-copy-id -i /root/.ssh/id_rsa root@<addr>`: the embedded lab provisions the
  qnetd host with the key every node already uses (lab/embedded/qnetd.py), which is the
  state ssh-copy-id leaves;
- `systemctl enable/disable corosync-qdevice` are not sent: the node's init starts the
  unit at boot while its NSS DB exists (lab/embedded/pid1.py), which setup creates and
  remove deletes (a guess standing in for the enablement).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pvemu import corosync_conf
from pvemu.cli import options
from pvemu.cli.errors import CommandError
from pvemu.etc_pve import EtcPve

QNETD_DB = "/etc/corosync/qnetd/nssdb"
NODE_DB = "/etc/corosync/qdevice/net/nssdb"
QDEVICE_STATE = "/etc/corosync/qdevice"
CA_FILE = "qnetd-cacert.crt"
CRQ_FILE = "qdevice-net-node.crq"
P12_FILE = "qdevice-net-node.p12"
QDEVICE_CERTUTIL = "corosync-qdevice-net-certutil"
QNETD_CERTUTIL = "corosync-qnetd-certutil"
SSH = ["ssh", "-o", "BatchMode=yes", "-lroot"]
SCP = ["scp", "-o", "BatchMode=yes"]
CONF_LOCK = "file-corosync_conf"  # cfs_lock_file('corosync.conf', 10, ...)
PVE_CONF = "corosync.conf"


def run(argv: list[str], *, noerr: bool = False, prefix: str = "") -> int:
    """PVE::Tools::run_command: the output shown, a failure dies unless ``noerr``."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        if noerr:
            return -1
        raise CommandError(f"command '{' '.join(argv)}' failed: got timeout") from None
    for line in (proc.stdout + proc.stderr).splitlines():
        print(f"{prefix}{line}")
    if proc.returncode != 0 and not noerr:
        raise CommandError(f"command '{' '.join(argv)}' failed: exit code {proc.returncode}")
    return proc.returncode


def online_members(etc: EtcPve) -> dict[str, str]:
    """Every member's address (name -> ip, from .members); dies when one is offline."""
    members = (etc.members() or {}).get("nodelist") or {}
    if not members:
        raise CommandError("Node not in a cluster. Aborting.")
    for name in sorted(members):
        if not members[name].get("online"):
            raise CommandError(f"All nodes must be online! Node {name} is offline, aborting.")
    return {name: str(members[name].get("ip")) for name in sorted(members)}


def algorithm_for(member_count: int, force: bool) -> str:
    """ffsplit for an even count; an odd one needs --force and gets lms."""
    if member_count % 2:
        if not force:
            raise CommandError("Clusters with an odd node count are not officially supported!")
        return "lms"
    return "ffsplit"


def device_section(address: str, algorithm: str) -> dict:
    """quorum.device as setup writes it: `votes: 1` only for ffsplit (§1.3)."""
    section: dict = {"model": "net", "net": {"tls": "on", "host": address,
                                             "algorithm": algorithm}}
    if algorithm == "ffsplit":
        section["votes"] = "1"
    return section


def _update_conf(etc: EtcPve, change) -> None:
    """Under the corosync.conf cfs lock: read, change, write with config_version + 1
    (PVE::Corosync::atomic_write_conf)."""
    with etc.lock(CONF_LOCK):
        text = etc.read(PVE_CONF)
        if text is None:
            raise CommandError("Node not in a cluster. Aborting.")
        conf = corosync_conf.parse(text)
        change(conf)
        totem = conf["totem"]
        totem["config_version"] = str(int(totem.get("config_version", "0")) + 1)
        etc.write(PVE_CONF, corosync_conf.render(conf))


def setup(argv: list[str], etc: EtcPve | None = None) -> int:
    usage = "pvecm qdevice setup <address> [OPTIONS]"
    args, opts = options.parse(argv, ["address"], {"force": "bool", "network": "str"}, usage)
    etc = etc or EtcPve()
    force = bool(opts.get("force"))
    if not etc.exists(PVE_CONF):
        raise CommandError("Node not in a cluster. Aborting.")
    members = online_members(etc)
    if "device" in corosync_conf.parse(etc.read(PVE_CONF) or "").get("quorum", {}) \
            and not force:
        raise CommandError("QDevice already configured!")
    algorithm = algorithm_for(len(members), force)
    # --network is read and never used, in PVE too (pve-operations.md §1.2 step 4)
    qnetd = args["address"]
    cluster = corosync_conf.parse(etc.read(PVE_CONF) or "")["totem"]["cluster_name"]
    if Path(NODE_DB).is_dir():  # FIXME in PVE too: the other nodes' stores are not checked
        if not force:
            raise CommandError("QDevice certificate store already initialised, set force "
                               "to delete!")
        run(["rm", "-rf", NODE_DB])

    print("\nINFO: initializing qnetd server")
    run([*SSH, qnetd, QNETD_CERTUTIL, "-i"], noerr=True)

    print("\nINFO: copying CA cert and initializing on all nodes")
    ca_pve = etc.display(CA_FILE)
    run([*SCP, f"root@[{qnetd}]:{QNETD_DB}/{CA_FILE}", ca_pve])
    for node, ip in members.items():
        run([*SSH, ip, QDEVICE_CERTUTIL, "-i", "-c", ca_pve], noerr=True,
            prefix=f"\nnode '{node}': ")
    etc.remove(CA_FILE)

    print("\nINFO: generating cert request")
    run([QDEVICE_CERTUTIL, "-r", "-n", cluster])

    print("\nINFO: copying exported cert request to qnetd server")
    run([*SCP, f"{NODE_DB}/{CRQ_FILE}", f"root@[{qnetd}]:/tmp"])

    print("\nINFO: sign and export cluster cert")
    run([*SSH, qnetd, QNETD_CERTUTIL, "-s", "-c", f"/tmp/{CRQ_FILE}", "-n", cluster])

    print("\nINFO: copy exported CRT")
    run([*SCP, f"root@[{qnetd}]:{QNETD_DB}/cluster-{cluster}.crt", NODE_DB])

    print("\nINFO: import certificate")
    run([QDEVICE_CERTUTIL, "-M", "-c", f"{NODE_DB}/cluster-{cluster}.crt"])

    print("\nINFO: copy and import pk12 cert to all nodes")
    run([*SCP, f"{NODE_DB}/{P12_FILE}", etc.display() + "/"])
    for node, ip in members.items():
        run([*SSH, ip, QDEVICE_CERTUTIL, "-m", "-c", etc.display(P12_FILE)],
            prefix=f"\nnode '{node}': ")
    etc.remove(P12_FILE)

    def add_device(conf: dict) -> None:
        quorum = conf.setdefault("quorum", {})
        if "device" in quorum:  # checked again under the lock, never forced
            raise CommandError("Qdevice already configured, must be removed before setting "
                               "up new one!")
        quorum["device"] = device_section(qnetd, algorithm)

    print("\nINFO: add QDevice to cluster configuration")
    _update_conf(etc, add_device)

    for node, ip in members.items():
        print(f"\nINFO: start and enable corosync qdevice daemon on node '{node}'...")
        run([*SSH, ip, "systemctl", "start", "corosync-qdevice"], prefix=f"\nnode '{node}': ")
    run(["corosync-cfgtool", "-R"])  # cluster-wide config reload
    return 0


def remove(argv: list[str], etc: EtcPve | None = None) -> int:
    options.parse(argv, [], {}, "pvecm qdevice remove")
    etc = etc or EtcPve()
    if not etc.exists(PVE_CONF):
        raise CommandError("Node not in a cluster. Aborting.")
    members = online_members(etc)

    def drop_device(conf: dict) -> None:
        quorum = conf.get("quorum", {})
        if "device" not in quorum:
            raise CommandError("No QDevice configured!")
        del quorum["device"]

    _update_conf(etc, drop_device)
    for ip in members.values():
        run([*SSH, ip, "--", "rm", "-rf", QDEVICE_STATE])
    for ip in members.values():
        run([*SSH, ip, "systemctl", "stop", "corosync-qdevice"])
    run(["corosync-cfgtool", "-R"])
    print("\nRemoved Qdevice.")
    return 0


SUBCOMMANDS = {"setup": setup, "remove": remove}


def main(argv: list[str]) -> int:
    """`pvecm qdevice <setup|remove> ...` (errors are the caller's dispatch's to print)."""
    return options.dispatch("pvecm qdevice", SUBCOMMANDS, argv, (CommandError,))
