"""`pvechaos lab up|status|ssh|down|cleanup`: the verbs of lab/cli.py for an embedded lab
left running (lab/embedded/detached.py says how it lives and ends), and `pvechaos
preflight` on such a lab or an existing cluster. Every value is checked by lab/cli.py
before these run."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from lab.embedded import config, detached, state
from lab.embedded import preflight as preflight_host  # the host's own checks
from lab.processes import process_alive

ROOT_STATE = "the lab's state, SSH key and kernel objects are root's"


def _rerun(args: argparse.Namespace) -> str:
    return f"e.g. `sudo {shlex.join([args.prog, *args.argv])}`"


def run(args: argparse.Namespace) -> int:
    what = f"`{args.prog} {args.kind} {args.verb}`"
    if args.verb == "up":
        preflight_host.check_host(_rerun(args))  # root, tools, kernel: before anything is made
        running = detached.up(args.config, cluster_name=args.cluster_name, guest=args.guest)
        print("\n".join(detached.how_to_reach(running)))
        return 0
    preflight_host.require_root(what, _rerun(args), ROOT_STATE)
    if args.verb == "cleanup" and args.all:
        return cleanup_all(config.STATE_ROOT, dry_run=args.dry_run)
    if args.verb == "cleanup":
        return cleanup(args.names)
    if args.verb == "down":
        if not detached.down(args.config):
            raise detached.not_running(args.name)
        print(f"lab '{args.name}' is down: its processes, namespaces, links, cgroups and "
              "directory are removed")
        return 0
    running = detached.require(args.config)
    if args.verb == "status":
        lines, quorate = detached.status(running)
        print("\n".join(lines))
        return 0 if quorate else 1
    argv = running.ssh_argv(args.node, args.command)  # an unknown node lists the nodes
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # ssh's exit status is the command's
    return 255  # not reached


def cleanup(names: list[str]) -> int:
    """Labs left running are taken down; then what killed runs left behind is swept
    (lab/embedded/__main__.py), for the labs named or, with none, every lab."""
    from lab.embedded.__main__ import main as embedded_cleanup

    root = config.STATE_ROOT
    for name in names or state.lab_names(root):
        lab = config.EmbeddedConfig(name=name, state_root=root)
        if detached.find(lab) is not None:
            detached.down(lab)
            print(f"{name}: was running; taken down")
    return embedded_cleanup(["cleanup", *names])


def cleanup_all(root, *, dry_run: bool = False, only: set[str] | None = None,
                say=print, guard_root=None) -> int:
    """`lab cleanup --all`: every lab found (a state directory under ``root``, or kernel
    objects named like a lab's), whether its owner runs, and the removal of each whose
    owner is gone (lab.embedded.remove_leftovers); never one whose owner runs (a test run,
    its guardian, or a lab `up` left running). Then the records of killed runs whose
    guardian died too (lab/run_guardian.py: libvirt labs, qemu beds, BMC servers).
    ``only``: these embedded labs and nothing else (the integration test's, on a host
    other runs share). ``guard_root``: where the records are (default: the guardian's).
    Exit 1 when a removal failed."""
    from harness.errors import PvechaosError
    from lab.embedded import remove_leftovers

    objects = state.kernel_objects()
    names = sorted(set(state.lab_names(root)) | set(objects))
    if only is not None:
        names = [n for n in names if n in only]
    say(f"pvechaos: {len(names)} lab(s) found (state directories under {root}, kernel "
        "objects named pvechaos-<lab>-* / pvc-<lab>*)")
    removed = kept = failed = 0
    for name in names:
        lab = state.LabState(root / name)
        has_state = lab.load()
        owner = (lab.data.get("owner") or {}) if has_state else {}
        runs = lab.owner_alive() if has_state else None
        what = objects.get(name, [])
        listed = f"; {len(what)} kernel object(s): {', '.join(what)}" if what else ""
        if runs is not None:
            up = " (left up by `pvechaos lab up`; `pvechaos lab down --name " \
                 f"{name}` removes it)" if lab.detached else ""
            say(f"  {name}: kept: owner pid {runs} runs{up}")
            kept += 1
            continue
        if not has_state:
            why = f"no state directory under {root} (a run killed before it wrote one)"
        elif owner.get("pid"):
            guardian = lab.guardian
            why = f"owner pid {owner['pid']} is gone" + (
                f", its guardian pid {guardian['pid']} too" if guardian and not
                process_alive(guardian["pid"], guardian.get("start")) else
                f", its guardian pid {guardian['pid']} still runs" if guardian else "")
        else:
            why = "no owner recorded"
        if dry_run:
            say(f"  {name}: would be removed: {why}{listed}")
            removed += 1
            continue
        try:
            # 9: every node name a lab can have, for objects no state file lists
            remove_leftovers(config.EmbeddedConfig(name=name, state_root=root, node_count=9),
                             take_detached=True)
        except PvechaosError as exc:
            say(f"  {name}: NOT removed ({why}): {exc}")
            failed += 1
            continue
        say(f"  {name}: removed: {why}{listed}")
        removed += 1
    if only is None:
        done, undone = _run_records_left(guard_root, dry_run, say)
        removed, failed = removed + done, failed + undone
    verb = "would remove" if dry_run else "removed"
    say(f"pvechaos: {verb} {removed}, kept {kept}"
        f"{f', failed {failed} (see above)' if failed else ''}")
    return 1 if failed else 0


def _run_records_left(guard_root, dry_run: bool, say) -> tuple[int, int]:
    """What killed runs registered with lab/run_guardian.py (libvirt labs' VMs, qemu test
    beds, BMC servers) when their guardian died too: run each as the guardian would
    have. Returns (runs removed, teardowns failed)."""
    from lab import run_guardian

    removed = failed = 0
    for directory, records in run_guardian.pending(guard_root).items():
        names = ", ".join(r["name"] for r in records) or "nothing"
        pid = directory.name.partition("-")[0]
        if dry_run:
            say(f"  run pid {pid}: would be removed: owner and guardian gone; {names}")
        else:
            undone = run_guardian.run_records(directory, say=lambda m: say(f"    {m}"))
            say(f"  run pid {pid}: {'NOT all ' if undone else ''}removed: {names}")
            failed += undone
        removed += 1
    return removed, failed


def preflight(args: argparse.Namespace) -> int:
    """harness/preflight.py's read-only checks and their table; exit 1 when one fails."""
    from harness import preflight as checks
    from harness.cluster import Cluster

    if args.inventory is not None:
        from harness.timescale import REAL_TIME
        from lab.inventory.lab import InventoryLab

        lab = InventoryLab.from_options(inventory=args.inventory, destructive=False,
                                        timescale=REAL_TIME)
        lab.start()  # reaches every node; powers nothing
    else:
        preflight_host.require_root(f"`{args.prog} preflight`", _rerun(args), ROOT_STATE)
        lab = detached.attach(detached.require(args.config))
    cluster = Cluster(lab)
    try:
        results = checks.run(cluster)
    finally:
        cluster.close()
    print(checks.render(results))
    return 1 if checks.failed(results) else 0
