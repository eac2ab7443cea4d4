"""Secrets out of evidence: node logs and command output are attached to reports that get
mailed around and filed with bugs, so passwords, private keys, PVE tickets and API tokens
are replaced by ``[REDACTED]`` before anything is attached.
"""

from __future__ import annotations

import dataclasses
import re

MASK = "[REDACTED]"
_KEYS = r"(?:password|passwd|pass|secret|token|api[_-]?key|auth[_-]?key)"  # key=value
_FLAGS = r"(?:password|passwd|secret|token)"  # --flag value

_RULES: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys (SSH, TLS): the whole body
    (re.compile(r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----)[\s\S]*?(-----END [A-Z0-9 ]*"
                r"PRIVATE KEY-----)"), rf"\1 {MASK} \2"),
    # PVE authentication tickets: PVE:<user>:<hex time>::<signature>
    (re.compile(r"\b(PVE:[^:\s]+:[0-9A-Fa-f]{8}::)[A-Za-z0-9+/=]+"), rf"\1{MASK}"),
    (re.compile(r"(PVEAuthCookie=)[^;\s]+"), rf"\1{MASK}"),
    (re.compile(r"(CSRFPreventionToken[\"']?\s*[:=]\s*[\"']?)[^\"'\s;,]+"), rf"\1{MASK}"),
    # API tokens: PVEAPIToken=user@realm!tokenid=<uuid>
    (re.compile(r"(PVEAPIToken=[^=\s]+=)[^\s\"']+"), rf"\1{MASK}"),
    # key='a value', "key": "a value", --key 'a value': a quoted value whole (it may hold
    # spaces: shlex quotes a password with one so), up to its closing quote on that line
    (re.compile(rf"(?i)([\"']?\b{_KEYS}[\"']?\s*[:=]\s*)([\"'])(?:(?!\2).)*\2"),
     rf"\1\2{MASK}\2"),
    (re.compile(rf"(?i)(--{_FLAGS}[ =])([\"'])(?:(?!\2).)*\2"), rf"\1\2{MASK}\2"),
    # key=value, key: value, --key value (passwords, secrets, tokens), unquoted
    (re.compile(rf"(?i)([\"']?\b{_KEYS}[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}}]+"),
     rf"\1{MASK}"),
    (re.compile(rf"(?i)(--{_FLAGS}[ =])[^\s\"']\S*"), rf"\1{MASK}"),
]


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def redact_tree(obj: object) -> object:
    """``obj`` with every string in it redacted: strings, dicts' values and lists (changed
    in place), tuples (rebuilt, named ones as such) and dataclass instances (their
    fields, in place), as deep as they go; what else it holds is kept. For pytest's
    failure representations, whose lines, frame arguments and messages are strings in
    such a tree, and Allure's results as attrs' ``asdict`` gives them."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):  # values only: keys are names (JSON's, Allure's)
        for key, value in obj.items():
            obj[key] = redact_tree(value)
        return obj
    if isinstance(obj, list):
        obj[:] = [redact_tree(x) for x in obj]
        return obj
    if isinstance(obj, tuple):
        items = [redact_tree(x) for x in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            new = redact_tree(value)
            if new is not value:
                object.__setattr__(obj, field.name, new)
        return obj
    return obj
