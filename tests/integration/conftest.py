"""Integration tests run the real embedded lab: real corosync, real sshd, real SSH."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.embedded import EmbeddedLab
from lab.embedded.config import EmbeddedConfig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(
                    reason="integration tests run the embedded lab, which needs root"))


def leftovers(config: EmbeddedConfig) -> list[str]:
    """Everything of a lab that could outlive it, as readable strings."""
    hosts = (*config.node_names, config.QNETD)  # the nodes and the qnetd host (--qdevice)
    found = [f"netns {config.netns(n)}" for n in hosts
             if Path("/run/netns", config.netns(n)).exists()]
    if Path("/sys/class/net", config.bridge).exists():
        found.append(f"bridge {config.bridge}")
    found += [f"link {veth}" for veth in (*map(config.veth, config.node_names),
                                           config.qnetd_veth)
              if Path("/sys/class/net", veth).exists()]
    if config.lab_dir.exists():
        found.append(f"directory {config.lab_dir}")
    from lab.embedded.freeze import cgroup_path
    found += [f"cgroup {path}" for n in config.node_names
              if (path := cgroup_path(config.name, n)) is not None and path.exists()]
    marker = str(config.lab_dir)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(f"process {proc.name}: {cmdline.strip()}")
    return found


@contextlib.contextmanager
def running(lab: EmbeddedLab, *, formed: str | None = None) -> Iterator:
    """The lab started, as a Cluster (formed with that name when ``formed`` is given);
    closed afterwards, leaving nothing behind. For module-scoped fixtures."""
    from harness.cluster import Cluster
    from harness.formation import form_cluster

    cluster = Cluster(lab)
    try:
        lab.start()
        if formed is not None:
            form_cluster(cluster, formed)
        yield cluster
    finally:
        cluster.close()
        lab.close()
        assert leftovers(lab.config) == []


@pytest.fixture
def make_lab(request: pytest.FixtureRequest) -> Iterator:
    """Labs made by a test; each is closed afterwards, and must leave nothing behind."""
    labs: list[EmbeddedLab] = []

    def make(name: str, subnet: str, **options: object) -> EmbeddedLab:
        lab = EmbeddedLab(EmbeddedConfig(name=name, subnet=subnet, **options))
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.close()
        assert leftovers(lab.config) == []


@pytest.fixture
def ha_lab(request: pytest.FixtureRequest) -> Iterator:
    """make(name, prefix, timescale=..., pve_version=...) -> a formed HaLab with shared
    storage; closed afterwards, leaving nothing behind."""
    from harness.timescale import Timescale
    from lab.embedded.ha_testbed import boot_ha_lab

    made = []

    def make(name: str, prefix: str, *, timescale: float, **options: object):
        the_lab = boot_ha_lab(name, prefix, timescale=Timescale(timescale), **options)
        made.append(the_lab)
        return the_lab

    yield make
    for the_lab in made:
        the_lab.close()
        assert leftovers(the_lab.lab.config) == []
