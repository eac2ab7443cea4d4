"""Find planted secrets in what a run leaves behind: the one scanner of the planted-secret
self-test (tests/integration/test_planted_secrets.py), unit-tested in
tests/unit/test_secret_scan.py.

A secret is found in a file or a text when any of its forms is there: the secret as
written, as JSON writes it inside a string, as XML/HTML escape it, and, for a secret of
several lines (a PEM block), each line of its body long enough to be its own (a report
that keeps one line of a private key has leaked it).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ARMOR = re.compile(r"-----[A-Z0-9 ]+-----")  # a PEM block's BEGIN/END line: no secret
MIN_PART = 16  # a line of a multi-line secret shorter than this is not looked for alone


@dataclass(frozen=True)
class Finding:
    secret: str  # the secret's name (never its value: a finding is printed)
    where: str  # a file path, or the name of a text (``stdout``)
    offset: int  # where in it, so a reader can look

    def __str__(self) -> str:
        return f"{self.secret} in {self.where} at offset {self.offset}"


def forms(value: str) -> list[str]:
    """The strings whose presence means ``value`` leaked."""
    parts = [value]
    lines = [line.strip() for line in value.splitlines()]
    if len(lines) > 1:
        parts += [line for line in lines
                  if len(line) >= MIN_PART and not ARMOR.fullmatch(line)]
    found: list[str] = []
    for part in parts:
        for form in (part, json.dumps(part)[1:-1], html.escape(part, quote=True)):
            if form and form not in found:
                found.append(form)
    return found


def scan_text(text: str | bytes, secrets: Mapping[str, str], where: str) -> list[Finding]:
    """Every secret (name -> value) with a form in ``text``; one finding per secret."""
    data = text if isinstance(text, bytes) else text.encode(errors="surrogateescape")
    findings = []
    for name, value in secrets.items():
        if not value:
            raise ValueError(f"secret {name!r} is empty: nothing could ever be found")
        for form in forms(value):
            at = data.find(form.encode())
            if at >= 0:
                findings.append(Finding(name, where, at))
                break
    return findings


def scan_paths(paths: Iterable[Path], secrets: Mapping[str, str]) -> list[Finding]:
    """Every file under ``paths`` (files or directories, recursively), bytewise; a path
    that does not exist is skipped (a run that wrote no JUnit XML leaks nothing there)."""
    findings: list[Finding] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() \
            else [path] if path.is_file() else []
        for file in files:
            findings += scan_text(file.read_bytes(), secrets, str(file))
    return findings
