"""PVE's HA configuration files, parsed and rendered as PVE does (pve-model.md §11,
§14.4; PVE::HA::Config, pve-common's PVE::SectionConfig). Pure text in, text out: reading
and writing the files is pvemu/etc_pve.py's (EtcPve).

SectionConfig files (resources.cfg, groups.cfg, rules.cfg) follow pve-common's
`PVE::SectionConfig`: a `<type>: <id>` header, tab-indented `key value` lines, a blank line
after each section; `comment` first, then the type's required keys sorted, then the
optional keys sorted; booleans as 0/1; only explicitly set keys are stored. Sections are
written in the order they were read (dict order), new ones appended.

All paths below are relative to the root of /etc/pve.
"""

from __future__ import annotations

import json
import re

RESOURCES_CFG = "ha/resources.cfg"
GROUPS_CFG = "ha/groups.cfg"
RULES_CFG = "ha/rules.cfg"
MANAGER_STATUS = "ha/manager_status"
CRM_COMMANDS = "ha/crm_commands"
DATACENTER_CFG = "datacenter.cfg"
MEMBERS = ".members"
DOMAIN_HA_LOCK = "priv/lock/domain-ha"


def lrm_status_path(node: str) -> str:
    return f"nodes/{node}/lrm_status"


def version_info_path(node: str) -> str:
    """Where a node publishes its `version-info` (pvemu/pvestatd.py). Ours: PVE keeps it
    in pmxcfs's in-memory key-value store (broadcast_node_kv), which pvemu does not
    emulate; a hidden file in the node's directory replicates the same way."""
    return f"nodes/{node}/.version-info"


def version_info(version: str) -> str:
    """The `version-info` value pvestatd broadcasts: JSON with `version` and `release`
    (PVE::pvecfg::version_info; PVE2.pm get_node_version reads `version`)."""
    major, minor = version.split(".")[:2]
    return json.dumps({"version": version, "release": f"{major}.{minor}"})


def version_of(text: str | None) -> str | None:
    """get_node_version: the `version` of a published `version-info`, None if unreadable."""
    try:
        value = json.loads(text or "")
    except ValueError:
        return None
    return str(value["version"]) if isinstance(value, dict) and value.get("version") else None


RESOURCE_TYPES = ("vm", "ct")
RESOURCE_STATES = ("started", "stopped", "enabled", "disabled", "ignored")
RULE_TYPES = ("node-affinity", "resource-affinity")

# Keys stored as integers (PVE's integer and boolean properties).
_INT_KEYS = {"max_restart", "max_relocate", "failback", "restricted", "nofailback", "strict",
             "disable"}
_BOOL_KEYS = {"failback", "restricted", "nofailback", "strict", "disable"}
# Required keys per section type: written after `comment`, before the optional keys.
_REQUIRED = {"vm": (), "ct": (), "group": ("nodes",),
             "node-affinity": ("nodes", "resources"),
             "resource-affinity": ("affinity", "resources")}

_HEADER = re.compile(r"^(\S+):\s*(\S+)\s*$")
_PROPERTY = re.compile(r"^\s+(\S+)(?:\s+(.*\S))?\s*$")


class HaConfigError(Exception):
    """A value PVE's writer refuses (e.g. a line feed in a value)."""


# -- generic SectionConfig ---------------------------------------------------------------
def parse_sections(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """[(type, id, {key: raw value})] in file order. Lines that fit no section are skipped,
    as PVE's parser skips them (with a warning)."""
    sections: list[tuple[str, str, dict[str, str]]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip():
            current = None
            continue
        if line.lstrip().startswith("#"):
            continue
        header = _HEADER.match(line)
        if header and not line[0].isspace():
            current = {}
            sections.append((header.group(1), header.group(2), current))
            continue
        prop = _PROPERTY.match(line)
        if prop and current is not None:
            current[prop.group(1)] = prop.group(2) if prop.group(2) is not None else ""
    return sections


def _value(key: str, value: object) -> str:
    if key in _BOOL_KEYS or isinstance(value, bool):
        text = "1" if (value not in (0, "0", False, "") and value is not None) else "0"
    else:
        text = str(value)
    if "\n" in text or "\r" in text or "\n" in key:
        raise HaConfigError(f"property '{key}' contains a line feed")
    return text


def render_section(stype: str, sid: str, props: dict[str, object]) -> str:
    lines = [f"{stype}: {sid}"]
    required = _REQUIRED.get(stype, ())
    order = (["comment"] if "comment" in props else []) \
        + sorted(k for k in props if k in required) \
        + sorted(k for k in props if k not in required and k != "comment")
    for key in order:
        value = props[key]
        if value is None:
            continue
        text = _value(key, value)
        if text == "" and key not in _BOOL_KEYS:
            continue  # PVE writes no line for an empty string value
        lines.append(f"\t{key} {text}")
    return "\n".join(lines) + "\n\n"


def _typed(key: str, raw: str) -> str | int:
    if key in _INT_KEYS and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


# -- nodes lists (`node[:prio],...`) -----------------------------------------------------
def parse_nodes(text: str) -> dict[str, int]:
    nodes: dict[str, int] = {}
    for item in re.split(r"[,;\s]+", text.strip()):
        if not item:
            continue
        name, _, prio = item.partition(":")
        nodes[name] = int(prio) if prio else 0
    return nodes


def render_nodes(nodes: dict[str, int | None], explicit: set[str] | None = None) -> str:
    """`node[:prio]` joined by commas, in dict order. A node is written without `:prio`
    when its priority is None, or 0 and not in ``explicit``.
    Guess: PVE writes groups' nodes in Perl hash order (not stable, §11.2); we keep the
    order given."""
    parts = []
    for name, prio in nodes.items():
        if prio is None or (prio == 0 and not (explicit and name in explicit)):
            parts.append(name)
        else:
            parts.append(f"{name}:{prio}")
    return ",".join(parts)


# -- resources.cfg -------------------------------------------------------------------------
def parse_resources(text: str) -> dict[str, dict]:
    """sid ("vm:100") -> the stored keys only (ints for the numeric keys)."""
    out: dict[str, dict] = {}
    for stype, name, props in parse_sections(text):
        if stype not in RESOURCE_TYPES:
            continue
        out[f"{stype}:{name}"] = {k: _typed(k, v) for k, v in props.items()}
    return out


def render_resources(resources: dict[str, dict]) -> str:
    out = []
    for sid, props in resources.items():
        stype, _, name = sid.partition(":")
        stored = {k: v for k, v in props.items() if k not in ("type", "sid", "node", "digest")}
        out.append(render_section(stype, name, stored))
    return "".join(out)


def resources_with_defaults(stored: dict[str, dict], vmlist: dict[str, str],
                            flavour: int = 9) -> dict[str, dict]:
    """What PVE's read_and_check_resources_config returns: defaults filled in and `node`
    from the guest's config location. Guests not in vmlist are left out. `failback`
    (default 1) is filled in for flavour 9 only."""
    out: dict[str, dict] = {}
    for sid, props in stored.items():
        stype = sid.partition(":")[0]
        if stype not in RESOURCE_TYPES or sid not in vmlist:
            continue
        state = str(props.get("state", "started"))
        d: dict = {"type": stype, "state": "started" if state == "enabled" else state,
                   "node": vmlist[sid],
                   "max_restart": int(props.get("max_restart", 1)),
                   "max_relocate": int(props.get("max_relocate", 1))}
        if "group" in props:
            d["group"] = props["group"]
        if flavour >= 9:
            d["failback"] = int(props.get("failback", 1))
        elif "failback" in props:
            d["failback"] = int(props["failback"])
        if "comment" in props:
            d["comment"] = props["comment"]
        out[sid] = d
    return out


class Section(dict):
    """A parsed groups.cfg/rules.cfg entry: a plain dict (the documented keys, defaults
    filled in) that also remembers which keys the file stored and which nodes carried an
    explicit `:prio`, so that parse -> render gives the file back byte for byte. A key
    is written when it was stored or differs from its default (only explicitly set keys
    are stored, §11.1)."""

    stored: frozenset = frozenset()
    explicit: frozenset = frozenset()


def _section(values: dict, props: dict[str, str]) -> Section:
    entry = Section(values)
    entry.stored = frozenset(props)
    entry.explicit = frozenset(_explicit_prio(props.get("nodes", "")))
    return entry


def _explicit_prio(text: str) -> list[str]:
    return [item.split(":")[0] for item in re.split(r"[,;\s]+", text.strip()) if ":" in item]


def _flags(entry: dict, keys: tuple[str, ...], props: dict[str, object]) -> None:
    stored = getattr(entry, "stored", frozenset())
    for key in keys:
        if key in entry and (key in stored or int(entry[key]) != 0):
            props[key] = int(entry[key])


# -- groups.cfg (PVE 8) ------------------------------------------------------------------
def parse_groups(text: str) -> dict[str, dict]:
    """name -> {nodes: {node: prio}, restricted: 0|1, nofailback: 0|1, comment?}."""
    out: dict[str, dict] = {}
    for stype, name, props in parse_sections(text):
        if stype != "group":
            continue
        group: dict = {"nodes": parse_nodes(props.get("nodes", "")),
                       "restricted": int(_typed("restricted", props.get("restricted", "0"))),
                       "nofailback": int(_typed("nofailback", props.get("nofailback", "0")))}
        if "comment" in props:
            group["comment"] = props["comment"]
        out[name] = _section(group, props)
    return out


def render_groups(groups: dict[str, dict]) -> str:
    out = []
    for name, group in groups.items():
        props: dict[str, object] = {}
        if "comment" in group:
            props["comment"] = group["comment"]
        props["nodes"] = render_nodes(group["nodes"], getattr(group, "explicit", None))
        _flags(group, ("restricted", "nofailback"), props)
        out.append(render_section("group", name, props))
    return "".join(out)


# -- rules.cfg (PVE 9) -------------------------------------------------------------------
def parse_rules(text: str) -> dict[str, dict]:
    """name -> {type, resources: [sid], nodes: {node: prio}, strict: 0|1, affinity?,
    comment?, disable?}. `nodes` is {} and `strict` 0 for resource-affinity rules."""
    out: dict[str, dict] = {}
    for stype, name, props in parse_sections(text):
        if stype not in RULE_TYPES:
            continue
        rule: dict = {"type": stype,
                      "resources": [s for s in re.split(r"[,;\s]+",
                                                        props.get("resources", "")) if s],
                      "nodes": parse_nodes(props.get("nodes", "")),
                      "strict": int(_typed("strict", props.get("strict", "0")))}
        for key in ("affinity", "comment"):
            if key in props:
                rule[key] = props[key]
        if "disable" in props:
            rule["disable"] = int(_typed("disable", props["disable"]))
        out[name] = _section(rule, props)
    return out


def render_rules(rules: dict[str, dict]) -> str:
    out = []
    for name, rule in rules.items():
        props: dict[str, object] = {}
        for key in ("comment", "affinity"):
            if key in rule:
                props[key] = rule[key]
        props["resources"] = ",".join(rule.get("resources", []))
        if rule["type"] == "node-affinity" or rule.get("nodes"):
            props["nodes"] = render_nodes(rule.get("nodes", {}),
                                          getattr(rule, "explicit", None))
        _flags(rule, ("strict", "disable"), props)
        out.append(render_section(rule["type"], name, props))
    return "".join(out)


# -- datacenter.cfg ----------------------------------------------------------------------
def _property_string(text: str, default_key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        if eq:
            out[key.strip()] = value.strip()
        else:
            out[default_key] = key
    return out


def parse_datacenter(text: str) -> dict:
    """The keys the HA stack uses, with PVE's defaults: {"ha": {"shutdown_policy"},
    "crs": {"ha", "ha-rebalance-on-start"}, "max_workers"}; other keys are kept raw."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition(":")
        raw[key.strip()] = value.strip()
    ha = _property_string(raw.get("ha", ""), "shutdown_policy")
    crs = _property_string(raw.get("crs", ""), "ha")
    out: dict = {k: v for k, v in raw.items() if k not in ("ha", "crs", "max_workers")}
    out["ha"] = {**ha, "shutdown_policy": ha.get("shutdown_policy", "conditional")}
    out["crs"] = {**crs, "ha": crs.get("ha", "basic"),
                  "ha-rebalance-on-start": int(crs.get("ha-rebalance-on-start", "0")
                                               in ("1", "true", "yes", "on"))}
    try:
        out["max_workers"] = int(raw.get("max_workers", "4"))
    except ValueError:
        out["max_workers"] = 4
    return out


# -- the cluster's vmlist (read by EtcPve.vmlist) ---------------------------------------
def vmid_owner(vms: dict[str, str], vmid: str) -> tuple[str, str] | None:
    """(sid, node) of a bare VMID in a vmlist, or None."""
    for stype in RESOURCE_TYPES:
        sid = f"{stype}:{vmid}"
        if sid in vms:
            return sid, vms[sid]
    return None


# -- JSON status files -------------------------------------------------------------------
def parse_json(text: str | None) -> dict:
    """PVE's json_reader: empty or missing means {}."""
    if not text:
        return {}
    return json.loads(text)
