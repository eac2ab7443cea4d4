"""harness.pve.pvecm: `pvecm status` and `pvecm nodes` on every recorded case."""

from __future__ import annotations

import pytest

from harness.errors import ParseError
from harness.pve import Member, parse_pvecm_nodes, parse_pvecm_status

VERSIONS = ["pve8", "pve9"]
NODE1, NODE2, NODE3 = "198.18.60.11", "198.18.60.12", "198.18.60.13"  # the recording lab


# -- pvecm status ---------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_status_quorate_three_nodes(load, version):
    s = parse_pvecm_status(load(f"{version}/pvecm_status_quorate.txt"))
    assert s.cluster_name == "pvechaos"
    assert s.config_version == 3
    assert (s.transport, s.secure_auth) == ("knet", "on")
    assert (s.nodes, s.node_id, s.ring_id) == (3, 1, "1.d")
    assert s.quorate is True
    assert (s.expected_votes, s.highest_expected, s.total_votes, s.quorum) == (3, 3, 3, 2)
    assert s.activity_blocked is False
    assert s.flags == ("Quorate",)
    assert s.members == (Member(1, 1, NODE1, local=True), Member(2, 1, NODE2),
                         Member(3, 1, NODE3))
    assert s.member_names == (NODE1, NODE2, NODE3)


@pytest.mark.parametrize("version", VERSIONS)
def test_status_two_of_three_members_still_quorate(load, version):
    s = parse_pvecm_status(load(f"{version}/pvecm_status_two_of_three.txt"))
    assert s.quorate is True
    assert (s.nodes, s.ring_id) == (2, "1.11")
    assert (s.expected_votes, s.highest_expected, s.total_votes, s.quorum) == (3, 3, 2, 2)
    assert s.activity_blocked is False
    assert s.flags == ("Quorate",)
    assert s.members == (Member(1, 1, NODE1, local=True), Member(2, 1, NODE2))


@pytest.mark.parametrize("version", VERSIONS)
def test_status_isolated_node_is_inquorate_and_blocked(load, version):
    s = parse_pvecm_status(load(f"{version}/pvecm_status_isolated.txt"))
    assert s.quorate is False
    assert (s.nodes, s.node_id, s.ring_id) == (1, 1, "1.15")
    assert (s.expected_votes, s.highest_expected, s.total_votes, s.quorum) == (3, 3, 1, 2)
    assert s.activity_blocked is True
    assert s.flags == ()
    assert s.members == (Member(1, 1, NODE1, local=True),)


@pytest.mark.parametrize("version", VERSIONS)
def test_status_after_expected_1(load, version):
    s = parse_pvecm_status(load(f"{version}/pvecm_status_expected_1.txt"))
    assert s.quorate is True
    assert (s.expected_votes, s.highest_expected, s.total_votes, s.quorum) == (1, 1, 1, 1)
    assert s.activity_blocked is False
    assert s.flags == ("Quorate",)
    assert s.members == (Member(1, 1, NODE1, local=True),)


def test_status_docs_example(load):
    s = parse_pvecm_status(load("pve8/pvecm_status_docs.txt"))
    assert (s.cluster_name, s.config_version, s.ring_id, s.node_id) == ("mycluster", 3, "1.1a8",
                                                                       1)
    assert s.quorate and s.flags == ("Quorate",) and s.quorum == 2
    assert s.member_names == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert [m.local for m in s.members] == [True, False, False]


def test_status_with_qdevice_voting(load):
    s = parse_pvecm_status(load("pve8/pvecm_status_qdevice.txt"))
    assert s.quorate is True
    assert s.flags == ("Quorate", "Qdevice")
    assert (s.nodes, s.expected_votes, s.total_votes, s.quorum) == (2, 3, 3, 2)
    # the Qdevice column is the member's qdevice flags, and the 0x00000000 row is no member
    assert s.members == (Member(1, 1, "192.168.1.11", True, ("A", "V", "NMW")),
                         Member(2, 1, "192.168.1.12", False, ("A", "V", "NMW")))
    assert (s.has_qdevice, s.device_votes, s.device_voting) == (True, 1, True)
    assert s.configured_votes == 3


def test_status_with_qdevice_not_voting(load):
    """A registered QDevice that casts no vote: its row reads `Qdevice (votes 1)`."""
    s = parse_pvecm_status(load("pve8/pvecm_status_qdevice_no_vote.txt"))
    assert s.quorate is True
    assert s.flags == ("Quorate", "Qdevice")
    assert (s.expected_votes, s.total_votes) == (3, 2)
    assert s.members == (Member(1, 1, "192.168.1.11", True, ("A", "NV", "NMW")),
                         Member(2, 1, "192.168.1.12", False, ("A", "NV", "NMW")))
    assert (s.has_qdevice, s.device_votes, s.device_voting) == (True, 1, False)
    assert s.configured_votes == 3


# recorded on the embedded lab with the real corosync-qnetd / corosync-qdevice (--qdevice)
LAB1, LAB2 = "198.18.143.11", "198.18.143.12"


def test_status_recorded_with_a_voting_qdevice(load):
    s = parse_pvecm_status(load("pve8/pvecm_status_qdevice_lab.txt"))
    assert (s.quorate, s.flags, s.nodes) == (True, ("Quorate", "Qdevice"), 2)
    assert (s.expected_votes, s.highest_expected, s.total_votes, s.quorum) == (3, 3, 3, 2)
    assert s.members == (Member(1, 1, LAB1, True, ("A", "V", "NMW")),
                         Member(2, 1, LAB2, False, ("A", "V", "NMW")))
    assert (s.has_qdevice, s.device_votes, s.device_voting, s.configured_votes) == (
        True, 1, True, 3)


def test_status_recorded_with_qnetd_lost(load):
    """ffsplit votes NACK once disconnected: quorate on the nodes' 2 of 3 votes."""
    s = parse_pvecm_status(load("pve8/pvecm_status_qdevice_lab_qnetd_lost.txt"))
    assert (s.quorate, s.expected_votes, s.total_votes, s.quorum) == (True, 3, 2, 2)
    assert [m.qdevice for m in s.members] == [("A", "NV", "NMW")] * 2
    assert (s.device_votes, s.device_voting, s.configured_votes) == (1, False, 3)


@pytest.mark.parametrize("version", VERSIONS)
def test_status_without_qdevice_has_no_device(load, version):
    s = parse_pvecm_status(load(f"{version}/pvecm_status_quorate.txt"))
    assert (s.has_qdevice, s.device_votes, s.device_voting) == (False, 0, False)
    assert s.configured_votes == 3 and all(m.qdevice == () for m in s.members)


STATUS_FILES = [f"{v}/pvecm_status_{case}.txt" for v in VERSIONS
                for case in ("quorate", "two_of_three", "isolated", "expected_1")]
STATUS_FILES += ["pve8/pvecm_status_docs.txt", "pve8/pvecm_status_qdevice.txt",
                 "pve8/pvecm_status_qdevice_lab.txt",
                 "pve8/pvecm_status_qdevice_lab_qnetd_lost.txt"]


@pytest.mark.parametrize("name", STATUS_FILES)
def test_quorate_agrees_with_the_exit_code(load, exit_code, name):
    """corosync-quorumtool -s exits 0 when quorate and 2 when not."""
    s = parse_pvecm_status(load(name))
    assert exit_code(name) == (0 if s.quorate else 2)
    assert s.activity_blocked is (not s.quorate)
    assert ("Quorate" in s.flags) is s.quorate
    assert s.nodes == len(s.members)
    assert [m.nodeid for m in s.members if m.local] == [s.node_id]


# -- pvecm status: outputs that are not a status --------------------------------------
@pytest.mark.parametrize("name", ["pve8/pvecm_status_corosync_down.txt",
                                  "pve9/pvecm_status_corosync_down.txt",
                                  "pve8/pvecm_status_quorum_service_down.txt"])
def test_status_without_corosync_raises_parse_error(load, name):
    text = load(name)
    with pytest.raises(ParseError) as info:
        parse_pvecm_status(text)
    assert "Cannot initialize" in str(info.value)
    assert info.value.text == text


@pytest.mark.parametrize("text", ["", "\n\n", "garbage in, garbage out\nno colon here",
                                  "Permission denied (publickey).\n"])
def test_status_garbage_raises_parse_error_quoting_the_output(text):
    with pytest.raises(ParseError) as info:
        parse_pvecm_status(text)
    message = str(info.value)
    assert "pvecm status" in message
    assert (text.strip().splitlines()[0] if text.strip() else "(empty)") in message


def test_status_cut_before_the_membership_table_raises(load):
    text = load("pve8/pvecm_status_quorate.txt").split("Membership information")[0]
    with pytest.raises(ParseError, match="Membership"):
        parse_pvecm_status(text)


def test_status_with_an_unreadable_member_row_raises(load):
    text = load("pve8/pvecm_status_quorate.txt").replace("0x00000002          1",
                                                         "0xzz          one")
    with pytest.raises(ParseError, match="0xzz"):
        parse_pvecm_status(text)


@pytest.mark.parametrize("label", ["Config Version", "Nodes", "Node ID", "Expected votes",
                                   "Highest expected", "Total votes", "Quorum"])
def test_status_missing_a_numeric_field_raises_parse_error(load, label):
    lines = load("pve8/pvecm_status_quorate.txt").splitlines(keepends=True)
    text = "".join(line for line in lines if not line.startswith(label + ":"))
    with pytest.raises(ParseError):
        parse_pvecm_status(text)


@pytest.mark.parametrize("label", ["Config Version", "Nodes", "Node ID", "Total votes"])
def test_status_with_a_non_numeric_field_raises_parse_error(load, label):
    lines = load("pve8/pvecm_status_quorate.txt").splitlines(keepends=True)
    text = "".join(f"{label}: unknown\n" if line.startswith(label + ":") else line
                   for line in lines)
    with pytest.raises(ParseError):
        parse_pvecm_status(text)


# -- pvecm nodes -----------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_nodes_all_up(load, version):
    assert parse_pvecm_nodes(load(f"{version}/pvecm_nodes_quorate.txt")) == (
        Member(1, 1, "node1", local=True), Member(2, 1, "node2"), Member(3, 1, "node3"))


@pytest.mark.parametrize("version", VERSIONS)
def test_nodes_two_of_three(load, version):
    assert parse_pvecm_nodes(load(f"{version}/pvecm_nodes_two_of_three.txt")) == (
        Member(1, 1, "node1", local=True), Member(2, 1, "node2"))


@pytest.mark.parametrize("version", VERSIONS)
def test_nodes_isolated(load, version):
    assert parse_pvecm_nodes(load(f"{version}/pvecm_nodes_isolated.txt")) == (
        Member(1, 1, "node1", local=True),)


def test_nodes_docs_example(load):
    members = parse_pvecm_nodes(load("pve8/pvecm_nodes_docs.txt"))
    assert [(m.nodeid, m.name, m.local) for m in members] == [
        (1, "node1", True), (2, "node2", False), (3, "node3", False)]


def test_nodes_with_qdevice(load):
    assert parse_pvecm_nodes(load("pve8/pvecm_nodes_qdevice.txt")) == (
        Member(1, 1, "node1", True, ("A", "V", "NMW")), Member(2, 1, "node2", False,
                                                              ("A", "V", "NMW")))


@pytest.mark.parametrize("text", ["", "corosync-quorumtool: command not found\n",
                                  "Cannot initialize CMAP service\n"])
def test_nodes_garbage_raises_parse_error(text):
    with pytest.raises(ParseError) as info:
        parse_pvecm_nodes(text)
    assert "pvecm nodes" in str(info.value)
    if text:
        assert text.strip() in str(info.value)


def test_nodes_parser_rejects_a_status_table(load):
    """Hex ids belong to `pvecm status`; `pvecm nodes` prints decimal ones."""
    with pytest.raises(ParseError, match="0x00000001"):
        parse_pvecm_nodes(load("pve8/pvecm_status_quorate.txt"))
