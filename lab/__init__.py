"""Lab backends: each gives a running set of nodes and their power and network switches.

Backends are imported lazily by kind, so that choosing one never needs another's
dependencies (libvirt-python, for instance).
"""

from __future__ import annotations

import importlib

from harness.errors import ConfigError
from harness.lab_api import Lab

BACKENDS = {
    "embedded": "lab.embedded:EmbeddedLab",
    "libvirt": "lab.libvirt.lab:LibvirtLab",
    "inventory": "lab.inventory.lab:InventoryLab",
}


def open_lab(kind: str, **options: object) -> Lab:
    """Make (but do not start) a lab of the given kind."""
    try:
        target = BACKENDS[kind]
    except KeyError:
        raise ConfigError(f"unknown lab kind {kind!r}",
                          hint=f"use --lab with one of: {', '.join(sorted(BACKENDS))}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.from_options(**options)
