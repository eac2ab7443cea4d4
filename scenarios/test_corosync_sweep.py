"""The latency and loss sweep on corosync's traffic: from which delay and which loss does
the cluster flap or lose quorum?

For each point, ``faults.degrade`` delays (tc netem; without it the NFQUEUE delayer) or
drops at random (nftables) the
outgoing corosync traffic of every node (or of one node), holds it, and the quorum
watcher's timeline says what happened during the hold:

- ``held``: no membership change and no quorum loss seen by any node;
- ``flapped``: some node's membership changed, none lost quorum;
- ``lost``: some node saw itself without quorum;
- ``re-formed``: no change of members seen, but node1's Ring ID moved: corosync formed a
  new ring with the same members (pve-faults §5.5: a token timeout answered before
  consensus expires); `pvecm status` usually blocks meanwhile;
- ``stalled``: no change seen and the same ring, but `pvecm status` went unanswered on
  some node.

Then the fault is ended (on a node that reset meanwhile the reset ended it), nothing of it
may be left on any node (``faults.leftovers``), and the whole cluster must be back before
the next point.

What PVE's design says (pve-faults.md §5.3, **Derived** from corosync's
``exec/totemconfig.c`` and knet's ``libknet/threads_heartbeat.c``): knet discards pongs
slower than the pong timeout (token / 2, ≈1.8 s) and totem tolerates a token rotation up
to the token timeout, so a delay well below those keeps quorum. That is the only thing
asserted here (points whose added round trip is at most a tenth of the pong timeout must
hold). Where flapping starts for delay, loss or both is not given by the design (pve-faults
§5.3 "measure it"): those thresholds are reported as ``measured`` only.

Short form by default (CI: a few points, short holds; corosync's timers are real, not
scaled, so --timescale does not shorten a hold). ``PVECHAOS_SWEEP=full`` runs the full
grid; ``PVECHAOS_SWEEP_NODES=one`` degrades only the first node (default: all nodes);
``PVECHAOS_SWEEP_HOLD_S`` sets the hold; ``-k loss50`` picks points.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import textwrap
import time
from dataclasses import asdict, dataclass

import allure
import pytest

from harness import netfaults
from harness.errors import PvechaosError, UnsupportedFault
from harness.events import MembershipChanged, Unreachable
from harness.timeline import EventKind

pytestmark = [pytest.mark.sweep, allure.epic("Network faults"),
              allure.feature("Latency and loss sweep")]

FORM = os.environ.get("PVECHAOS_SWEEP", "short")
TARGET = os.environ.get("PVECHAOS_SWEEP_NODES", "all")
if FORM not in ("short", "full") or TARGET not in ("all", "one"):
    raise pytest.UsageError(f"PVECHAOS_SWEEP={FORM!r} / PVECHAOS_SWEEP_NODES={TARGET!r}: "
                            "use PVECHAOS_SWEEP=short|full and PVECHAOS_SWEEP_NODES=all|one")
# (delays in ms, losses in %, hold in s)
GRIDS = {
    "short": ((50,), (5, 40), 12.0),
    "full": ((1, 2, 5, 10, 50, 100, 200, 400, 700, 900, 1200, 2000),
             (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90), 60.0),
}
DELAYS, LOSSES, HOLD_S = GRIDS[FORM]
HOLD_S = float(os.environ.get("PVECHAOS_SWEEP_HOLD_S", HOLD_S))  # seconds per point
HEAL_S = 90  # corosync re-forms a membership in token + consensus (≈8 s) per round


@dataclass
class Point:
    delay_ms: float
    loss_pct: float
    target: str
    hold_s: float
    outcome: str = "not run"
    first_change_s: float | None = None
    membership_changes: int = 0
    quorum_losses: int = 0
    unanswered_polls: int = 0
    packets_dropped: int | None = None
    ring_ids: str = ""  # node1's Ring ID before -> after (a re-formation bumps it)
    note: str = ""

    @property
    def label(self) -> str:
        if self.delay_ms:
            return f"delay {self.delay_ms:g} ms"
        return f"loss {self.loss_pct:g} %" if self.loss_pct else "baseline"


# a baseline first: the same hold with no fault, so what the harness itself sees (a slow
# `pvecm status` on a loaded host) is not taken for an effect of the fault
POINTS = [Point(0, 0, TARGET, HOLD_S)] + [Point(d, 0, TARGET, HOLD_S) for d in DELAYS] + \
    [Point(0, p, TARGET, HOLD_S) for p in LOSSES]
RESULTS: list[Point] = []


def judge(timeline, start: float, end: float, point: Point, rings: tuple[str, str] = ("", "")
          ) -> None:
    """Fill ``point`` from what the quorum watcher saw between ``start`` and ``end``, and
    from node1's Ring ID before and after (``rings``)."""
    changes = [e for e in timeline.events(EventKind.MEMBERSHIP_CHANGED, after=start)
               if e.t <= end and not e.payload_of(MembershipChanged).first_view]
    losses = [e for e in timeline.events(EventKind.QUORUM_LOST, after=start) if e.t <= end]
    silent = [e for e in timeline.events(EventKind.NODE_UNREACHABLE, after=start)
              if e.t <= end]
    point.membership_changes, point.quorum_losses = len(changes), len(losses)
    point.unanswered_polls = len(silent)
    if silent:
        point.note = "; ".join(f"{e.source} at +{e.t - start:.1f} s: "
                               f"{e.payload_of(Unreachable).reason}" for e in silent)[:400]
    firsts = [e.t for e in changes + losses]
    point.first_change_s = round(min(firsts) - start, 2) if firsts else None
    point.ring_ids = " -> ".join(rings) if any(rings) else ""
    point.outcome = ("lost" if losses else "flapped" if changes
                     else "re-formed" if rings[0] != rings[1]
                     else "stalled" if silent else "held")


def dropped(cluster, boots: dict[str, str]) -> tuple[int | None, list[str]]:
    """Packets the random-loss rules dropped so far on the nodes of ``boots`` (node ->
    boot id when the rules were set), and the nodes left out: a node that reset (or went
    down) lost its rules and their counters with that boot. None when no node is left."""
    counts, gone = [], []
    for name, boot in boots.items():
        node = cluster.node(name)
        changed = node.boot_changed(boot)
        if changed is None:
            try:
                counts.append(netfaults.dropped_packets(node.check(
                    f"nft list chain {netfaults.TABLE} {netfaults.LOSS_CHAIN}",
                    timeout_s=10)))
                continue
            except PvechaosError as exc:  # it reset while answering
                changed = str(exc).splitlines()[0]
        gone.append(f"{name}: {changed}")
    return (sum(counts) if counts else None), gone


IDS = [p.label.replace(" ", "").replace("%", "pct") for p in POINTS]  # -k loss5pct


@pytest.mark.parametrize("point", POINTS, ids=IDS)
def test_point(point: Point, cluster, faults, timeline, quorum_watcher, constants, metrics):
    names = cluster.names
    faults.end_all("netem")  # what an earlier point could not end (it failed for it)
    stale = faults.leftovers()
    if stale:  # an earlier point's end failed (that point failed for it): start clean
        assert faults.sweep_nodes() == {}
        assert faults.leftovers() == {}, f"the sweep could not remove {stale}"
    for name in names:  # every point starts from the whole cluster
        cluster.wait_whole_view(name, timeout_s=HEAL_S)
    nodes = names if point.target == "all" else names[:1]
    ring_before = cluster.node(names[0]).quorum(timeout_s=10).ring_id
    boots = {name: cluster.node(name).boot_id() for name in nodes}
    applied = []
    start = timeline.clock.now()
    try:
        for name in nodes if point.delay_ms or point.loss_pct else ():
            applied.append(faults.degrade(name, delay_ms=point.delay_ms,
                                          loss_pct=point.loss_pct))
    except UnsupportedFault as exc:
        for fault in applied:
            faults.end(fault)
        point.outcome, point.note = "unsupported", str(exc).splitlines()[0]
        RESULTS.append(point)
        pytest.skip(f"{point.label}: {point.note}")
    with allure.step(f"hold {point.label} on {', '.join(nodes)} for {point.hold_s:g} s"):
        time.sleep(point.hold_s)  # the quorum watcher polls every node meanwhile
    end = timeline.clock.now()
    reset: list[str] = []
    try:
        if point.loss_pct:
            point.packets_dropped, reset = dropped(cluster, boots)
    finally:
        faults.end_all("netem")  # a node reset under the fault counts as its end
    left = faults.leftovers()
    assert left == {}, f"{point.label}: still in force after its end: {left}"
    for name in names:  # a node that reset under the fault is back before the next look
        cluster.wait_whole_view(name, timeout_s=HEAL_S)
    judge(timeline, start, end, point,
          (ring_before, cluster.node(names[0]).quorum(timeout_s=30).ring_id))
    if reset:  # measured, as every outcome here: the counters went with the reset
        point.note = "; ".join(filter(None, [f"not counted ({', '.join(reset)})",
                                             point.note]))[:400]
    RESULTS.append(point)
    metrics.record(f"sweep {point.label}",
                   point.first_change_s if point.first_change_s is not None else point.hold_s,
                   **{k: v for k, v in asdict(point).items() if k != "first_change_s"},
                   first_change_s=point.first_change_s, form=FORM,
                   basis="measured: seconds to the first membership change or quorum loss; "
                         "the whole hold when none")
    if point.loss_pct and point.packets_dropped is not None:
        assert point.packets_dropped, "the loss rule dropped nothing: the fault did not act"
    # PVE's design (pve-faults §5.3, Derived): well below the pong timeout quorum holds
    pong_timeout_ms = constants.token_ms / 2
    round_trip_ms = point.delay_ms * (2 if point.target == "all" else 1)
    if point.delay_ms and not point.loss_pct and round_trip_ms <= pong_timeout_ms / 10:
        assert point.outcome == "held", (
            f"{point.label}: {point.outcome} although the added round trip "
            f"({round_trip_ms:g} ms) is a tenth of knet's pong timeout "
            f"({pong_timeout_ms:g} ms) or less (pve-faults §5.3)")


def table_rows(points: list[Point]) -> list[dict[str, object]]:
    return [{"point": p.label, "target": p.target, "hold_s": p.hold_s, "outcome": p.outcome,
             "first_change_s": p.first_change_s, "membership_changes": p.membership_changes,
             "quorum_losses": p.quorum_losses, "unanswered_polls": p.unanswered_polls,
             "packets_dropped": p.packets_dropped, "ring_ids": p.ring_ids, "note": p.note}
            for p in points]


def to_html(rows: list[dict[str, object]]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>"
                                    for v in row.values()) + "</tr>" for row in rows)
    return (f"<html><body><p>corosync sweep ({FORM} form); outcomes are measured, not "
            f"predicted (pve-faults.md §5.3)</p><table border=1>"
            f"<tr>{head}</tr>{body}</table></body></html>")


OUTCOME_Y = {"held": 0, "stalled": 1, "re-formed": 2, "flapped": 3, "lost": 4}


def plot(points: list[Point]) -> bytes:
    """Outcome against delay and against loss, one panel each (PNG)."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"):
        fig = Figure(figsize=(9, 3.2))
        FigureCanvasAgg(fig)
        for i, (axis, unit) in enumerate((("delay_ms", "added delay (ms)"),
                                          ("loss_pct", "random loss (%)"))):
            ax = fig.add_subplot(1, 2, i + 1)
            mine = [p for p in points if getattr(p, axis) and p.outcome in OUTCOME_Y]
            ax.plot([getattr(p, axis) for p in mine], [OUTCOME_Y[p.outcome] for p in mine],
                    "o-", color="#4e79a7")
            ax.set_yticks(list(OUTCOME_Y.values()), list(OUTCOME_Y))
            ax.set_ylim(-0.5, 4.5)
            ax.set_xlabel(unit)
            if not mine:
                why = {p.note for p in points if getattr(p, axis) and p.note} or {"no point"}
                text = textwrap.fill("not measured: " + "; ".join(sorted(why)), 40)
                ax.text(0.5, 0.5, text[:200], ha="center", va="center", fontsize=7,
                        transform=ax.transAxes, bbox={"facecolor": "white", "lw": 0})
                ax.set_xticks([])
            elif axis == "delay_ms":
                ax.set_xscale("symlog", linthresh=10)
            ax.grid(True, alpha=0.3)
        fig.suptitle(f"corosync under degraded links ({TARGET} nodes, {FORM} form, "
                     f"hold {HOLD_S:g} s): measured")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=100, metadata={"Software": None})
        return out.getvalue()


def test_table(metrics, constants):
    """The sweep's table and plot, for the report and metrics.json."""
    if not RESULTS:
        pytest.skip("no point ran")
    rows = table_rows(RESULTS)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    allure.attach(to_html(rows), name="corosync sweep table",
                  attachment_type=allure.attachment_type.HTML)
    allure.attach(text.getvalue(), name="corosync sweep.csv",
                  attachment_type=allure.attachment_type.CSV)
    allure.attach(plot(RESULTS), name="corosync sweep plot",
                  attachment_type=allure.attachment_type.PNG)
    ran = [p for p in RESULTS if p.outcome != "unsupported"]
    metrics.record("sweep table", sum(p.hold_s for p in ran), form=FORM, target=TARGET,
                   token_ms=constants.token_ms, pong_timeout_ms=constants.token_ms / 2,
                   rows=rows)
    print("\n" + json.dumps(rows, indent=1))
