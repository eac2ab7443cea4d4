"""Typed view of `pveversion`: `pve-manager/8.4.1/2a5fa54a8503f96d (running kernel: ...)`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ParseError


@dataclass(frozen=True)
class PveVersion:
    manager: str  # "8.4.1"
    kernel: str

    @property
    def major(self) -> int:
        return int(self.manager.split(".")[0])

    @property
    def key(self) -> tuple[int, ...]:
        """The release as numbers to order by: 8.4.1 -> (8, 4, 1); a Debian suffix
        (`9.0.0~16`, `8.4-1`) does not count."""
        release = re.split(r"[~-]", self.manager, maxsplit=1)[0]
        return tuple(int(p) for p in release.split(".") if p.isdigit())


_VERSION = re.compile(r"^pve-manager/([0-9][^/\s]*)/\S+\s+\(running kernel:\s*([^)]+)\)")


def parse_pveversion(text: str) -> PveVersion:
    m = _VERSION.match(text.strip())
    if not m:
        raise ParseError("pveversion", "expected 'pve-manager/X.Y.Z/<hash> (running kernel: K)'",
                         text)
    return PveVersion(m.group(1), m.group(2).strip())


# `pveversion -v`: one `package: version` line each, some with a note in parentheses
# (`proxmox-ve: 8.4.0 (running kernel: 6.8.12-9-pve)`, `pve-manager: 8.4.1 (running
# version: 8.4.1/2a5fa54a8503f96d)`), or a state instead of a version (`not correctly
# installed`, `residual config`)
_PACKAGE = re.compile(r"^([a-z0-9][a-z0-9.+-]*):\s+([^(]*?)\s*(?:\(.*\))?$")


def parse_pveversion_verbose(text: str) -> dict[str, str]:
    """`pveversion -v` as {package: version}, in its order; a version the line does not
    give (a state such as ``not correctly installed``) is kept as that text."""
    packages: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _PACKAGE.match(line.strip())
        if not m or not m.group(2):
            raise ParseError("pveversion -v", "expected 'package: version' lines", line)
        packages[m.group(1)] = m.group(2)
    if "pve-manager" not in packages:
        raise ParseError("pveversion -v", "no pve-manager line", text)
    return packages
