"""Typed views of `ha-manager status` and `pvesh get /cluster/ha/status/current`
(PVE 8 and PVE 9 layouts; pve-model.md §4.3, §12.2, §12.4).

`ha-manager status` prints one `<type> <status>` line per entry of the status API:

    quorum OK                                  | quorum No quorum on node 'node3'!
    master node1 (active, Fri Aug  1 11:59:57 2025)[ - <note>[ - <note>]]
    fencing armed (CRM watchdog active)        (PVE 9 only)
    lrm node1 (active, [watchdog active, ]Fri Aug  1 11:59:58 2025)
    lrm node3 (unable to read lrm status)
    service vm:100 (node1, started)

and exits 0. `--verbose` appends `full cluster state:` and JSON, which is ignored here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from harness.errors import ParseError

# Perl's scalar localtime: `Www Mmm dd hh:mm:ss yyyy`, the day padded with a space.
_TIME = r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}"
_MASTER = re.compile(rf"^(\S+) \((.+), ({_TIME})\)(.*)$")
_LRM = re.compile(rf"^(\S+) \((.+?)(?:, watchdog (\S+))?, ({_TIME})\)$")
_LRM_UNREADABLE = re.compile(r"^(\S+) \((unable to read lrm status)\)$")
_SERVICE = re.compile(r"^(\S+) \((\S+), ([^()]+)\)$")
_NO_QUORUM = re.compile(r"^No quorum on node '([^']+)'!$")
UNREADABLE = "unable to read lrm status"
VERBOSE_MARK = "full cluster state:"


@dataclass(frozen=True)
class MasterLine:
    node: str
    status: str  # active, old timestamp - dead?, detected time drift!, idle
    time: str  # as printed (the master's last manager_status write, node-local time)
    notes: tuple[str, ...] = ()  # " - " suffixes: "static load CRS", "disarmed, resource ..."


@dataclass(frozen=True)
class LrmLine:
    node: str
    status: str  # active, idle, <mode> mode, old timestamp - dead?, unable to read lrm status
    watchdog: str | None  # PVE 9: active, standby or released; None on PVE 8
    time: str | None  # None when the lrm status could not be read

    @property
    def readable(self) -> bool:
        return self.status != UNREADABLE


@dataclass(frozen=True)
class ServiceLine:
    sid: str
    node: str | None  # None where PVE prints `---` (no node known)
    state: str  # the verbose state (§4.3): started, fence, recovery, queued, starting, ...
    # only in /cluster/ha/status/current:
    crm_state: str | None = None  # absent while queued
    request_state: str | None = None
    max_restart: int | None = None
    max_relocate: int | None = None


@dataclass(frozen=True)
class HaStatus:
    quorum_ok: bool
    quorum_node: str | None  # the node named by "No quorum on node '<n>'!"; None if quorate
    master: MasterLine | None
    fencing: str | None  # PVE 9: "armed (CRM watchdog active)", ...; None on PVE 8
    lrms: dict[str, LrmLine] = field(default_factory=dict)
    services: dict[str, ServiceLine] = field(default_factory=dict)

    def stale_lrms(self, nodes) -> dict[str, str | None]:
        """Each of ``nodes`` whose LRM does not report: missing (None), unreadable, or
        "old timestamp - dead?" (its status); empty when every one reports."""
        return {n: self.lrms[n].status if n in self.lrms else None for n in nodes
                if n not in self.lrms or "dead" in self.lrms[n].status
                or not self.lrms[n].readable}

    @property
    def fencing_state(self) -> str | None:
        """armed, standby, disarming or disarmed (PVE 9); None on PVE 8."""
        return None if self.fencing is None else re.split(r"[ ,]", self.fencing, maxsplit=1)[0]


def _quorum(status: str, what: str, text: str) -> tuple[bool, str | None]:
    if status == "OK":
        return True, None
    m = _NO_QUORUM.match(status)
    if not m:
        raise ParseError(what, f"unexpected quorum status {status!r}", text)
    return False, m.group(1)


def _master(status: str, what: str, text: str) -> MasterLine:
    m = _MASTER.match(status)
    if not m:
        raise ParseError(what, f"unexpected master status {status!r}", text)
    node, state, time, suffix = m.groups()
    notes = tuple(suffix.split(" - ")[1:]) if suffix else ()
    if suffix and (not suffix.startswith(" - ") or not all(notes)):
        raise ParseError(what, f"unexpected text after the master's time: {suffix!r}", text)
    return MasterLine(node, state, time, notes)


def _lrm(status: str, what: str, text: str) -> LrmLine:
    m = _LRM_UNREADABLE.match(status)
    if m:
        return LrmLine(m.group(1), UNREADABLE, None, None)
    m = _LRM.match(status)
    if not m:
        raise ParseError(what, f"unexpected lrm status {status!r}", text)
    node, state, watchdog, time = m.groups()
    return LrmLine(node, state, watchdog, time)


def _service(status: str, what: str, text: str) -> ServiceLine:
    m = _SERVICE.match(status)
    if not m:
        raise ParseError(what, f"unexpected service status {status!r}", text)
    sid, node, state = m.groups()
    return ServiceLine(sid, None if node == "---" else node, state)


def parse_ha_manager_status(text: str) -> HaStatus:
    """`ha-manager status [--verbose]` (exit code 0) of PVE 8 or PVE 9."""
    what = "ha-manager status"
    quorum: tuple[bool, str | None] | None = None
    master: MasterLine | None = None
    fencing: str | None = None
    lrms: dict[str, LrmLine] = {}
    services: dict[str, ServiceLine] = {}
    for line in text.splitlines():
        if line.strip() == VERBOSE_MARK:
            break
        if not line.strip():
            continue
        kind, _, rest = line.partition(" ")
        if kind == "quorum" and quorum is None:
            quorum = _quorum(rest, what, text)
        elif kind == "master" and master is None:
            master = _master(rest, what, text)
        elif kind == "fencing" and fencing is None and rest:
            fencing = rest
        elif kind == "lrm":
            lrm = _lrm(rest, what, text)
            lrms[lrm.node] = lrm
        elif kind == "service":
            service = _service(rest, what, text)
            services[service.sid] = service
        else:
            raise ParseError(what, f"unexpected line {line!r}", text)
    if quorum is None:
        raise ParseError(what, "no 'quorum' line", text)
    return HaStatus(quorum[0], quorum[1], master, fencing, lrms, services)


def _optional_int(entry: dict, key: str, text: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    try:
        return int(value)  # Perl may hand numbers from a config file out as strings
    except (TypeError, ValueError):
        raise ParseError("/cluster/ha/status/current", f"{key} is {value!r}, not a number",
                         text) from None


def parse_ha_status_current(json_text: str) -> HaStatus:
    """`pvesh get /cluster/ha/status/current --output-format json` of PVE 8 or PVE 9."""
    what = "/cluster/ha/status/current"
    try:
        entries = json.loads(json_text)
    except ValueError as exc:
        raise ParseError(what, f"not JSON ({exc})", json_text) from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ParseError(what, "not a JSON array of objects", json_text)
    quorum: tuple[bool, str | None] | None = None
    master: MasterLine | None = None
    fencing: str | None = None
    lrms: dict[str, LrmLine] = {}
    services: dict[str, ServiceLine] = {}
    for entry in entries:
        kind, status = entry.get("type"), entry.get("status")
        if not isinstance(status, str):
            raise ParseError(what, f"entry {entry.get('id')!r} has no status text", json_text)
        if kind == "quorum":
            ok, node = _quorum(status, what, json_text)
            if "quorate" in entry and bool(_optional_int(entry, "quorate", json_text)) != ok:
                raise ParseError(what, f"quorate={entry['quorate']!r} contradicts status "
                                 f"{status!r}", json_text)
            quorum = ok, node
        elif kind == "master":
            master = _master(status, what, json_text)
        elif kind == "fencing":
            fencing = status
        elif kind == "lrm":
            lrm = _lrm(status, what, json_text)
            lrms[lrm.node] = lrm
        elif kind == "service":
            sid, state = entry.get("sid"), entry.get("state")
            if not isinstance(sid, str) or not isinstance(state, str):
                raise ParseError(what, f"service entry {entry.get('id')!r} lacks sid or state",
                                 json_text)
            node = entry.get("node")
            services[sid] = ServiceLine(
                sid, node if node not in ("", "---") else None, state,
                crm_state=entry.get("crm_state"), request_state=entry.get("request_state"),
                max_restart=_optional_int(entry, "max_restart", json_text),
                max_relocate=_optional_int(entry, "max_relocate", json_text))
        else:
            raise ParseError(what, f"unexpected entry type {kind!r}", json_text)
    if quorum is None:
        raise ParseError(what, "no quorum entry", json_text)
    return HaStatus(quorum[0], quorum[1], master, fencing, lrms, services)
