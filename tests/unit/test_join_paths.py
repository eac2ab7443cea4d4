"""The two `pvecm add` join paths: `--use_ssh`, or the peer's API certificate fingerprint
with its root password on stdin (what a real PVE installed with a password needs)."""

from __future__ import annotations

import json

import pytest

from harness.errors import CommandError, LabError, ParseError
from harness.formation import join
from harness.pve.certs import api_fingerprint
from tests.twins import Call, FakeNode

FP = ("C6:3B:5F:2A:9D:11:0E:77:42:AB:CD:EF:01:23:45:67:"
      "89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67")
CERTS = [
    {"filename": "pve-root-ca.pem", "fingerprint": "AA:BB", "subject": "/CN=Proxmox Virtual "
     "Environment/OU=x/O=PVE Cluster Manager CA"},
    {"filename": "pve-ssl.pem", "fingerprint": FP, "subject": "/OU=PVE Cluster Node/CN=node1"},
]


def peer(name: str, address: str) -> FakeNode:
    """A node that shows its certificates to `pvenode cert info` and takes any other
    command (the write probe, `pvecm add`) with exit code 0."""
    def answer(call: Call) -> str:
        if call.argv[:2] == ("pvenode", "cert"):
            assert call.argv == ("pvenode", "cert", "info", "--output-format", "json")
            return json.dumps(CERTS)
        return ""
    return FakeNode(name, answer, address=address)


def runs(node: FakeNode) -> list[tuple[tuple[str, ...], str | None]]:
    """Every command the node was given, with its stdin."""
    return [(c.argv, c.stdin) for c in node.calls]


def test_without_a_password_the_join_uses_ssh():
    first, joiner = peer("node1", "198.18.0.11"), peer("node2", "198.18.0.12")
    join(first, joiner, timeout_s=5)
    assert runs(joiner) == [(("pvecm", "add", "198.18.0.11", "--link0", "198.18.0.12",
                              "--use_ssh"), None)]


def test_with_a_password_the_join_pins_the_peer_certificate_and_sends_the_password():
    first, joiner = peer("node1", "198.19.0.11"), peer("node3", "198.19.0.13")
    join(first, joiner, timeout_s=5, root_password="lab-secret-1")
    argv, stdin = runs(joiner)[0]
    assert argv == ("pvecm", "add", "198.19.0.11", "--link0", "198.19.0.13",
                    "--fingerprint", FP)
    assert stdin == "lab-secret-1\n"  # one line: PVE reads it when stdin is no terminal
    assert "lab-secret-1" not in " ".join(argv)


def test_a_custom_proxy_certificate_is_the_one_pinned():
    custom = [*CERTS, {"filename": "pveproxy-ssl.pem", "fingerprint": "11:22:33"}]
    assert api_fingerprint(json.dumps(custom)) == "11:22:33"


@pytest.mark.parametrize("text, problem", [
    ("not json", "not JSON"),
    ('{"filename": "pve-ssl.pem"}', "expected a list"),
    (json.dumps(CERTS[:1]), "no pveproxy-ssl.pem or pve-ssl.pem"),
])
def test_unexpected_certificate_output_is_a_parse_error(text, problem):
    with pytest.raises(ParseError, match=problem):
        api_fingerprint(text)


def test_a_join_cut_short_by_the_joiners_reset_says_so():
    """`pvecm add` killed with its node (exit status -1, no output) is a reset, not a
    failed join: the error says which node reset."""
    first = peer("node1", "198.18.0.11")

    def killed(call: Call):
        if call.argv[:2] == ("pvecm", "add"):
            joiner.boot = "node2-boot-2"  # the node came back on a new boot
            return (-1, "", "")
        return ""
    joiner = FakeNode("node2", killed, address="198.18.0.12")
    with pytest.raises(LabError, match=r"node2 reset or went down during `pvecm add"):
        join(first, joiner, timeout_s=5)


def test_a_failed_join_on_the_same_boot_is_the_commands_error():
    first = peer("node1", "198.18.0.11")
    joiner = FakeNode("node2", lambda call: (2, "", "cluster config exists")
                      if call.argv[:2] == ("pvecm", "add") else "", address="198.18.0.12")
    with pytest.raises(CommandError, match="cluster config exists"):
        join(first, joiner, timeout_s=5)
