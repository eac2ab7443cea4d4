"""`pvecm` on an embedded node (pve-model.md §14.1).

create, add (the `--use_ssh` join path), addnode, apiver, status, nodes, expected, and
qdevice setup/remove (pvemu/cli/pvecm_qdevice.py). Status,
nodes and expected run the real `corosync-quorumtool`, so what they print and their exit
codes are corosync's own. The cluster's corosync.conf is read and written through EtcPve,
under PVE's `file-corosync_conf` cfs lock.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from pvemu import corosync_conf, nodeinfo
from pvemu.cli import options, systemctl
from pvemu.cli.errors import CommandError
from pvemu.etc_pve import CfsError, EtcPve

PVE_CONF = "corosync.conf"  # in /etc/pve
CONF_LOCK = "file-corosync_conf"  # cfs_lock_file('corosync.conf')
LOCAL_CONF = Path("/etc/corosync/corosync.conf")
AUTHKEY = Path("/etc/corosync/authkey")
JOIN_API_VERSION = 1
LINK_OPTS = {f"link{i}": "str" for i in range(8)}
_NODE_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$")


def quorumtool(*args: str) -> int:
    sys.stdout.flush()
    os.execvp("corosync-quorumtool", ["corosync-quorumtool", *args])
    return 1  # not reached


def local_addresses() -> set[str]:
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3}


def parse_links(opts: dict[str, object], default: str | None) -> dict[int, str]:
    links = {}
    for name, value in opts.items():
        if name in LINK_OPTS:
            address = str(value).split(",")[0].removeprefix("address=")
            links[int(name[4:])] = address
    if not links and default:
        links[0] = default
    return links


def write_pve_conf(etc: EtcPve, conf: dict) -> None:
    etc.write(PVE_CONF, corosync_conf.render(conf))


def read_pve_conf(etc: EtcPve) -> dict:
    text = etc.read(PVE_CONF)
    if text is None:
        raise CommandError(f"Error: Corosync config '{etc.display(PVE_CONF)}' does not exist "
                           "- is this node part of a cluster?")
    return corosync_conf.parse(text)


# -- create ----------------------------------------------------------------------------
def cmd_create(argv: list[str]) -> int:
    usage = "pvecm create <clustername> [OPTIONS]"
    args, opts = options.parse(argv, ["clustername"], {
        **LINK_OPTS, "nodeid": "int", "votes": "int", "token-coefficient": "int"}, usage)
    name = args["clustername"]
    if len(name) > 15 or not _NODE_NAME.match(name):
        raise options.UsageError(f"400 Parameter verification failed.\nclustername: value "
                                 f"does not match the regex pattern\n{usage}")
    etc = EtcPve()
    if etc.exists(PVE_CONF):
        raise CommandError(f"cluster config '{etc.display(PVE_CONF)}' already exists")
    info = nodeinfo.load()
    links = parse_links(opts, socket.gethostbyname(socket.gethostname()))
    local = local_addresses()
    for address in links.values():
        if address not in local:
            raise CommandError(f"cannot use IP '{address}', not found on local node!")
    major, minor = (int(x) for x in info.pve_version.split(".")[:2])
    coefficient = opts.get("token-coefficient")
    if coefficient is None and (major, minor) >= (9, 1):
        coefficient = 125
    if not AUTHKEY.exists():
        subprocess.run(["corosync-keygen", "-l", "-k", str(AUTHKEY)], check=True)
    conf = corosync_conf.create(name, info.name, int(opts.get("nodeid", 1)),
                                int(opts.get("votes", 1)), links,
                                token_coefficient=coefficient)  # type: ignore[arg-type]
    print(f"Writing corosync config to {etc.display(PVE_CONF)}")
    write_pve_conf(etc, conf)
    LOCAL_CONF.write_text(corosync_conf.render(conf))
    print("Restart corosync and cluster filesystem")
    if systemctl.main(["restart", "corosync", "pve-cluster"]) != 0:
        raise CommandError("restarting corosync and pve-cluster failed")
    return 0


# -- addnode (runs on a cluster member, called by the joining node) ---------------------
def cmd_addnode(argv: list[str]) -> int:
    usage = "pvecm addnode <node> [OPTIONS]"
    args, opts = options.parse(argv, ["node"], {
        **LINK_OPTS, "force": "bool", "nodeid": "int", "votes": "int", "new_node_ip": "str",
        "apiversion": "int"}, usage)
    name = args["node"]
    etc = EtcPve()
    etc.check_quorum()
    with etc.lock(CONF_LOCK):
        conf = read_pve_conf(etc)
        members = corosync_conf.nodes(conf)
        existing = next((n for n in members if n["name"] == name), None)
        if existing and not opts.get("force"):
            raise CommandError(f"Node {name} already defined")
        if existing:
            members.remove(existing)
        links = parse_links(opts, str(opts["new_node_ip"]) if "new_node_ip" in opts else None)
        if sorted(links) != corosync_conf.links_of(conf):
            raise CommandError(f"cluster uses links {corosync_conf.links_of(conf)}, the new node "
                       f"gave {sorted(links)}")
        for member in members:
            for number, address in links.items():
                if member.get(f"ring{number}_addr") == address:
                    raise CommandError(f"corosync: duplicate link{number} address '{address}' "
                               f"(already used by node '{member['name']}')")
        used = {int(m["nodeid"]) for m in members}
        nodeid = int(opts.get("nodeid") or (existing or {}).get("nodeid") or
                     min(set(range(1, len(used) + 2)) - used))
        if nodeid in used:
            raise CommandError(f"Nodeid {nodeid} is already used by another node")
        entry = {"name": name, "nodeid": str(nodeid), "quorum_votes": str(opts.get("votes", 1))}
        entry.update({f"ring{n}_addr": a for n, a in links.items()})
        members.append(entry)
        totem = conf["totem"]
        totem["config_version"] = str(int(totem.get("config_version", "0")) + 1)
        write_pve_conf(etc, conf)
    return 0


# -- add (the joining node; the --use_ssh path) -----------------------------------------
def ssh(peer: str, *command: str, binary: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ssh", f"root@{peer}", *command], capture_output=True,
                          text=not binary, timeout=60)
    if proc.returncode != 0:
        err = proc.stderr if not binary else proc.stderr.decode(errors="replace")
        raise CommandError(f"command 'ssh root@{peer} {' '.join(command)}' failed: exit code "
                   f"{proc.returncode}\n{err.strip()}")
    return proc


def assert_joinable(info: nodeinfo.NodeInfo, links: dict[int, str], force: bool) -> None:
    errors = []
    etc = EtcPve()
    if AUTHKEY.exists():
        errors.append(f"authentication key '{AUTHKEY}' already exists")
    if etc.exists(PVE_CONF):
        errors.append(f"cluster config '{etc.display(PVE_CONF)}' already exists")
    if etc.guest_configs(info.name):
        errors.append("this host already contains virtual guests")
    if subprocess.run(["corosync-quorumtool", "-l"], capture_output=True).returncode == 0:
        errors.append("corosync is already running, is this node already in a cluster?!")
    local = local_addresses()
    for address in links.values():
        if address not in local:
            errors.append(f"cannot use IP '{address}', not found on local node!")
    if errors:
        text = "\n".join(f"* {e}" for e in errors)
        if force:
            print(f"detected the following error(s):\n{text}\nWARNING : detected error but "
                  "forced to proceed", file=sys.stderr)
        else:
            raise CommandError(f"detected the following error(s):\n{text}\n"
                       "Check if node may join a cluster failed!")


def cmd_add(argv: list[str]) -> int:
    usage = "pvecm add <hostname> [OPTIONS]"
    args, opts = options.parse(argv, ["hostname"], {
        **LINK_OPTS, "fingerprint": "str", "force": "bool", "nodeid": "int", "votes": "int",
        "use_ssh": "bool"}, usage)
    etc = EtcPve()
    if etc.is_within(Path.cwd()):
        raise CommandError(f"please do not call 'pvecm add' from within {etc.display()}")
    if not opts.get("use_ssh"):
        raise CommandError("the join over the API needs pveproxy on port 8006, which this embedded "
                   "node does not run; join with 'pvecm add <peer> --use_ssh' instead")
    peer = args["hostname"]
    info = nodeinfo.load()
    links = parse_links(opts, None)
    assert_joinable(info, links, bool(opts.get("force")))
    apiver = ssh(peer, "pvecm", "apiver").stdout.strip()
    if apiver != str(JOIN_API_VERSION):
        raise CommandError(f"error during cluster join: unsupported join API version {apiver!r}")
    addnode = ["pvecm", "addnode", info.name, "--force", "1"]
    for number, address in sorted(links.items()):
        addnode += [f"--link{number}", address]
    if not links:
        addnode += ["--new_node_ip", info.address]
    for key in ("nodeid", "votes"):
        if key in opts:
            addnode += [f"--{key}", str(opts[key])]
    ssh(peer, *addnode)
    authkey = ssh(peer, "cat", str(AUTHKEY), binary=True).stdout
    conf_text = ssh(peer, "cat", etc.display(PVE_CONF)).stdout
    finish_join(info, authkey, conf_text)
    return 0


def finish_join(info: nodeinfo.NodeInfo, authkey: bytes, conf_text: str) -> None:
    AUTHKEY.write_bytes(authkey)
    AUTHKEY.chmod(0o400)
    LOCAL_CONF.write_text(conf_text)
    print("stopping pve-cluster service")
    if systemctl.main(["stop", "pve-cluster"]) != 0:
        raise CommandError("stopping pve-cluster failed")
    print("backup old database to local directory")
    # PVE's finish_join backs up and removes config.db: the node starts from an empty
    # database that the state exchange fills from the cluster (pve-faults.md §4.5)
    local = info.local_db
    for path, backup in ((local, local.with_name(local.name + ".bak")),
                         (Path(f"{local}.meta.json"), Path(f"{local}.bak.meta.json"))):
        if backup.is_dir():
            subprocess.run(["rm", "-rf", str(backup)], check=True)
        if path.exists():
            path.replace(backup)
    local.mkdir(parents=True, exist_ok=True)
    if info.pmxcfs == "shared":
        from pvemu import pmxcfs_shared

        pmxcfs_shared.use_cluster_database()
    if systemctl.main(["start", "corosync", "pve-cluster"]) != 0:
        raise CommandError("starting corosync and pve-cluster failed")
    print("waiting for quorum...", end="", flush=True)
    deadline = time.monotonic() + 60
    while subprocess.run(["corosync-quorumtool", "-s"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            print()
            raise CommandError("no quorum within 60 s after joining; check corosync's log "
                       "(/var/log/corosync/corosync.log)")
        time.sleep(0.5)
    print("OK")
    etc = EtcPve()
    deadline = time.monotonic() + 10
    while True:  # pmxcfs may need a moment to see the quorum
        try:
            for sub in ("qemu-server", "lxc", "priv"):
                etc.mkdir(f"nodes/{info.name}/{sub}")
            break
        except CfsError:
            if time.monotonic() > deadline:
                raise CommandError(f"{etc.display()} stayed read-only after quorum"
                                   ) from None
            time.sleep(0.2)
    print(f"successfully added node '{info.name}' to cluster.")


# -- status, nodes, expected: the real corosync-quorumtool ------------------------------
def cmd_status(argv: list[str]) -> int:
    options.parse(argv, [], {}, "pvecm status")
    totem = read_pve_conf(EtcPve()).get("totem", {})  # dies when in no cluster
    print("Cluster information")
    print("-------------------")
    print(f"{'Name:':<17s} {totem.get('cluster_name', 'UNKOWN?')}")
    print(f"{'Config Version:':<17s} {totem.get('config_version', -1)}")
    print(f"{'Transport:':<17s} {totem.get('transport', 'knet')}")
    print(f"{'Secure auth:':<17s} {totem.get('secauth', 'off')}")
    print()
    return quorumtool("-siH")


def cmd_nodes(argv: list[str]) -> int:
    options.parse(argv, [], {}, "pvecm nodes")
    read_pve_conf(EtcPve())  # dies when the node is in no cluster
    return quorumtool("-l")


def cmd_expected(argv: list[str]) -> int:
    """pve-cluster src/PVE/CLI/pvecm.pm `expected`: the parameter is checked by
    PVE::JSONSchema (pve-common src/PVE/JSONSchema.pm: `check_type`'s is_integer,
    /^[+-]?\\d+$/, before `minimum => 1`), then check_conf_exists, then it execs
    `corosync-quorumtool -e N`, whose refusal (e.g. N above the total votes on a quorate
    cluster: "Unable to set expected votes: CS_ERR_INVALID_PARAM") and exit code 1 are
    corosync's own (exec/votequorum.c, tools/corosync-quorumtool.c)."""
    usage = "pvecm expected <expected>"
    args, _ = options.parse(argv, ["expected"], {}, usage)
    value = args["expected"]
    if not re.fullmatch(r"[+-]?\d+", value):
        raise options.UsageError(f"400 Parameter verification failed.\nexpected: type check "
                                 f"('integer') failed - got '{value}'\n{usage}")
    if int(value) < 1:
        raise options.UsageError("400 Parameter verification failed.\nexpected: value must "
                                 f"have a minimum value of 1\n{usage}")
    read_pve_conf(EtcPve())  # PVE::Corosync::check_conf_exists: dies when in no cluster
    return quorumtool("-e", value)


def cmd_apiver(argv: list[str]) -> int:
    options.parse(argv, [], {}, "pvecm apiver")
    print(JOIN_API_VERSION)
    return 0


def cmd_qdevice(argv: list[str]) -> int:
    from pvemu.cli import pvecm_qdevice

    return pvecm_qdevice.main(argv)


COMMANDS = {"create": cmd_create, "add": cmd_add, "addnode": cmd_addnode,
            "apiver": cmd_apiver, "status": cmd_status, "nodes": cmd_nodes,
            "expected": cmd_expected, "qdevice": cmd_qdevice}


def main(argv: list[str] | None = None) -> int:
    return options.dispatch("pvecm", COMMANDS, sys.argv[1:] if argv is None else argv,
                            (CommandError, CfsError))

if __name__ == "__main__":
    # line by line, as a terminal gets it: `pvecm add` killed half way (seen once in CI,
    # exit status -1 and no output) then leaves the steps it got through in its output
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.exit(main())
