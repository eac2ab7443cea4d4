"""An in-node fault as shell commands, and what any run of one may leave behind.

In-node faults (partitions, netem, daemon signals, clock steps, storage cuts) are set with
standard Linux tools over SSH, so they work the same on every lab, real PVE included. A
fault module (harness/faults_*.py) builds ``NodeCommand``s; FaultInjector runs them
(harness/faults.py ``_node_fault``). Each module also registers in ``SWEEPS`` one command
that removes whatever any run of it could have left on a node (a run killed before its
teardown): FaultInjector.sweep_nodes runs them all. A module whose faults leave state
that can be listed (rules, qdiscs, a helper process) registers in ``LEFTOVERS`` a command
that prints it: FaultInjector.leftovers shows an undo really ended a fault.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeCommand:
    """An in-node fault as the shell commands that set and end it on one node."""

    fault: str  # "partition", "netem", "daemon.pause", ... (events.FaultBegin.fault)
    detail: str  # what exactly, for the timeline ("cut from node3")
    apply: str
    undo: str
    # how long the apply may take (real seconds): `systemctl stop` waits for the daemon,
    # and PVE's LRM leaves only a round after the CRM froze its services (faults_daemon)
    apply_timeout_s: float = 20.0


# module name -> a shell command that must succeed when there is nothing to remove
SWEEPS: dict[str, str] = {}

# module name -> a shell command that prints what any fault of that module still has in
# force on a node, one line each, and nothing (with status 0) when it has none
LEFTOVERS: dict[str, str] = {}
