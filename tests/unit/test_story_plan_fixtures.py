"""The ``story_nodes`` and ``quorum_plan`` fixtures (harness/fixtures.py) on clusters of
two to seven nodes, without a lab: a fake cluster answers `pvecm status` with its votes.
Three nodes or more get a plan; fewer, or a QDevice vote, skip the story with the reason;
a --story-nodes name the cluster lacks is an error of the step that uses it."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

STORY = """
import pytest

from harness.pve import Member, QuorumStatus


class FakeNode:
    def __init__(self, cluster):
        self.cluster = cluster

    def quorum(self, *, timeout_s):
        c = self.cluster
        members = tuple(Member(i, c.votes, f"198.18.77.{10 + i}")
                        for i, _ in enumerate(c.names, start=1))
        total = c.votes * len(c.names)
        return QuorumStatus("pvechaos", 1, "knet", "on", len(c.names), 1, "1.8", True,
                            total + c.qdevice, total + c.qdevice, total + c.qdevice,
                            (total + c.qdevice) // 2 + 1, False, ("Quorate",), members)


class FakeCluster:
    def __init__(self, count, votes, qdevice):
        self.names = tuple(f"node{i}" for i in range(1, count + 1))
        self.votes, self.qdevice = votes, qdevice

    def node(self, name):
        return FakeNode(self)

    def name_of(self, member):
        return f"node{int(member.rsplit('.', 1)[1]) - 10}"


@pytest.fixture(scope="module")
def cluster():
    return FakeCluster(COUNT, VOTES, QDEVICE)


def test_story_nodes(story_nodes):
    print("STORY", story_nodes.first, story_nodes.second, story_nodes.survivor)


def test_plan(quorum_plan):
    print("PLAN", quorum_plan.describe())
"""


def run(pytester: pytest.Pytester, tmp_path, count: int, *args: str, votes: int = 1,
        qdevice: int = 0) -> pytest.RunResult:
    pytester.makepyfile(test_story=STORY.replace("COUNT, VOTES, QDEVICE",
                                                 f"{count}, {votes}, {qdevice}"))
    return pytester.runpytest("-p", "harness.plugin", "-p", "harness.fixtures", "-s", "-rs",
                              f"--metrics-file={tmp_path / 'm.json'}", "-p",
                              "no:cacheprovider", *args)


def test_five_nodes_are_cut_in_name_order_until_two_remain(pytester, tmp_path):
    result = run(pytester, tmp_path, 5)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*STORY node1 node2 node5*",
        "*PLAN cut node1: node2, node3, node4, node5 hold 4 of 5 votes, quorum 3: quorate; "
        "cut node2: *quorate; cut node3: node4, node5 hold 2 of 5 votes, quorum 3: quorum "
        "lost; pvecm expected 2 on node5*"])


def test_seven_nodes_with_story_nodes(pytester, tmp_path):
    result = run(pytester, tmp_path, 7, "--story-nodes", "node6,node2,node1")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*STORY node6 node2 node1*",
        "*PLAN cut node6: *cut node2: *cut node3: *cut node4: node1, node5, node7 hold 3 of "
        "7 votes, quorum 4: quorum lost; pvecm expected 3 on node1*"])


def test_two_nodes_skip_the_story_with_the_reason(pytester, tmp_path):
    result = run(pytester, tmp_path, 2)
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*the cluster lacks the story's shape: the cluster has 2 "
                                 "node(s) (node1, node2); the stories need at least 3*"])


def test_a_qdevice_vote_skips_the_quorum_plan_only(pytester, tmp_path):
    result = run(pytester, tmp_path, 4, qdevice=1)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*the cluster lacks the quorum story's shape: expected "
                                 "votes 5 are not the nodes' 4: a QDevice*"])


def test_two_votes_each_double_the_arithmetic(pytester, tmp_path):
    result = run(pytester, tmp_path, 3, votes=2)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*cut node2: node3 hold 2 of 6 votes, quorum 4: quorum "
                                 "lost; pvecm expected 2 on node3*"])


def test_a_story_node_the_cluster_lacks_is_an_error_naming_its_nodes(pytester, tmp_path):
    result = run(pytester, tmp_path, 5, "--story-nodes", "node1,node2,node9")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*node9 is not a node of this cluster*",
                                 "*choose three of node1, node2, node3, node4, node5*"])
