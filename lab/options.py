"""The lab options' values (lab/pytest_plugin.py), checked before any lab starts, and the
embedded lab's rules they share with lab/embedded/config.py: its name (``LAB_NAME``), its
subnet's size, a PVE version's shape (``PVE_VERSION``), --lab-formed (``FORMED``); and
--nodes (``NODES``, a part of the 1-9 that the config takes); the upgrade verb's --upgrade-to
(``is_upgrade``) and --upgrade-command. A bad value ends the run with harness.options.refuse's
message: the option, what is wrong, the fix; --emulation-bug (``emulation_bugs``), refused for
any lab but the embedded one with a ConfigError (the run stops the same way).
"""

from __future__ import annotations

import ipaddress
import re

from harness.errors import ConfigError
from harness.options import refuse

# the embedded lab's name: it names bridges, veths and namespaces (at most 15 characters)
LAB_NAME_MAX = 8  # it names bridges and veths (15 characters with their prefixes)
LAB_NAME = re.compile(rf"[a-z][a-z0-9]{{0,{LAB_NAME_MAX - 1}}}")
LAB_NAME_RULE = ("1-8 characters, lowercase letters and digits, starting with a letter "
                 "(it names the lab's bridges and namespaces)")
# what `pveversion` reports: major.minor[.patch]
PVE_VERSION = re.compile(r"[0-9]+\.[0-9]+(\.[0-9]+)?")
FLAVOUR_VERSIONS = {"8": "8.4.1", "9": "9.1.1"}  # --pve-flavour -> its default version
# --upgrade-to's default: the latest version the embedded lab knows (its newest flavour's)
LATEST_VERSION = FLAVOUR_VERSIONS[max(FLAVOUR_VERSIONS, key=int)]
MIN_SUBNET_ADDRESSES = 32  # a /27: the host, the storage server and up to 9 nodes
# --nodes: at least three (PVE's minimum for HA, and the stories' first cut, second cut and
# survivor); at most the nine addresses a lab's subnet plan has
NODES = range(3, 10)
DEFAULT_NODES = 3
# --lab-formed: "reuse" boots the cluster an earlier module formed (its ready state) when
# nothing that shapes it changed; "never" forms it in every module
FORMED = ("reuse", "never")
QDEVICE_NODES = 2  # two nodes only with a QDevice's third vote (pve-operations.md §1.3)


def lab_name(raw: str | None) -> str | None:
    """--lab-name: None when not given (the lab then takes main or the xdist worker id)."""
    if raw is None:
        return None
    if not LAB_NAME.fullmatch(raw):
        refuse("--lab-name", raw, "not a valid lab name",
               f"give {LAB_NAME_RULE}, e.g. --lab-name lab1")
    return raw


def lab_network(subnet: str, allowed_range: str) -> tuple[ipaddress.IPv4Network,
                                                           ipaddress.IPv4Network]:
    """--lab-subnet inside --lab-range: both IPv4 networks; the subnet at least a /27."""
    allowed = _network("--lab-range", allowed_range, "e.g. --lab-range 198.18.0.0/15")
    net = _network("--lab-subnet", subnet, "e.g. --lab-subnet 198.18.0.0/24")
    if net.num_addresses < MIN_SUBNET_ADDRESSES:
        refuse("--lab-subnet", subnet, f"{net} is too small for a lab",
               "give a /27 or larger (the default is a /24)")
    if not net.subnet_of(allowed):
        refuse("--lab-subnet", subnet, f"{net} lies outside --lab-range {allowed}",
               f"choose a subnet inside {allowed}, or widen --lab-range on purpose")
    return net, allowed


def _network(option: str, raw: str, example: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        refuse(option, raw, "not an IPv4 network", f"write it as address/prefix, {example}")
    if not isinstance(net, ipaddress.IPv4Network):
        refuse(option, raw, "an IPv6 network; the embedded lab uses IPv4",
               f"give an IPv4 network, {example}")
    return net


def pve_version(raw: str | None, flavour: str) -> str:
    """--pve-version for --pve-flavour: the flavour's default when not given; else a
    version such as 8.4.1 whose major is the flavour."""
    flavours = ", ".join(f"{f} ({v})" for f, v in FLAVOUR_VERSIONS.items())
    if raw is None:
        return FLAVOUR_VERSIONS[flavour]
    if not PVE_VERSION.fullmatch(raw):
        refuse("--pve-version", raw, "not a PVE version",
               f"write it as major.minor[.patch], e.g. --pve-version 8.4.1; the flavours "
               f"(--pve-flavour) are {flavours}")
    major = raw.split(".")[0]
    if major != flavour:
        if major in FLAVOUR_VERSIONS:
            fix = f"add --pve-flavour {major}, or give a {flavour}.x version"
        else:
            fix = f"give a {flavour}.x version; the flavours (--pve-flavour) are {flavours}"
        refuse("--pve-version", raw, f"not a version of --pve-flavour {flavour}", fix)
    return raw


def node_count(raw: str | None, kind: str = "embedded", *, qdevice: bool = False) -> int:
    """--nodes: the embedded lab's node count, 3 to 9 (3 when not given), or 2 together
    with --qdevice; refused for the other labs, whose nodes their YAML file names."""
    if raw is None:
        return DEFAULT_NODES
    if kind != "embedded":
        refuse("--nodes", raw, f"only the embedded lab takes a node count, not --lab {kind}",
               "drop --nodes: the libvirt lab's count is its YAML's `nodes`, an inventory's "
               "is its node list")
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count == QDEVICE_NODES and not qdevice:
        refuse("--nodes", raw, "two nodes have no quorum once one is lost; PVE supports "
               "them only with a QDevice's vote", "add --qdevice (a corosync-qnetd arbiter "
               "in the lab), or give --nodes 3 or more")
    if count not in NODES and not (count == QDEVICE_NODES and qdevice):
        refuse("--nodes", raw, f"not a node count from {NODES.start} to {NODES.stop - 1}",
               f"give {NODES.start} (PVE's minimum for HA) to {NODES.stop - 1}, e.g. "
               "--nodes 5, or --nodes 2 --qdevice")
    return count


def lab_formed(raw: str, kind: str = "embedded") -> str:
    """--lab-formed: reuse (the default) or never; only the embedded lab keeps a ready
    state of its own (the libvirt lab's is its `ready` snapshot)."""
    if raw not in FORMED:
        refuse("--lab-formed", raw, "not a formed-cluster mode",
               "give --lab-formed reuse (boot the cluster an earlier module formed) or "
               "--lab-formed never (form it in every module)")
    if kind != "embedded" and raw != "reuse":
        refuse("--lab-formed", raw, f"only the embedded lab takes it, not --lab {kind}",
               "drop --lab-formed: the libvirt lab reverts to its `ready` snapshot, an "
               "inventory's cluster exists already")
    return raw


def qdevice(flag: bool, kind: str = "embedded") -> bool:
    """--qdevice: the embedded lab's corosync-qnetd arbiter; refused for the other labs."""
    if flag and kind != "embedded":
        refuse("--qdevice", "on", f"only the embedded lab makes a qnetd host, not --lab {kind}",
               "drop --qdevice: set the QDevice up on that cluster yourself "
               "(pvecm qdevice setup)")
    return flag


def release(version: str) -> tuple[int, int]:
    """A PVE version's (major, minor): 9.1.1 -> (9, 1)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def is_upgrade(current: str, target: str) -> bool:
    """True when ``target`` is a newer major or minor release than ``current`` (8.4.1 ->
    9.0.3 or 8.3.2 -> 8.4.1; not 8.4.1 -> 8.4.5: a point release is no upgrade here)."""
    return release(target) > release(current)


def upgrade_to(raw: str | None, kind: str = "embedded", *,
               pve_version: str | None = None) -> str | None:
    """--upgrade-to: the version the embedded lab's ``upgrade`` switches a node to; a
    newer major or minor than --pve-version, of a flavour the lab emulates. None when not
    given (the lab then takes LATEST_VERSION, checked against each node as it upgrades);
    refused for the other labs, whose upgrade is the user's command."""
    if raw is None:
        return None
    if kind != "embedded":
        refuse("--upgrade-to", raw, f"only the embedded lab switches versions itself, not "
               f"--lab {kind}", "drop --upgrade-to and give --upgrade-command CMD (what "
               "upgrades a node, run on it over SSH)")
    if not PVE_VERSION.fullmatch(raw):
        refuse("--upgrade-to", raw, "not a PVE version",
               f"write it as major.minor[.patch], e.g. --upgrade-to {LATEST_VERSION}")
    if raw.split(".")[0] not in FLAVOUR_VERSIONS:
        refuse("--upgrade-to", raw, "not a version of a PVE generation the embedded lab "
               f"emulates ({', '.join(FLAVOUR_VERSIONS)})",
               f"give an {' or '.join(f'{f}.x' for f in FLAVOUR_VERSIONS)} version, e.g. "
               f"--upgrade-to {LATEST_VERSION}")
    if pve_version is not None and not is_upgrade(pve_version, raw):
        refuse("--upgrade-to", raw, f"not a newer major or minor release than the nodes' "
               f"{pve_version} (--pve-version)", "give a later version, e.g. --upgrade-to "
               f"{LATEST_VERSION}, or start the lab on an older --pve-version")
    return raw


def upgrade_command(raw: str | None, kind: str = "embedded") -> str | None:
    """--upgrade-command: what upgrades a node of the libvirt or inventory lab, run on it
    over SSH; refused for the embedded lab (it switches versions itself: --upgrade-to).
    Its text is never shown (it may carry a secret)."""
    if raw is None:
        return None
    if kind == "embedded":
        refuse("--upgrade-command", "...", "the embedded lab switches a node's version "
               "itself", "drop --upgrade-command; --upgrade-to VERSION chooses the version")
    if not raw.strip():
        refuse("--upgrade-command", raw, "an empty command", "give the shell command that "
               "upgrades one node, e.g. --upgrade-command 'apt-get update && "
               "DEBIAN_FRONTEND=noninteractive apt-get -y full-upgrade'")
    return raw


def emulation_bugs(raw: list[str] | None, kind: str = "embedded") -> tuple[str, ...]:
    """--emulation-bug NAME (repeatable): a self-test switch that breaks the emulated PVE's
    safety on purpose; its names are checked by lab/embedded/config.py (EMULATION_BUGS).
    Only the embedded lab emulates PVE: the other labs refuse it."""
    names = tuple(raw or ())
    if names and kind != "embedded":
        raise ConfigError(f"--emulation-bug {names[0]}: only the embedded lab emulates PVE "
                          f"and can break it on purpose, not --lab {kind}",
                          hint="drop --emulation-bug: it is a self-test switch of the "
                               "embedded lab, never for a real cluster")
    return names
