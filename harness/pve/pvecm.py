"""Typed views of `pvecm status` and `pvecm nodes` (PVE 8 and PVE 9 layouts).

`pvecm status` prints a "Cluster information" header of its own, then the output of
`corosync-quorumtool -siH`; the exit code is the quorumtool's (0 quorate, 2 not quorate).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ParseError


@dataclass(frozen=True)
class Member:
    nodeid: int
    votes: int
    name: str  # an address with `-i` (pvecm status), a node name in `pvecm nodes`
    local: bool = False
    # the Qdevice column (pve-operations.md §1.4), e.g. ("A", "V", "NMW"); () without one:
    # A/NA the node's qdevice daemon alive, V/NV the device votes for it, NR unregistered
    qdevice: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuorumStatus:
    cluster_name: str
    config_version: int
    transport: str
    secure_auth: str
    nodes: int
    node_id: int
    ring_id: str
    quorate: bool
    expected_votes: int
    highest_expected: int
    total_votes: int
    quorum: int
    activity_blocked: bool
    flags: tuple[str, ...]
    members: tuple[Member, ...]
    # the QDevice's own row (0x00000000 ... Qdevice): its votes, whether voting or not
    # (`0 ... Qdevice (votes N)` when it casts no vote for this node), and whether it
    # casts them for this node now; 0 / False without a QDevice
    device_votes: int = 0
    device_voting: bool = False

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    @property
    def has_qdevice(self) -> bool:
        """A QDevice is registered (votequorum's `Qdevice` flag)."""
        return "Qdevice" in self.flags

    @property
    def configured_votes(self) -> int:
        """The votes of the whole cluster as configured: members' plus the device's (what
        `Expected votes` returns to once the cluster is whole)."""
        return sum(m.votes for m in self.members) + self.device_votes


_FIELD = re.compile(r"^([A-Za-z][A-Za-z ]*?):\s?(.*)$")
# Rows: node id, votes, the Qdevice state (A,V,NMW / NR) when a QDevice is set up, the
# name, then " (local)" on this node's row or " (votes N)" on the QDevice's own row.
_ROW_TAIL = r"\s+(?:([A-Z]+(?:,[A-Z]+)*)\s+)?(\S+)(?:\s+\((local|votes \d+)\))?\s*$"
_MEMBER_HEX = re.compile(r"^\s*0x([0-9a-fA-F]{8})\s+(\d+)" + _ROW_TAIL)
_MEMBER_DEC = re.compile(r"^\s*(\d+)\s+(\d+)" + _ROW_TAIL)


def _fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith((" ", "0x")):
            continue
        m = _FIELD.match(line)
        if m:
            fields.setdefault(m.group(1).strip(), m.group(2))
    return fields


def _rows(text: str, pattern: re.Pattern[str], base: int, what: str
          ) -> tuple[tuple[Member, ...], tuple[int, bool]]:
    """The member rows, and the QDevice row's (votes, voting for this node)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("Nodeid"))
    except StopIteration:
        raise ParseError(what, "no 'Membership information' table", text) from None
    members = []
    device = (0, False)
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        m = pattern.match(line)
        if not m:
            raise ParseError(what, f"unexpected membership row {line!r}", text)
        nodeid, votes, flags, name, note = m.groups()
        if name == "Qdevice" and int(nodeid, base) == 0:  # the device's row: no member
            if note and note.startswith("votes "):
                device = (int(note.split()[1]), False)
            else:
                device = (int(votes), int(votes) > 0)
            continue
        members.append(Member(int(nodeid, base), int(votes), name, note == "local",
                              tuple(flags.split(",")) if flags else ()))
    return tuple(members), device


def _members(text: str, pattern: re.Pattern[str], base: int, what: str) -> tuple[Member, ...]:
    return _rows(text, pattern, base, what)[0]


def _int(fields: dict[str, str], key: str, text: str) -> int:
    """A numeric field; `0x`-prefixed values (Node ID with -H) are hexadecimal."""
    raw = fields.get(key)
    if raw is None:
        raise ParseError("pvecm status", f"field {key!r} missing", text)
    try:
        return int(raw.split()[0], 0 if raw.strip().startswith("0x") else 10)
    except (ValueError, IndexError):
        raise ParseError("pvecm status", f"field {key!r} is {raw!r}, not a number",
                         text) from None


def parse_pvecm_status(text: str) -> QuorumStatus:
    fields = _fields(text)
    if "Quorate" not in fields:
        raise ParseError("pvecm status", "no 'Quorate:' line (is corosync running?)", text)
    quorum_line = fields.get("Quorum", "")
    members, (device_votes, device_voting) = _rows(text, _MEMBER_HEX, 16, "pvecm status")
    return QuorumStatus(
        cluster_name=fields.get("Name", "").strip(),
        config_version=_int(fields, "Config Version", text),
        transport=fields.get("Transport", "").strip(),
        secure_auth=fields.get("Secure auth", "").strip(),
        nodes=_int(fields, "Nodes", text),
        node_id=_int(fields, "Node ID", text),
        ring_id=fields.get("Ring ID", "").strip(),
        quorate=fields["Quorate"].strip() == "Yes",
        expected_votes=_int(fields, "Expected votes", text),
        highest_expected=_int(fields, "Highest expected", text),
        total_votes=_int(fields, "Total votes", text),
        quorum=_int(fields, "Quorum", text),
        activity_blocked="Activity blocked" in quorum_line,
        flags=tuple(fields.get("Flags", "").split()),
        members=members,
        device_votes=device_votes,
        device_voting=device_voting,
    )


def parse_pvecm_nodes(text: str) -> tuple[Member, ...]:
    return _members(text, _MEMBER_DEC, 10, "pvecm nodes")
