"""The pvechaos pytest plugin's composition root: the only place where harness/ and lab/
meet in a test run.

`pip install pvechaos` registers this module (the ``pytest11`` entry point named
``lab.pytest_plugin``; this repository's conftest.py names it too), and with it the
lab-agnostic plugin (harness/plugin.py: stories, metrics, report), the public fixtures
(harness/fixtures.py) and the report's evidence (harness/evidence.py). Here: the options
that choose and configure the lab, and the ``lab`` fixture, a freshly booted lab for each
test module, so every story starts from a pristine cluster. Turn the plugin off with
``-p no:lab.pytest_plugin``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterator

import pytest

from harness.errors import LabError, PvechaosError
from harness.lab_api import Lab
from lab import options

# imported by pytest from this list, not above: a module imported before pytest registers
# it as a plugin is not assertion-rewritten (PytestAssertRewriteWarning)
pytest_plugins = ["harness.plugin", "harness.fixtures", "harness.evidence"]

log = logging.getLogger("pvechaos.lab")


def run_timescale(config: pytest.Config):
    from harness.plugin import run_timescale as the_run_timescale

    return the_run_timescale(config)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pvechaos")
    group.addoption("--lab", default="embedded", choices=("embedded", "libvirt", "inventory"),
                    help="lab kind (default: %(default)s)")
    group.addoption("--lab-config", default=None, metavar="FILE",
                    help="libvirt lab: its YAML file (README: 'Nested PVE on a KVM runner')")
    group.addoption("--inventory", default=None, metavar="FILE",
                    help="inventory lab: the existing cluster's YAML file (README: 'An "
                         "existing cluster')")
    group.addoption("--destructive", action="store_true", default=False,
                    help="inventory lab: allow power cuts of the existing cluster's nodes "
                         "(also requires the cluster name read from the nodes to match)")
    group.addoption("--lab-name", default=None,
                    help="embedded lab name: 1-8 lowercase letters/digits, starting with a "
                         "letter (default: main; under xdist worker gwN's lab is gwN, or "
                         "the name ending in N)")
    group.addoption("--nodes", default=None, metavar="N",
                    help="embedded lab: how many nodes, 3 to 9; each has one vote, expected "
                         "votes are their count, as PVE sets them (default: 3)")
    group.addoption("--qdevice", action="store_true", default=False,
                    help="embedded lab: add a QDevice arbiter, the real corosync-qnetd in "
                         "a namespace of its own (lab.qnetd_address()); needed for --nodes 2")
    group.addoption("--lab-subnet", default="198.18.0.0/24",
                    help="embedded lab subnet; xdist worker N uses the N+1-th next one "
                         "(default: %(default)s)")
    group.addoption("--lab-range", default="198.18.0.0/15",
                    help="addresses the embedded lab may use at all (default: %(default)s)")
    group.addoption("--pve-flavour", choices=("8", "9"), default="8",
                    help="PVE generation of embedded nodes: 8 (groups.cfg, 8.4.1) or 9 "
                         "(rules.cfg, status with fencing lines, 9.1.1) (default: %(default)s)")
    group.addoption("--pve-version", default=None,
                    help="exact PVE version embedded nodes report; its major version must "
                         "match --pve-flavour (default: 8.4.1 or 9.1.1)")
    group.addoption("--node-version", action="append", default=[], metavar="NODE=VERSION",
                    help="PVE version of one embedded node (a mixed-version cluster)")
    group.addoption("--upgrade-to", default=None, metavar="VERSION",
                    help="embedded lab: the version lab.upgrade(node) switches a node to; a "
                         "newer major or minor than the node runs (default: "
                         f"{options.LATEST_VERSION})")
    group.addoption("--upgrade-command", default=None, metavar="CMD",
                    help="libvirt and inventory labs: the shell command lab.upgrade(node) "
                         "runs on the node over SSH before rebooting it (also the lab "
                         "YAML's upgrade_command); without it they refuse to upgrade")
    group.addoption("--lab-formed", default="reuse", metavar="reuse|never",
                    help="embedded lab: reuse boots the cluster an earlier module formed "
                         "(its ready state, kept while node names, addresses, versions, "
                         "cluster name and emulator code are the same) instead of forming "
                         "it; never forms it in every module. A module marked "
                         "`formation` always forms it (default: %(default)s)")
    group.addoption("--emulation-bug", action="append", default=[], metavar="NAME",
                    help="embedded lab: a self-test switch that breaks PVE's safety on "
                         "purpose, so the chaos soak's self-test finds and shrinks a real "
                         "bug; never for anything else. double-start: the CRM recovers a "
                         "lost node's guests with no fence delay and no agent lock, so a "
                         "cut node's guest runs twice. Repeatable; other labs refuse it")
    group.addoption("--keep-lab", action="store_true", default=False,
                    help="embedded lab: when a test of a module fails, leave its lab "
                         "running (faults undone) and print how to reach it; `pvechaos "
                         "lab down --name NAME` removes it")


_FAILED_MODULES = pytest.StashKey[set]()  # module nodes (a --repeat each) with a failed test


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    report = yield
    module = item.getparent(pytest.Module)
    if report.failed and module is not None:
        item.config.stash.setdefault(_FAILED_MODULES, set()).add(module.nodeid)
    return report


def worker_index(config: pytest.Config) -> int | None:
    """xdist worker gwN's N, None in a run without -n."""
    worker = getattr(config, "workerinput", {}).get("workerid")  # "gw0", "gw1", ...
    return int(worker[2:]) if worker else None


def lab_options(config: pytest.Config, *, forms: bool = False) -> dict[str, object]:
    """The lab's options from the command line; ``forms``: the module tests formation
    (marker ``formation``), so an embedded lab forms its cluster afresh."""
    index = worker_index(config)
    kind = config.getoption("lab")
    qdevice = options.qdevice(config.getoption("qdevice"), kind)
    nodes = options.node_count(config.getoption("nodes"), kind, qdevice=qdevice)
    formed = options.lab_formed(config.getoption("lab_formed"), kind)
    command = options.upgrade_command(config.getoption("upgrade_command"), kind)
    bugs = options.emulation_bugs(config.getoption("emulation_bug"), kind)
    if kind != "embedded":  # refused there: their upgrade is the user's command
        options.upgrade_to(config.getoption("upgrade_to"), kind)
    if kind == "libvirt":  # worker gwN's lab is lab N (a plain run uses lab 0)
        return {"lab_config": config.getoption("lab_config"), "worker": index or 0,
                "timescale": run_timescale(config), "upgrade_command": command}
    if kind == "inventory":
        return {"inventory": config.getoption("inventory"),
                "destructive": config.getoption("destructive"),
                "timescale": run_timescale(config), "upgrade_command": command}
    pve_version = options.pve_version(config.getoption("pve_version"),
                                      config.getoption("pve_flavour"))
    base, _ = options.lab_network(config.getoption("lab_subnet"), config.getoption("lab_range"))
    offset = 0 if index is None else index + 1
    subnet = ipaddress.ip_network(
        (int(base.network_address) + offset * base.num_addresses, base.prefixlen))
    versions = {}
    for item in config.getoption("node_version"):
        node, sep, version = item.partition("=")
        if not sep:
            raise pytest.UsageError(f"--node-version {item!r}: write it as NODE=VERSION, "
                                    "e.g. --node-version node3=9.0.3")
        versions[node] = version
    return {
        "name": worker_lab_name(options.lab_name(config.getoption("lab_name")), index),
        "subnet": str(subnet),
        "allowed_range": config.getoption("lab_range"),
        "node_count": nodes,
        "qdevice": qdevice,
        "pve_version": pve_version,
        "upgrade_to": options.upgrade_to(config.getoption("upgrade_to"), kind,
                                         pve_version=pve_version),
        "node_versions": versions,
        "timescale": run_timescale(config),
        "cluster_name": config.getoption("cluster_name"),
        "formed": "never" if forms else formed,
        "emulation_bugs": bugs,
    }


def worker_lab_name(name: str | None, index: int | None) -> str:
    """The embedded lab's name: --lab-name or ``main``; under xdist worker gwN's is
    ``gwN``, or the given name ending in N (cut to the characters a name may have), so
    workers never share a lab, named or not."""
    if index is None:
        return name or "main"
    suffix = str(index)
    if name is None:
        return f"gw{suffix}"
    return name[:options.LAB_NAME_MAX - len(suffix)] + suffix


def make_lab(config: pytest.Config, *, forms: bool = False) -> Lab:
    from lab import open_lab

    return open_lab(config.getoption("lab"), **lab_options(config, forms=forms))


@pytest.hookimpl(trylast=True)  # after harness.plugin made the run's timescale
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "formation: the module tests the cluster's formation: "
                            "its embedded lab forms the cluster afresh, never booting a saved "
                            "ready state (--lab-formed)")
    try:
        make_lab(config)  # validates every lab option before any test runs
    except PvechaosError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A freshly booted lab for this module (cluster not formed: the ``cluster`` fixture
    does that, unless the lab booted a cluster formed before: --lab-formed); removed
    afterwards. The embedded lab by default; --lab chooses."""
    forms = request.node.get_closest_marker("formation") is not None
    the_lab = make_lab(request.config, forms=forms)
    started = time.monotonic()
    log.info("starting the %s lab for %s", the_lab.kind, request.module.__name__)
    try:
        the_lab.start()
    except PvechaosError as exc:
        raise LabError(f"the lab did not start: {exc}") from exc
    log.info("the %s lab is up (%.1f s): %s", the_lab.kind, time.monotonic() - started,
             ", ".join(n.name for n in the_lab.nodes()))
    from harness.plugin import record_environment

    record_environment(request.config, the_lab.describe())
    try:
        yield the_lab
    finally:
        failed = request.node.nodeid in request.config.stash.get(_FAILED_MODULES, set())
        if not (failed and request.config.getoption("keep_lab") and keep(request, the_lab)):
            log.info("removing the %s lab", the_lab.kind)
            the_lab.close()


def keep(request: pytest.FixtureRequest, the_lab: Lab) -> bool:
    """--keep-lab after a failed test: leave an embedded lab running and say how to reach
    it (lab/embedded/detached.py, as `pvechaos lab up` does); False for other labs (a
    libvirt lab is removed as usual; an inventory cluster is never removed)."""
    from lab.embedded import EmbeddedLab

    if not isinstance(the_lab, EmbeddedLab):
        return False
    from lab.embedded import detached

    try:
        running = detached.leave_running(the_lab, request.config.getoption("cluster_name"),
                                         None)
    except (PvechaosError, OSError) as exc:
        log.warning("--keep-lab: the lab could not be left running (%s); removing it", exc)
        return False
    lines = [f"pvechaos: --keep-lab: {request.module.__name__} failed; its {line}"
             if i == 0 else line for i, line in enumerate(detached.how_to_reach(running))]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    for line in lines:
        log.warning("%s", line)
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
    return True
