"""The pvechaos pytest options' values, checked before any lab starts.

Each function takes an option's raw value (as pytest's parser gives it) and returns the
parsed value, or raises pytest.UsageError naming the option, what is wrong with the value
and the fix: pytest ends the run with exit code 4 and that message, no traceback. They are
called where the options are read (conftest.py and harness/plugin.py in
``pytest_configure``, scenarios/conftest.py) and depend on nothing but the harness, so the
plugin can move without them.

The rules the labs share live here once: the embedded lab's name (``LAB_NAME``) and a PVE
version's shape (``PVE_VERSION``); lab/embedded/config.py imports them.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import pytest

from harness.timescale import Timescale, TimescaleError

# the embedded lab's name: it names bridges, veths and namespaces (at most 15 characters)
LAB_NAME = re.compile(r"[a-z][a-z0-9]{0,7}")
LAB_NAME_RULE = ("1-8 characters, lowercase letters and digits, starting with a letter "
                 "(it names the lab's bridges and namespaces)")
# what `pveversion` reports: major.minor[.patch]
PVE_VERSION = re.compile(r"[0-9]+\.[0-9]+(\.[0-9]+)?")
FLAVOUR_VERSIONS = {"8": "8.4.1", "9": "9.1.1"}  # --pve-flavour -> its default version
# a PVE cluster name as `pvecm create` takes it: PVE's pve-node format, at most 15 characters
CLUSTER_NAME = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,13}[a-zA-Z0-9])?")
MIN_SUBNET_ADDRESSES = 32  # a /27: the host, the storage server and up to 9 nodes
STORY_NODES = 3  # first cut, second cut, survivor


def refuse(option: str, value: object, problem: str, fix: str) -> NoReturn:
    """Stop the run: ``--option 'value': problem`` and the fix on the next line."""
    shown = f"{value:g}" if isinstance(value, float) else repr(value)
    raise pytest.UsageError(f"{option} {shown}: {problem}\n  fix: {fix}")


def lab_name(raw: str | None) -> str | None:
    """--lab-name: None when not given (the lab then takes main or the xdist worker id)."""
    if raw is None:
        return None
    if not LAB_NAME.fullmatch(raw):
        refuse("--lab-name", raw, "not a valid lab name",
               f"give {LAB_NAME_RULE}, e.g. --lab-name lab1")
    return raw


def cluster_name(raw: str) -> str:
    """--cluster-name: a name `pvecm create` takes, refused before any lab starts."""
    if not CLUSTER_NAME.fullmatch(raw):
        refuse("--cluster-name", raw, "not a PVE cluster name",
               "give 1-15 letters, digits and hyphens, not starting or ending with a "
               "hyphen, e.g. --cluster-name pvechaos")
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


def timescale(raw: float | str) -> Timescale:
    """--timescale: the run's one Timescale (its range is harness/timescale.py's)."""
    try:
        factor: object = float(raw)
    except ValueError:
        factor = raw  # not a number: Timescale refuses it with its fix
    try:
        return Timescale(factor)  # type: ignore[arg-type]
    except TimescaleError as exc:
        refuse("--timescale", raw, f"not a timescale from {Timescale.MIN:g} to "
               f"{Timescale.MAX:g}", exc.hint or "")


def recovery_budget(raw: float | str) -> float:
    """--recovery-budget: seconds at timescale 1, a finite number > 0."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not seconds > 0:
        refuse("--recovery-budget", raw, "not a number of seconds > 0",
               "give the most time a recovery may take at timescale 1, e.g. "
               "--recovery-budget 120 (the default; it is scaled with --timescale)")
    return seconds


def story_nodes(raw: str | None, known: Iterable[str] | None = None) -> tuple[str, ...] | None:
    """--story-nodes FIRST,SECOND,SURVIVOR: three distinct names; None when not given.
    ``known`` (the cluster's nodes, once it is up) also refuses a name not among them."""
    if raw is None:
        return None
    names = tuple(name.strip() for name in raw.split(","))
    example = "e.g. --story-nodes node2,node3,node1"
    if len(names) != STORY_NODES or not all(names):
        got = f"{len(names)}" if all(names) else "an empty one"
        refuse("--story-nodes", raw, f"needs {STORY_NODES} node names, got {got}",
               f"give FIRST,SECOND,SURVIVOR: which nodes lose power first and second and "
               f"which survives, {example}")
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        refuse("--story-nodes", raw, f"names {', '.join(doubled)} twice; the three nodes "
               "must differ", f"give three different nodes, {example}")
    if known is not None:
        valid = sorted(known)
        unknown = [name for name in names if name not in valid]
        if unknown:
            refuse("--story-nodes", raw, f"{', '.join(unknown)} is not a node of this "
                   f"cluster", f"choose three of {', '.join(valid)}")
    return names


def metrics_file(raw: Path | str) -> Path:
    """--metrics-file: a file that can be written, in a directory that exists or can be
    made (checked without making it: a run that measures nothing writes nothing)."""
    path = Path(raw)
    fix = "give a writable path, e.g. --metrics-file reports/metrics.json"
    if path.is_dir():
        refuse("--metrics-file", str(raw), "is a directory", fix)
    if path.exists():
        try:  # appending nothing changes nothing, and fails where a write would
            if not os.access(path, os.W_OK):
                raise PermissionError("no permission")
            open(path, "a").close()  # noqa: SIM115
        except OSError as exc:
            refuse("--metrics-file", str(raw), f"cannot be written ({exc.strerror or exc})",
                   fix)
        return path
    parent = path.absolute().parent
    while not parent.exists():  # the nearest existing ancestor must let us make the rest
        parent = parent.parent
    if not parent.is_dir():
        refuse("--metrics-file", str(raw), f"{parent} is a file, not a directory", fix)
    try:  # root passes os.access everywhere: try it (an unnamed file, gone on close)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError("no permission")
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as exc:
        refuse("--metrics-file", str(raw), f"nothing can be written in {parent} "
               f"({exc.strerror or exc})", fix)
    return path


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
