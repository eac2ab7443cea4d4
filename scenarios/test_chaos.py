"""Seeded chaos: a schedule of faults aimed by role (the CRM master, a guest's node, a
non-master, any node, a minority), with the recovery time PVE's design needs between
them, on a cluster with several HA guests probed and checked all the time; judged
afterwards from the one timeline (harness/chaos/judge.py): every predicted recovery
inside its window, no safety invariant broken, no fence or move that no fault explains,
the cluster whole at the end.

    pytest scenarios/test_chaos.py --timescale 0.1 --chaos-seed 7 --chaos-duration 600
    pytest scenarios/test_chaos.py --chaos-schedule reports/chaos/asrun-7.json   (replay)
    pytest scenarios/test_chaos.py --timescale 1 --chaos-soak 3600 --chaos-shrink 8

Files go to --chaos-out (reports/chaos): ``schedule-<seed>.json`` (the plan),
``asrun-<seed>.json`` (the faults as they ran, aimed at nodes: a replay file),
``verdict-<seed>.json``, ``soak.txt``/``soak.json`` and, after a finding with
--chaos-shrink, ``shrunk-<seed>.json``, the shortest schedule that still fails.
Marker ``chaos``: not part of the main job; ``.ci/chaos`` runs a 10-minute schedule.
"""

from __future__ import annotations

import json
import time

import allure
import pytest

from harness.chaos import schedule as schedules
from harness.chaos.generate import generate
from harness.chaos.judge import Finding
from harness.chaos.options import chaos_options, remember
from harness.chaos.session import ChaosSession, Outcome
from harness.chaos.shrink import shrink
from harness.chaos.soak import SoakSummary, soak
from harness.report import event_table, node_logs, timeline_plot
from harness.timescale import Timescale

pytestmark = [pytest.mark.chaos, allure.epic("Chaos"), allure.feature("Seeded schedules"),
              pytest.mark.usefixtures("quorum_watcher", "ha_watcher")]

BEFORE_S, AFTER_S = 60.0, 30.0  # a finding's picture: this long before and after it (at 1)
MIN_SPAN_S = 12.0  # real seconds at least: corosync's own timers are never scaled


def test_chaos_schedule(request, cluster, faults, timeline, constants):
    opts = chaos_options(request.config)
    scale = timeline.clock.timescale
    base = opts.seed if opts.seed is not None else int(time.time()) % 1_000_000
    replay = schedules.load(opts.schedule) if opts.schedule else None
    if replay is not None:
        schedules.check_fits(replay, cluster.names, scale.factor)

    def plan(k: int, seconds: float) -> schedules.Schedule:
        if replay is not None:
            return replay
        made = generate(base + k, cluster.names, constants,
                        duration_s=min(opts.duration_s, seconds), mix=opts.mix,
                        concurrency=opts.concurrency, roles=opts.roles,
                        allow_quorum_loss=opts.allow_quorum_loss, guests=opts.guests)
        write(opts.out / f"schedule-{made.seed}.json", made.dumps(), "schedule")
        return made

    session = ChaosSession(faults, timeline, constants)

    def run(schedule: schedules.Schedule) -> Outcome:
        with allure.step(f"schedule {label(schedule)}: {len(schedule.items)} faults"):
            outcome = session.run(schedule)
            report(outcome, opts.out, timeline, cluster, scale)
        return outcome

    if opts.soak_s is not None and replay is None:
        summary = soak(run, plan, seconds=opts.soak_s, now=timeline.clock.now,
                       go_on=opts.go_on)
    else:
        summary = SoakSummary([run(plan(0, opts.duration_s))])
    text = summary.table()
    write(opts.out / "soak.txt", text + "\n", "summary")
    write(opts.out / "soak.json", json.dumps(summary.to_json(), indent=1) + "\n",
          "summary.json")
    remember(request.config, text)
    failed = next((o for o in summary.outcomes if o.verdict.findings), None)
    if failed is None:
        return
    hint = ""
    if opts.shrink:
        with allure.step(f"shrink the schedule of {label(failed.schedule)}"):
            result = shrink(failed.record.as_run(), failed.verdict,
                            lambda s: run(s).verdict, max_attempts=opts.shrink)
            name = f"shrunk-{failed.schedule.seed}.json"
            write(opts.out / name, result.shortest.dumps(), "shortest failing schedule")
            tried = ", ".join(f"{n} faults: {'fails' if f else 'passes'}"
                              for n, f in result.attempts)
            hint = (f"\nshortest failing schedule: {len(result.shortest.items)} faults, "
                    f"{opts.out / name} (tried {tried or 'nothing shorter'})")
            remember(request.config, hint.strip())
    findings = "\n".join(f"  {f}" for f in failed.verdict.findings)
    pytest.fail(f"the chaos schedule of {label(failed.schedule)} found:\n{findings}\n"
                f"replay: --chaos-schedule {opts.out / f'asrun-{failed.schedule.seed}.json'}"
                + hint, pytrace=False)


def label(schedule: schedules.Schedule) -> str:
    return f"seed {schedule.seed} ({schedule.origin})"


def write(path, text: str, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    allure.attach(text, name=f"{name}: {path.name}",
                  attachment_type=allure.attachment_type.JSON if path.suffix == ".json"
                  else allure.attachment_type.TEXT)


def report(outcome: Outcome, out, timeline, cluster, scale: Timescale) -> None:
    seed = outcome.schedule.seed
    tag = f"{seed}" if outcome.schedule.origin != "shrunk" else \
        f"{seed}-shrunk-{len(outcome.schedule.items)}"
    write(out / f"asrun-{tag}.json", outcome.record.as_run().dumps(), "as run")
    write(out / f"verdict-{tag}.json",
          json.dumps({**outcome.verdict.to_json(), "record": outcome.record.to_json()},
                     indent=1) + "\n", "verdict")
    vmids = [int(sid.rsplit(":", 1)[1]) for sid in outcome.record.sids]
    for finding in outcome.verdict.findings:
        attach_finding(finding, timeline, cluster, vmids, scale)


def attach_finding(finding: Finding, timeline, cluster, vmids, scale: Timescale) -> None:
    """The timeline, the event table and every node's logs (the guests' own included)
    around one finding."""
    lo = finding.t - max(scale.scaled(BEFORE_S), MIN_SPAN_S)
    hi = finding.t + max(scale.scaled(AFTER_S), MIN_SPAN_S)
    events = [e for e in timeline.events() if lo <= e.t <= hi]
    with allure.step(f"finding: {finding}"):
        allure.attach(timeline_plot.render(events, nodes=cluster.names,
                                           title=str(finding)[:120]),
                      name="timeline around the finding",
                      attachment_type=allure.attachment_type.PNG)
        allure.attach(event_table.to_html(events, title=str(finding)),
                      name="events around the finding",
                      attachment_type=allure.attachment_type.HTML)
        logs = node_logs.collect(cluster, timeline.clock.wall(lo), timeline.clock.wall(hi),
                                 guest_vmids=vmids)
        for name, text in logs.items():
            allure.attach(text, name=f"logs on {name} around the finding",
                          attachment_type=allure.attachment_type.TEXT)
