"""PVE's cluster filesystem as the harness reaches it over SSH: the /etc/pve paths the
harness's commands name, and how their answers are read. The one place in harness/ that
spells /etc/pve (the emulated node has its own, pvemu/etc_pve.py: the harness must not
depend on the emulation it judges)."""

from __future__ import annotations

import shlex

ETC_PVE = "/etc/pve"
WRITE_PROBE = f"{ETC_PVE}/.pvechaos-write-test"  # made and removed at once


def write_probe_command(path: str = WRITE_PROBE) -> str:
    """A shell command that creates and removes a file in /etc/pve: pmxcfs refuses it
    (EACCES, `Permission denied`) while the node is not quorate."""
    quoted = shlex.quote(path)
    return f"echo probe > {quoted} && rm -f {quoted}"


def guest_config_dirs_command(vmid: int | str, kind_dir: str = "lxc") -> str:
    """A shell command printing each node directory whose ``kind_dir`` lists
    ``<vmid>.conf``. Listed, not looked up: a lookup may be answered from pmxcfs's FUSE
    cache for a moment after a destroy."""
    return (f"for d in {ETC_PVE}/nodes/*/{kind_dir}; do "
            f"ls -1 \"$d\" | grep -qx {int(vmid)}.conf && echo \"$d\"; done")


def owner_of_listing(stdout: str) -> str | None:
    """The node whose directory a `guest_config_dirs_command` printed first, or None."""
    for line in stdout.splitlines():
        parts = line.strip().removeprefix(f"{ETC_PVE}/nodes/").split("/")
        if len(parts) == 2 and parts[0]:
            return parts[0]
    return None
