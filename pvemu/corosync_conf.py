"""corosync.conf as `pvecm` writes it (pve-model.md §14.3), and a parser for it.

Keys are sorted at every level, two-space indentation, a blank line after each top-level
section, nodes sorted by name. No token value is written; token_coefficient only for
clusters made by pve-cluster >= 9.1 (PVE 9 here).
"""

from __future__ import annotations

import re

Section = dict  # name -> str | Section | list[Section] (nodelist.node)


def parse(text: str) -> Section:
    root: Section = {}
    stack = [root]
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            name = line[:-1].strip()
            child: Section = {}
            parent = stack[-1]
            if name == "node" or name == "interface":
                parent.setdefault(name, []).append(child)
            else:
                parent[name] = child
            stack.append(child)
        elif line == "}":
            if len(stack) == 1:
                raise ValueError("unbalanced '}' in corosync.conf")
            stack.pop()
        else:
            key, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"corosync.conf: cannot read line {raw!r}")
            stack[-1][key.strip()] = value.strip()
    if len(stack) != 1:
        raise ValueError("corosync.conf: a section is not closed")
    return root


def _render(section: Section, indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key in sorted(section):
        value = section[key]
        if isinstance(value, list):
            if key == "node":
                value = sorted(value, key=lambda n: n.get("name", ""))
            for item in value:
                lines += [f"{pad}{key} {{", *_render(item, indent + 1), f"{pad}}}"]
        elif isinstance(value, dict):
            lines += [f"{pad}{key} {{", *_render(value, indent + 1), f"{pad}}}"]
        else:
            lines.append(f"{pad}{key}: {value}")
    return lines


def render(conf: Section) -> str:
    out: list[str] = []
    for key in sorted(conf):
        out += _render({key: conf[key]}, 0)
        out.append("")
    return "\n".join(out)


def create(cluster_name: str, node: str, nodeid: int, votes: int, links: dict[int, str],
           *, token_coefficient: int | None) -> Section:
    entry = {"name": node, "nodeid": str(nodeid), "quorum_votes": str(votes)}
    for number, address in links.items():
        entry[f"ring{number}_addr"] = address
    totem: Section = {
        "cluster_name": cluster_name,
        "config_version": "1",
        "interface": [{"linknumber": str(n)} for n in sorted(links)],
        "ip_version": "ipv4-6",
        "link_mode": "passive",
        "secauth": "on",
        "version": "2",
    }
    if token_coefficient is not None:
        totem["token_coefficient"] = str(token_coefficient)
    return {
        "logging": {"debug": "off", "to_syslog": "yes"},
        "nodelist": {"node": [entry]},
        "quorum": {"provider": "corosync_votequorum"},
        "totem": totem,
    }


def nodes(conf: Section) -> list[Section]:
    return conf.get("nodelist", {}).get("node", [])


def links_of(conf: Section) -> list[int]:
    return sorted(int(i.get("linknumber", "0")) for i in conf["totem"].get("interface", []))


def config_version(text: str) -> int:
    m = re.search(r"^\s*config_version:\s*(\d+)", text, re.M)
    return int(m.group(1)) if m else 0
