"""Evidence for the report, after every step of a scenario on a cluster (an autouse
fixture of the pvechaos plugin): each reachable node's `pvecm status` and `ha-manager
status`, the node logs around the step's faults (redacted), and the timeline so far as a
picture and as a table, attached to the Allure result. A failed step thus carries its
evidence."""

from __future__ import annotations

import time
from collections.abc import Iterator

import allure
import pytest

from harness.cluster import Cluster
from harness.errors import PvechaosError
from harness.events import Action, Event, NodeFault
from harness.fixtures import GUEST_VMID
from harness.metrics import MetricsFile
from harness.plugin import RUN_ID
from harness.report import event_table, node_logs, timeline_plot
from harness.report.redact import redact
from harness.timeline import EventKind, Timeline


@pytest.fixture(autouse=True)
def evidence(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every step of a scenario on a cluster: each reachable node's `pvecm status`
    and `ha-manager status`, the node logs around the step's faults (redacted), and the
    timeline so far as a picture (with the recoveries, their windows and budgets) and as
    a table. A failed step thus carries its evidence. Only for a test that uses the
    cluster, and only when there is a report to attach it to (--alluredir)."""
    if "cluster" not in request.fixturenames or \
            not getattr(request.config.option, "allure_report_dir", None):
        yield
        return
    timeline: Timeline = request.getfixturevalue("timeline")
    cluster: Cluster = request.getfixturevalue("cluster")
    facts = cluster.lab.describe()
    allure.dynamic.label("lab", facts.get("lab", cluster.lab.kind))
    allure.dynamic.tag(f"lab: {cluster.lab.kind}")
    version = facts.get("pve.version")  # a lab that knows its nodes' PVE says which
    if version:
        allure.dynamic.tag(f"PVE {version.split('.')[0]}")
    allure.dynamic.parameter("timescale", f"{timeline.clock.timescale:g}")
    started = timeline.clock.now()
    yield
    step = request.node.name
    with allure.step("evidence"):
        for node in cluster.nodes():
            if not cluster.lab.is_powered(node.name):
                continue
            for argv in (("pvecm", "status"), ("ha-manager", "status")):
                try:
                    result = node.run(*argv, timeout_s=15)
                    text = result.stdout + result.stderr
                except PvechaosError as exc:
                    text = f"(no answer: {exc})"
                allure.attach(redact(text), name=f"{' '.join(argv)} on {node.name}",
                              attachment_type=allure.attachment_type.TEXT)
        faults = timeline.events(FAULT_KINDS, after=started)
        if faults:
            vmids = (GUEST_VMID,) if "guest" in request.fixturenames else ()
            since = timeline.clock.wall(faults[0].t - node_logs.LEAD_S)
            for name, text in node_logs.collect(cluster, since, time.time(),
                                                guest_vmids=vmids).items():
                allure.attach(text, name=f"logs on {name} around "
                              f"{', '.join(describe(f) for f in faults)}",
                              attachment_type=allure.attachment_type.TEXT)
        title = f"{request.module.__name__.rsplit('.', 1)[-1]}: up to {step}"
        overlays = recovery_overlays(request, timeline)
        allure.attach(timeline_plot.render(timeline, nodes=cluster.names, overlays=overlays,
                                           title=title),
                      name="timeline", attachment_type=allure.attachment_type.PNG)
        allure.attach(event_table.to_html(timeline, title=title), name="events",
                      attachment_type=allure.attachment_type.HTML)
        allure.attach(event_table.to_csv(timeline), name="events.csv",
                      attachment_type=allure.attachment_type.CSV)


# every fault verb (power, shutdown, reset, freeze, link) and the scenario's own actions
FAULT_KINDS = (*(k for k in EventKind if k.value.startswith("fault.")), EventKind.ACTION)


def describe(event: Event) -> str:
    """``power cut node1``, ``pvecm expected 1 node2``: a fault or an action, briefly."""
    p = event.payload
    what = (p.what if isinstance(p, Action) else "") or \
        str(event.kind).split(".")[-1].replace("_", " ")
    node = p.node if isinstance(p, Action | NodeFault) else None
    return f"{what} {node}" if node else str(what)


def recovery_overlays(request: pytest.FixtureRequest, timeline: Timeline) -> list:
    """The recoveries this scenario measured so far (from the metrics of this run)."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    overlays = []
    for m in MetricsFile(request.config.getoption("metrics_file"),
                         request.config.stash[RUN_ID]).read(this_run_only=True):
        since = m.data.get("since_t")
        if m.scenario == module and m.name.endswith("time_to_recovery") and since is not None:
            overlays.append(timeline_plot.RecoveryOverlay(
                float(since), float(since) + m.value_s, window=m.window_s,
                budget_s=m.budget_s, label=m.name))
    return overlays
