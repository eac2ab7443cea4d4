"""The pvechaos pytest options' values, checked before any lab starts.

Each function takes an option's raw value (as pytest's parser gives it) and returns the
parsed value, or raises pytest.UsageError naming the option, what is wrong with the value
and the fix: pytest ends the run with exit code 4 and that message, no traceback. They are
called where the options are read (``pytest_configure`` of harness/plugin.py,
harness/fixtures.py) and depend on nothing but the harness. The lab options' checks are
lab/options.py's, with ``refuse``'s message shape.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import pytest

from harness.timescale import Timescale, TimescaleError

# a PVE cluster name as `pvecm create` takes it: PVE's pve-node format, at most 15 characters
CLUSTER_NAME = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,13}[a-zA-Z0-9])?")
STORY_NODES = 3  # first cut, second cut, survivor


def refuse(option: str, value: object, problem: str, fix: str) -> NoReturn:
    """Stop the run: ``--option 'value': problem`` and the fix on the next line."""
    shown = f"{value:g}" if isinstance(value, float) else repr(value)
    raise pytest.UsageError(f"{option} {shown}: {problem}\n  fix: {fix}")


def cluster_name(raw: str) -> str:
    """--cluster-name: a name `pvecm create` takes, refused before any lab starts."""
    if not CLUSTER_NAME.fullmatch(raw):
        refuse("--cluster-name", raw, "not a PVE cluster name",
               "give 1-15 letters, digits and hyphens, not starting or ending with a "
               "hyphen, e.g. --cluster-name pvechaos")
    return raw


def timescale(raw: float | str) -> Timescale:
    """--timescale: the run's one Timescale (its range is harness/timescale.py's)."""
    try:
        factor: object = float(raw)
    except ValueError:
        factor = raw  # not a number: Timescale refuses it with its fix
    try:
        return Timescale(factor)  # type: ignore[arg-type]
    except TimescaleError as exc:
        refuse("--timescale", raw, f"not a timescale from {Timescale.MIN:g} to "
               f"{Timescale.MAX:g}", exc.hint or "")


def recovery_budget(raw: float | str) -> float:
    """--recovery-budget: seconds at timescale 1, a finite number > 0."""
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not seconds > 0:
        refuse("--recovery-budget", raw, "not a number of seconds > 0",
               "give the most time a recovery may take at timescale 1, e.g. "
               "--recovery-budget 120 (the default; it is scaled with --timescale)")
    return seconds


def story_nodes(raw: str | None, known: Iterable[str] | None = None) -> tuple[str, ...] | None:
    """--story-nodes FIRST,SECOND,SURVIVOR: three distinct names; None when not given.
    ``known`` (the cluster's nodes, once it is up) also refuses a name not among them."""
    if raw is None:
        return None
    names = tuple(name.strip() for name in raw.split(","))
    example = "e.g. --story-nodes node2,node3,node1"
    if len(names) != STORY_NODES or not all(names):
        got = f"{len(names)}" if all(names) else "an empty one"
        refuse("--story-nodes", raw, f"needs {STORY_NODES} node names, got {got}",
               f"give FIRST,SECOND,SURVIVOR: which nodes lose power first and second and "
               f"which survives, {example}")
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        refuse("--story-nodes", raw, f"names {', '.join(doubled)} twice; the three nodes "
               "must differ", f"give three different nodes, {example}")
    if known is not None:
        valid = sorted(known)
        unknown = [name for name in names if name not in valid]
        if unknown:
            refuse("--story-nodes", raw, f"{', '.join(unknown)} is not a node of this "
                   f"cluster", f"choose three of {', '.join(valid)}")
    return names


REPEAT_MAX = 100  # more repeats than this is a typo, not a baseline


def repeat(raw: int | str) -> int:
    """--repeat: how many times each story module runs, a whole number 1 to REPEAT_MAX."""
    try:
        count = int(str(raw).strip())
    except ValueError:
        count = 0
    if not 1 <= count <= REPEAT_MAX:
        refuse("--repeat", str(raw), f"not a whole number from 1 to {REPEAT_MAX}",
               "give how many times each story runs, e.g. --repeat 3 (a baseline's "
               "statistics need at least 2 samples per figure; 3 or more is better)")
    return count


def metrics_file(raw: Path | str) -> Path:
    """--metrics-file: a file that can be written, in a directory that exists or can be
    made (checked without making it: a run that measures nothing writes nothing)."""
    return writable_file("--metrics-file", raw, "--metrics-file reports/metrics.json")


def writable_file(option: str, raw: Path | str, example: str) -> Path:
    """A file ``option`` names that can be written, in a directory that exists or can be
    made (checked without making it)."""
    path = Path(raw)
    fix = f"give a writable path, e.g. {example}"
    if path.is_dir():
        refuse(option, str(raw), "is a directory", fix)
    if path.exists():
        try:  # appending nothing changes nothing, and fails where a write would
            if not os.access(path, os.W_OK):
                raise PermissionError("no permission")
            open(path, "a").close()  # noqa: SIM115
        except OSError as exc:
            refuse(option, str(raw), f"cannot be written ({exc.strerror or exc})",
                   fix)
        return path
    parent = path.absolute().parent
    while not parent.exists():  # the nearest existing ancestor must let us make the rest
        parent = parent.parent
    if not parent.is_dir():
        refuse(option, str(raw), f"{parent} is a file, not a directory", fix)
    try:  # root passes os.access everywhere: try it (an unnamed file, gone on close)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError("no permission")
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as exc:
        refuse(option, str(raw), f"nothing can be written in {parent} "
               f"({exc.strerror or exc})", fix)
    return path
