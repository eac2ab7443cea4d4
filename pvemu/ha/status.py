"""`ha-manager status` and `/cluster/ha/status/*` from the HA status files
(pve-model.md §4.3, §12.2, §12.4; PVE's `PVE::API2::HA::Status` and `PVE::CLI::ha_manager`).

Pure functions: the caller reads the files and passes them in. Flavour 8 is the
pve-ha-manager 4.0.7 layout; flavour 9 adds the `fencing` entry and the lrm watchdog field
(HEAD 5.2.0).
"""

from __future__ import annotations

import json
import time

from pvemu.timing import Timing

# States count_active_services skips (§7.4).
_INACTIVE = ("stopped", "freeze", "error", "request_start")


def perl_localtime(epoch: float) -> str:
    """Perl's scalar localtime: `Www Mmm dd hh:mm:ss yyyy`, the day padded with a space."""
    t = time.localtime(int(epoch))
    return (time.strftime("%a %b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", t))


def perl_pretty_json(data: object) -> str:
    """Perl JSON `to_json($data, {pretty => 1, canonical => 1})`: 3-space indent,
    `"key" : value`, sorted keys, trailing newline."""
    return _pretty(data, 0) + "\n"


def _pretty(data: object, level: int) -> str:
    pad, inner = "   " * level, "   " * (level + 1)
    if isinstance(data, dict):
        if not data:
            return "{}"
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)} : {_pretty(data[k], level + 1)}"
                 for k in sorted(data)]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(data, list | tuple):
        if not data:
            return "[]"
        return "[\n" + ",\n".join(inner + _pretty(v, level + 1) for v in data) + "\n" + pad + "]"
    return json.dumps(data, ensure_ascii=False)


def timestamp_to_status(now: float, timestamp: float, timing: Timing) -> str:
    diff = now - timestamp
    if diff > timing.status_stale:
        return "old timestamp - dead?"
    if diff < -timing.status_future:
        return "detected time drift!"
    return "active"


def count_active_services(service_status: dict, node: str, flavour: int) -> int:
    """PVE's count_active_services (§7.4); HEAD (flavour 9) also counts services whose
    target is the node."""
    count = 0
    for sd in service_status.values():
        state = sd.get("state")
        if state is None or state in _INACTIVE:
            continue
        if sd.get("node") == node or (flavour >= 9 and sd.get("target") == node):
            count += 1
    return count


def verbose_service_state(ss: dict | None, sc: dict | None) -> str:
    """PVE's get_verbose_service_state (§4.3)."""
    if not sc:
        return "deleting"
    req = sc.get("state") or "ignored"
    if req == "ignored":
        return "ignored"
    if sc.get("node") is None:
        return "not found"
    if ss is None:
        return "queued"
    cur = ss.get("state")
    if cur is None:
        return "queued"
    state = cur
    if cur == "stopped":
        if req == "started":
            state = "starting"
        elif req == "disabled":
            state = "disabled"
    elif cur == "started":
        if req in ("stopped", "disabled"):
            state = "stopping"
        if not ss.get("running"):
            state = "starting"
    elif cur == "error" and req == "disabled":
        state = "clearing error flag"
    return state


def current(manager_status: dict, lrm_status: dict[str, dict | None],
            resources: dict[str, dict], quorate: bool, local_node: str, now: float,
            timing: Timing, flavour: int, crs_ha: str = "basic") -> list[dict]:
    """The array `GET /cluster/ha/status/current` returns (§12.4).

    lrm_status maps node -> its lrm_status dict, or None when unreadable; the lrm entries
    are made for the nodes of manager_status.node_status, as PVE does. resources is
    resources.cfg with defaults (config.resources_with_defaults). crs_ha is datacenter.cfg
    `crs: ha=`; a non-basic value gives the ` - <mode> load CRS` master suffix."""
    res: list[dict] = [{"id": "quorum", "type": "quorum", "node": local_node,
                        "status": "OK" if quorate else f"No quorum on node '{local_node}'!",
                        "quorate": 1 if quorate else 0}]
    ms = manager_status or {}
    master, stamp = ms.get("master_node"), ms.get("timestamp")
    disarm = ms.get("disarm") if flavour >= 9 else None
    if master is not None and stamp is not None:
        state = timestamp_to_status(now, stamp, timing)
        if quorate and state != "active" and not resources:
            state = "idle"
        extra = ""
        if disarm:
            extra += f" - {disarm.get('state')}, resource mode: {disarm.get('mode')}"
        if crs_ha and crs_ha != "basic":
            extra += f" - {crs_ha} load CRS"
        res.append({"id": "master", "type": "master", "node": master,
                    "status": f"{master} ({state}, {perl_localtime(stamp)}){extra}",
                    "timestamp": stamp})
    if flavour >= 9:
        res.append(_fencing_entry(ms, disarm, local_node, now, timing))

    service_status = ms.get("service_status") or {}
    for node in sorted(ms.get("node_status") or {}):
        res.append(_lrm_entry(node, lrm_status.get(node), service_status, now, timing,
                              flavour))

    def add_service(sid: str, sc: dict | None, ss: dict | None) -> None:
        data: dict = {"id": f"service:{sid}", "type": "service", "sid": sid}
        if ss:
            data["node"] = ss.get("node")
            data["crm_state"] = ss.get("state")
        elif sc:
            data["node"] = sc.get("node")
        node = data.get("node") if data.get("node") is not None else "---"
        data["state"] = verbose_service_state(ss, sc)
        if disarm and disarm.get("mode") == "ignore":
            data["state"] = "ignore"
        data["status"] = f"{sid} ({node}, {data['state']})"
        if sc is not None:
            data["request_state"] = sc.get("state")
            keys = ("group", "max_restart", "max_relocate", "failback", "comment") \
                if flavour >= 9 else ("group", "max_restart", "max_relocate", "comment")
            for key in keys:
                if sc.get(key) is not None:
                    data[key] = sc[key]
        res.append(data)

    for sid in sorted(service_status):
        add_service(sid, resources.get(sid), service_status[sid])
    for sid in sorted(resources):
        if sid not in service_status:
            add_service(sid, resources[sid], None)
    return res


def _fencing_entry(ms: dict, disarm: dict | None, local_node: str, now: float,
                   timing: Timing) -> dict:
    node = ms.get("master_node") if ms.get("master_node") is not None else local_node
    if disarm:
        mode = disarm.get("mode") or "unknown"
        state = disarm.get("state") or "unknown"
        wd = "CRM watchdog released" if state == "disarmed" else "CRM watchdog active"
        return {"id": "fencing", "type": "fencing", "node": node,
                "status": f"{state}, resource mode: {mode} ({wd})", "armed-state": state,
                "resource_mode": mode}
    active = (ms.get("master_node") is not None and ms.get("timestamp") is not None and
              timestamp_to_status(now, ms["timestamp"], timing) == "active")
    armed = "armed" if active else "standby"
    wd = "CRM watchdog active" if active else "CRM watchdog standby"
    return {"id": "fencing", "type": "fencing", "node": node, "status": f"{armed} ({wd})",
            "armed-state": armed}


def _lrm_entry(node: str, lrm: dict | None, service_status: dict, now: float,
               timing: Timing, flavour: int) -> dict:
    entry = {"id": f"lrm:{node}", "type": "lrm", "node": node}
    if not lrm or not lrm.get("timestamp"):
        entry["status"] = f"{node} (unable to read lrm status)"
        return entry
    stamp = lrm["timestamp"]
    state_str = timestamp_to_status(now, stamp, timing)
    mode = lrm.get("mode")
    lrm_state = lrm.get("state") or "unknown"
    watchdog = ""
    if flavour >= 9:
        if state_str == "active" and lrm_state in ("active", "maintenance"):
            watchdog = "watchdog active, "
        elif mode == "disarm":
            watchdog = "watchdog released, "
        else:
            watchdog = "watchdog standby, "
    if state_str == "active":
        mode = mode or "active"
        if mode != "active":
            state_str = f"{mode} mode"
        elif lrm_state == "wait_for_agent_lock" and \
                not count_active_services(service_status, node, flavour):
            state_str = "idle"
        else:
            state_str = lrm_state
    elif mode == "maintenance" or (flavour >= 9 and mode == "disarm"):
        # §12.2: a stale maintenance LRM still shows `maintenance mode`
        state_str = f"{mode} mode"
    entry["status"] = f"{node} ({state_str}, {watchdog}{perl_localtime(stamp)})"
    entry["timestamp"] = stamp
    return entry


def manager_status_data(manager_status: dict, lrm_status: dict[str, dict | None],
                        quorate: bool, local_node: str) -> dict:
    """`GET /cluster/ha/status/manager_status`: {manager_status, quorum, lrm_status}.
    Guess: an unreadable lrm_status shows as {"mode": "unknown"} (what newer PVE's
    read_lrm_status returns for a missing file); quorate is 1 or 0."""
    data: dict = {"manager_status": manager_status or {},
                  "quorum": {"node": local_node, "quorate": 1 if quorate else 0}}
    nodes = sorted((manager_status or {}).get("node_status") or {})
    if nodes:
        data["lrm_status"] = {n: (lrm_status.get(n) if lrm_status.get(n) is not None
                                  else {"mode": "unknown"}) for n in nodes}
    return data


def status_lines(entries: list[dict]) -> list[str]:
    """`ha-manager status`: one `<type> <status>` line per API entry."""
    return [f"{e['type']} {e['status']}" for e in entries]


def status_text(manager_status: dict, lrm_status: dict[str, dict | None],
                resources: dict[str, dict], quorate: bool, local_node: str, now: float,
                timing: Timing, flavour: int, crs_ha: str = "basic",
                verbose: bool = False) -> str:
    """The whole `ha-manager status [--verbose]` output."""
    entries = current(manager_status, lrm_status, resources, quorate, local_node, now,
                      timing, flavour, crs_ha)
    out = "".join(line + "\n" for line in status_lines(entries))
    if verbose:
        out += "full cluster state:\n"
        out += perl_pretty_json(manager_status_data(manager_status, lrm_status, quorate,
                                                    local_node))
    return out
