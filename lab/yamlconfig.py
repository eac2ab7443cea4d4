"""Strict reading of the YAML files that describe labs and inventories.

Every mistake is reported with the file, the field's path (``nodes[1].power.user``) and
the fix; unknown keys are refused with the valid ones listed (a typo must not silently
fall back to a default). All problems of a file are collected and reported together.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")
_MISSING = object()


def load_yaml(path: Path | str, what: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file; a missing file or bad YAML is a ConfigError."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist",
                          hint="give the path of an existing YAML file "
                               "(README.md shows an example)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}",
                          hint="check the path and its permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})", hint="give the path of the YAML file, saved as "
                                                 "UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {problem}",
                          hint="fix the YAML syntax (indentation, a missing ':' or quote)"
                          ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys, not "
                          f"{_kind(data)}", hint="start the file with `key: value` "
                                                         "lines (README.md shows an example)")
    return data


class Problems:
    """Problems found in one file; ``raise_if_any`` reports them all at once."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str]] = []  # (message, fix)

    def add(self, path: str, message: str, fix: str) -> None:
        self.items.append((f"{path}: {message}" if path else message, fix))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        if len(self.items) == 1:
            message, fix = self.items[0]
            raise ConfigError(f"{self.source}: {message}", hint=fix)
        lines = [f"{self.source} has {len(self.items)} problems:"]
        lines += [f"  - {message}\n      fix: {fix}" for message, fix in self.items]
        raise ConfigError("\n".join(lines))


class Section:
    """A mapping being read; each read names its path in any problem it finds."""

    def __init__(self, data: Any, path: str, problems: Problems) -> None:
        self.path, self.problems = path, problems
        self.ok = isinstance(data, dict)
        if not self.ok:
            problems.add(path, f"must be a mapping of keys, not {_kind(data)}",
                         "indent its keys under it as `key: value` lines")
            self.problems = Problems(problems.source)  # one problem, not one per field
        self.data: dict[str, Any] = data if self.ok else {}
        self._read: set[str] = set()

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: Any = _MISSING, *,
            fix: str = "") -> Any:
        """The value of ``key`` if it has the right type; records a problem and returns
        ``default`` (or None) otherwise."""
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                self.problems.add(self.at(key), "is missing", fix or f"add `{key}:`")
                return None
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.problems.add(self.at(key), f"must be {names}, not {_kind(value)} "
                              f"({value!r})", fix or f"write `{key}:` as {names}")
            return None if default is _MISSING else default
        return value

    def check(self, key: str, value: Any, ok: bool, message: str, fix: str) -> Any:
        """Record a problem unless ``ok``; returns ``value`` when ok, else None."""
        if not ok:
            self.problems.add(self.at(key), message, fix)
            return None
        return value

    def section(self, key: str, *, required: bool = False) -> Section:
        self._read.add(key)
        if key not in self.data or self.data[key] is None:
            if required:  # one problem, not one per missing field of the section
                self.problems.add(self.at(key), "is missing", f"add a `{key}:` section")
                return Section({}, self.at(key), Problems(self.problems.source))
            return Section({}, self.at(key), self.problems)
        return Section(self.data[key], self.at(key), self.problems)

    def sections(self, key: str, *, required: bool = True) -> Iterator[Section]:
        """The mappings of a list under ``key``."""
        self._read.add(key)
        items = self.data.get(key)
        if items is None:
            if required:
                self.problems.add(self.at(key), "is missing", f"add a `{key}:` list")
            return
        if not isinstance(items, list):
            self.problems.add(self.at(key), f"must be a list, not {_kind(items)}",
                              f"write each entry of `{key}:` on a line starting with '- '")
            return
        for index, item in enumerate(items):
            yield Section(item, f"{self.at(key)}[{index}]", self.problems)

    def done(self) -> None:
        """Refuse keys nobody read (typos), naming the valid ones."""
        unknown = sorted(set(self.data) - self._read, key=str)
        for key in unknown:
            near = _nearest(str(key), sorted(self._read))
            self.problems.add(self.at(str(key)), "is not a known key",
                              (f"did you mean `{near}`? " if near else "")
                              + f"valid keys here: {', '.join(sorted(self._read))}")


# -- typed field helpers ------------------------------------------------------------------
def network(section: Section, key: str, default: str | None = None, *,
            inside: ipaddress.IPv4Network | None = None) -> ipaddress.IPv4Network | None:
    text = section.get(key, str, default if default is not None else _MISSING,
                       fix=f"write `{key}:` as a network such as 198.19.0.0/24")
    if text is None:
        return None
    try:
        net = ipaddress.ip_network(text)
    except ValueError as exc:
        section.problems.add(section.at(key), f"{text!r} is not a network ({exc})",
                             "write it as an IPv4 network such as 198.19.0.0/24")
        return None
    if net.version != 4:
        section.problems.add(section.at(key), f"{net} is not IPv4",
                             "use an IPv4 network such as 198.19.0.0/24")
        return None
    if inside is not None and not net.subnet_of(inside):
        section.problems.add(section.at(key), f"{net} lies outside the lab range {inside}",
                             f"choose a network inside {inside} (or widen allowed_range "
                             "on purpose)")
        return None
    return net  # type: ignore[return-value]


def address(section: Section, key: str) -> str | None:
    text = section.get(key, str, fix=f"write `{key}:` as an IPv4 address or host name")
    if text is None:
        return None
    if "/" in text and _is_interface(text):
        section.problems.add(section.at(key), f"{text!r} is an address with a prefix length",
                             f"write the address alone: {text.split('/')[0]}")
        return None
    if _MEANT_AS_ADDRESS.match(text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            section.problems.add(section.at(key), f"{text!r} is not an IPv4 address",
                                 "write four numbers 0-255 separated by dots")
            return None
    elif not _HOSTNAME.fullmatch(text):
        section.problems.add(section.at(key), f"{text!r} is neither an address nor a "
                             "host name", "write an IPv4 address or a DNS name")
        return None
    return text


def secret_from_env(section: Section, key: str, *, required: bool = True,
                    environ: dict[str, str] | None = None) -> str | None:
    """A password named by an environment variable (secrets never live in the file)."""
    environ = os.environ if environ is None else environ
    literal = key.removesuffix("_env")
    if literal in section.data:
        section._read.update((literal, key))  # one problem, not also "unknown key"
        section.problems.add(section.at(literal), "holds a secret in the file",
                             f"put it in an environment variable and write "
                             f"`{key}: THAT_VARIABLE` instead")
        return None
    name = section.get(key, str, _MISSING if required else None,
                       fix=f"write `{key}: SOME_VARIABLE` and export the secret there")
    if name is None:
        return None
    value = environ.get(name)
    if not value:
        section.problems.add(section.at(key), f"environment variable {name} is not set",
                             f"export {name}=... before the run")
        return None
    return value


def existing_file(section: Section, key: str, *, required: bool = True) -> Path | None:
    text = section.get(key, str, _MISSING if required else None,
                       fix=f"write `{key}:` as a file path")
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        section.problems.add(section.at(key), f"{path} does not exist",
                             "give the path of an existing file")
        return None
    return path


def one_of(section: Section, key: str, choices: Sequence[str], default: str | None = None
           ) -> str | None:
    value = section.get(key, str, default if default is not None else _MISSING,
                        fix=f"write `{key}:` as one of {', '.join(choices)}")
    if value is not None and value not in choices:
        section.problems.add(section.at(key), f"{value!r} is not one of {', '.join(choices)}",
                             f"write one of {', '.join(choices)}")
        return None
    return value


def matching(section: Section, key: str, pattern: str | re.Pattern[str], example: str,
             default: Any = _MISSING) -> str | None:
    value = section.get(key, str, default, fix=f"write `{key}:` like {example}")
    if value is not None and not re.fullmatch(pattern, value):
        section.problems.add(section.at(key), f"{value!r} is not valid",
                             f"write it like {example}")
        return None
    return value


def positive(section: Section, key: str, default: int, *, at_least: int = 1) -> int:
    value = section.get(key, int, default)
    if value is not None and value < at_least:
        section.problems.add(section.at(key), f"{value} is too small",
                             f"use {at_least} or more")
        return default
    return default if value is None else value


@contextmanager
def reading(source: str) -> Iterator[Problems]:
    """Collect the problems of one file and raise them together at the end."""
    problems = Problems(source)
    yield problems
    problems.raise_if_any()


_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*")
# digits and dots only, or three numeric labels first (10.20.0.1x): meant as an address
_MEANT_AS_ADDRESS = re.compile(r"[0-9.]+$|[0-9]+\.[0-9]+\.[0-9]+\.")
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping"}


def _is_interface(text: str) -> bool:
    try:
        ipaddress.IPv4Interface(text)
    except ValueError:
        return False
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {str: "text", int: "a number", float: "a number", bool: "true/false",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _nearest(word: str, candidates: Sequence[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None

