"""The error every emulated CLI dies with: what PVE's `die` prints (to stderr; the
command exits with 255, as PVE's CLIHandler makes it)."""

from __future__ import annotations


class CommandError(Exception):
    """An error PVE would `die` with: printed to stderr, exit code 255."""
