"""Fixtures for the chaos scenarios (lab-agnostic: everything goes through the harness)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.cluster import Cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("pvechaos").addoption(
        "--story-nodes", default=None, metavar="FIRST,SECOND,SURVIVOR",
        help="which nodes lose power first and second, and which survives "
             "(default: the cluster's nodes in name order)")


@dataclass(frozen=True)
class StoryNodes:
    first: str  # loses power first
    second: str  # loses power second
    survivor: str  # stays up, loses quorum, gets `pvecm expected 1`


@pytest.fixture(scope="module")
def story_nodes(cluster: Cluster, request: pytest.FixtureRequest) -> StoryNodes:
    option = request.config.getoption("story_nodes")
    names = option.split(",") if option else list(cluster.names)
    if len(names) != 3 or len(set(names)) != 3:
        raise pytest.UsageError(f"--story-nodes needs three distinct nodes, got {names}")
    for name in names:
        cluster.node(name)  # unknown names fail here, naming the valid ones
    return StoryNodes(*names)
