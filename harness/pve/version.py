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


_VERSION = re.compile(r"^pve-manager/([0-9][^/\s]*)/\S+\s+\(running kernel:\s*([^)]+)\)")


def parse_pveversion(text: str) -> PveVersion:
    m = _VERSION.match(text.strip())
    if not m:
        raise ParseError("pveversion", "expected 'pve-manager/X.Y.Z/<hash> (running kernel: K)'",
                         text)
    return PveVersion(m.group(1), m.group(2).strip())
