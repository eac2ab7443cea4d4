"""The `upgrade` verb of the labs whose nodes are real PVE (libvirt, inventory): the
user's command (--upgrade-command, or the lab YAML's ``upgrade_command``) run on the node
over SSH, then `systemctl reboot` there.

How a real node moves from PVE 8 to 9 (APT sources to trixie, `apt dist-upgrade`:
pve-operations.md §3.2 step 4) is the user's to say; the lab runs it, keeps what it
printed, and stops at the first failure with the command (secrets redacted) and its
exit code. A lab given no command refuses the verb, naming the option. The command's
environment is never shown (each ``NAME=value`` it sets is masked), and its text and
output only redacted (harness/report/redact.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.errors import CommandTimeout, LabError, NodeUnreachable, UnsupportedFault
from harness.lab_api import LabNode
from harness.report.redact import redact

if TYPE_CHECKING:  # harness/ssh.py needs paramiko: imported where a command runs
    from harness.ssh import CommandResult

# bounds: an `apt dist-upgrade` of PVE 8 to 9 fetches and unpacks some hundred packages
UPGRADE_TIMEOUT_S = 3600.0
REBOOT_TIMEOUT_S = 30.0
REBOOT = "systemctl reboot"

# a shell variable set for the command (`APT_TOKEN=... apt-get ...`): its environment
ASSIGNMENT = re.compile(r"(?<![\w-])([A-Za-z_][A-Za-z0-9_]*=)(\S+)")

Runner = Callable[[LabNode, str, float], "CommandResult"]  # (node, command, timeout_s)


def ssh_run(node: LabNode, command: str, timeout_s: float) -> CommandResult:
    """``command`` on ``node`` over one SSH session of its own (harness/ssh.py)."""
    from harness.ssh import SshSession

    session = SshSession(node)
    try:
        return session.run(command, timeout_s=timeout_s)
    finally:
        session.close()


def shown(command: str) -> str:
    """The command as an error may show it: every variable it sets masked (its
    environment is never echoed), then what redact() knows as a secret."""
    return redact(ASSIGNMENT.sub(r"\1[REDACTED]", command))


def refusal(kind: str) -> UnsupportedFault:
    """The error of a lab asked to upgrade without a command."""
    return UnsupportedFault(
        f"the {kind} lab cannot upgrade a node: it was given no upgrade command",
        hint="give --upgrade-command CMD (the shell command that upgrades one node, run on "
             "it over SSH, e.g. 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get "
             "-y dist-upgrade'), or upgrade_command: in the lab's YAML file")


def upgrade(node: LabNode, command: str, run: Runner = ssh_run, *,
            timeout_s: float = UPGRADE_TIMEOUT_S) -> str:
    """Run ``command`` on ``node``, then start its reboot; what the command printed."""
    text = shown(command)
    try:
        result = run(node, command, timeout_s)
    except (NodeUnreachable, CommandTimeout) as exc:
        raise LabError(f"{node.name}: the upgrade command `{text}` did not finish: "
                       f"{shown(str(exc))}",
                       hint="run it by hand on the node to see where it stops; the node "
                            "was not rebooted") from exc
    printed = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr.strip()
                               else "")
    if result.rc != 0:
        last = "\n    ".join(redact(printed).strip().splitlines()[-10:]) or "(nothing)"
        raise LabError(f"{node.name}: the upgrade command `{text}` exited with "
                       f"{result.rc}; last output:\n    {last}",
                       hint="fix the command or the node's package state (run the command "
                            "by hand there); the node was not rebooted")
    reboot(node, run)
    return redact(printed)


def reboot(node: LabNode, run: Runner) -> None:
    """`systemctl reboot` on the node. A session the reboot cuts (no exit status, or the
    connection gone) means the reboot started; a refusal (an exit code) is an error."""
    try:
        result = run(node, REBOOT, REBOOT_TIMEOUT_S)
    except (NodeUnreachable, CommandTimeout):
        return  # sshd went down with the node: the reboot is under way
    if result.rc not in (0, -1):  # -1: the channel closed without an exit status
        raise LabError(f"{node.name}: `{REBOOT}` after the upgrade exited with {result.rc}: "
                       f"{(result.stderr or result.stdout).strip()[-300:] or '(no output)'}",
                       hint="the node is upgraded but runs its old kernel and daemons: "
                            "reboot it by hand")
