"""A scenario's timeline as one picture: what every node believed, second by second.

A failover is a story told by several witnesses that disagree for a while: the harness
cut a node's power, each survivor noticed at its own moment, each node's HA status showed
the fence and the recovery when its poll came, and the probe heard the guest again from
its new node. Side by side on one time axis the disagreements are visible at a glance,
which a table of events does not give.

The picture is drawn in two steps so the first can be tested precisely: ``lanes`` turns
the events into bands of state (pure data), ``render`` only draws them (with markers for
faults, actions and broken invariants, and the recovery overlays the caller measured).
Lanes show what was *observed*: a node that is off shows whatever its watchers recorded
(``no answer``), never a state inferred from the power cut.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from harness.metrics import Metric
from harness.report import EventSource, as_events
from harness.timeline import Event, EventKind

K = EventKind
VIEW_KINDS = (K.MEMBERSHIP_CHANGED, K.QUORUM_LOST, K.QUORUM_REGAINED, K.VOTES_CHANGED)
# QuorumWatcher's note when a node answers but corosync gives no quorum information; its
# next view is recorded as a first view, so the band ends there.
NO_QUORUM_INFO = "no quorum information"
RUNNING_STATES = ("started", "starting")  # the service is placed and (being) run there
NORMAL_LRM = ("active", "idle")
SHORT_STATUS = {"old timestamp - dead?": "dead?", "unable to read lrm status": "unreadable"}


@dataclass(frozen=True)
class Band:
    """A lane was in one state from ``start`` to ``end`` (seconds).

    ``label`` is the text written on the band; ``state`` picks its colour, with ``node``
    for the states coloured per node (the probe's answers, HA's running service);
    ``detail`` is shown after the label where there is room (members, boot id)."""

    start: float
    end: float
    label: str
    state: str = ""
    node: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Lane:
    """One row of the picture: ``key`` like ``node1/power``, ``node1/quorum``,
    ``node1/ha-nodes``, ``node1/ha/ct:100`` or ``probe/ct100``; ``group`` the node it
    belongs to (``probes`` for the probes), for the separators."""

    key: str
    title: str
    group: str
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class Marker:
    """A moment drawn as a vertical line over every lane: ``fault``, ``action`` or
    ``invariant`` (a broken safety invariant, in red)."""

    t: float
    label: str
    kind: str


@dataclass(frozen=True)
class RecoveryOverlay:
    """A measured recovery, from ``start_s`` (the fault) to ``end_s`` (None: not
    recovered by the end of the record), with what it is judged against: PVE's predicted
    ``window`` and the user's ``budget_s``, both in seconds from ``start_s``."""

    start_s: float
    end_s: float | None
    window: tuple[float, float] | None = None
    budget_s: float | None = None
    label: str = "recovery"

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s

    @property
    def verdict(self) -> str:
        """As a Metric judges it (ok, outside_window, over_budget, ...); ``open`` when
        it has not ended."""
        if self.duration_s is None:
            return "open"
        return Metric("", self.label, self.duration_s, window_s=self.window,
                      budget_s=self.budget_s).verdict


# -- lanes as data -------------------------------------------------------------------------
class _Look(NamedTuple):
    label: str
    state: str = ""
    node: str | None = None
    detail: str = ""


NO_ANSWER = _Look("no answer", "no answer")
NO_VIEW = _Look("no view", "no view")


class _Track:
    """One lane's state through time: ``set`` changes it; the bands are the stretches
    between changes. Zero-length stretches (several events at one instant) vanish and
    equal neighbours merge, so a band is one visible state."""

    def __init__(self) -> None:
        self.bands: list[Band] = []
        self._look: _Look | None = None
        self._since = 0.0

    def set(self, t: float, look: _Look | None) -> None:
        if look == self._look:
            return
        self._close(t)
        self._look, self._since = look, t

    def finish(self, end: float) -> tuple[Band, ...]:
        self._close(end)
        self._look = None
        return tuple(self.bands)

    def _close(self, t: float) -> None:
        if self._look is None or t <= self._since:
            return
        band = Band(self._since, t, *self._look)
        last = self.bands[-1] if self.bands else None
        if last is not None and last.end == band.start and \
                (last.label, last.state, last.node, last.detail) == tuple(self._look):
            self.bands[-1] = Band(last.start, band.end, *self._look)
        else:
            self.bands.append(band)


def lanes(events: EventSource, nodes: Sequence[str], *, end: float | None = None,
          off_at_start: Collection[str] = ()) -> list[Lane]:
    """The picture's rows as data, closed at ``end`` (default: the last event).

    Per node, in the order given: its power (on from t=0 unless in ``off_at_start``),
    its own quorum view, its HA view of the master and LRMs (when any was recorded) and
    of each service; then one lane per probe. Events after ``end`` are ignored."""
    evs = as_events(events)
    start = min(0.0, evs[0].t) if evs else 0.0
    stop = (evs[-1].t if evs else start) if end is None else end
    evs = [e for e in evs if e.t <= stop]
    sids = sorted({str(e.data["sid"]) for e in evs
                   if e.kind == K.HA_SERVICE_STATE and e.data.get("sid") is not None})
    has_ha_nodes = any(e.kind in (K.HA_MASTER, K.HA_NODE_STATE) for e in evs)
    out: list[Lane] = []
    for node in nodes:
        own = [e for e in evs if e.source == node]
        out.append(Lane(f"{node}/power", f"{node} power", node,
                        _power(evs, node, start, node in off_at_start).finish(stop)))
        out.append(Lane(f"{node}/quorum", f"{node} quorum view", node,
                        _quorum(own).finish(stop)))
        if has_ha_nodes:
            out.append(Lane(f"{node}/ha-nodes", f"{node} HA master/LRMs", node,
                            _ha_nodes(own).finish(stop)))
        for sid in sids:
            out.append(Lane(f"{node}/ha/{sid}", f"{node} HA {sid}", node,
                            _ha_service(own, sid).finish(stop)))
    probes = sorted({e.source for e in evs if e.kind in (K.PROBE_UP, K.PROBE_DOWN)})
    for probe in probes:
        out.append(Lane(f"probe/{probe}", f"probe {probe}", "probes",
                        _probe(e for e in evs if e.source == probe).finish(stop)))
    return out


def _power(events: Iterable[Event], node: str, start: float, off: bool) -> _Track:
    track = _Track()
    track.set(start, _Look("off", "off") if off else _Look("on", "on"))
    for e in events:
        if e.data.get("node") != node:
            continue
        if e.kind == K.FAULT_POWER_CUT:
            track.set(e.t, _Look("off", "off"))
        elif e.kind == K.FAULT_POWER_ON:
            track.set(e.t, _Look("on", "on"))
    return track


def _members(data: Mapping[str, object]) -> str:
    members = data.get("members")
    listed = " ".join(map(str, members)) if isinstance(members, list | tuple) else "?"
    return f"{listed} ({data.get('total_votes', '?')}/{data.get('expected_votes', '?')} votes)"


def _quorum(own: Iterable[Event]) -> _Track:
    """The node's own quorum view: quorate / not quorate (with its members as detail),
    ``no answer`` while its watcher cannot reach it, ``no view`` while it answers without
    quorum information."""
    track = _Track()
    for e in own:
        if e.kind == K.NODE_UNREACHABLE:
            track.set(e.t, NO_ANSWER)
        elif e.kind == K.NODE_REACHABLE:
            track.set(e.t, NO_VIEW)  # the view of the same poll, if any, follows at once
        elif e.kind in VIEW_KINDS and "quorate" in e.data:
            label = "quorate" if e.data["quorate"] else "not quorate"
            track.set(e.t, _Look(label, label, None, _members(e.data)))
        elif e.kind == K.NOTE and str(e.data.get("text", "")).startswith(NO_QUORUM_INFO):
            track.set(e.t, NO_VIEW)
    return track


def _service_look(data: Mapping[str, object]) -> _Look | None:
    state, node = data.get("state"), data.get("node")
    if state is None:
        return None  # the service left this node's view
    state, node = str(state), (None if node is None else str(node))
    if node is None:
        return _Look(state, state)
    label = f"{state} on {node}" if state in RUNNING_STATES else f"{state} ({node})"
    return _Look(label, state, node)


def _ha_service(own: Iterable[Event], sid: str) -> _Track:
    """The service's state as this node's HA status shows it; ``no answer`` while the
    node cannot be reached (the watcher then resumes from the last view it gave)."""
    track, look, reachable = _Track(), None, True
    for e in own:
        if e.kind == K.HA_SERVICE_STATE and e.data.get("sid") == sid:
            look = _service_look(e.data)
        elif e.kind in (K.NODE_UNREACHABLE, K.NODE_REACHABLE):
            reachable = e.kind == K.NODE_REACHABLE
        else:
            continue
        track.set(e.t, look if reachable else NO_ANSWER)
    return track


def _short(status: object) -> str:
    return SHORT_STATUS.get(str(status), str(status))


def _ha_nodes(own: Iterable[Event]) -> _Track:
    """This node's view of the CRM master and of the LRMs that are not active or idle:
    ``master node1`` while all is well, ``master node1 dead?, lrm node1 dead?`` after a
    cut."""
    track, reachable = _Track(), True
    master: tuple[object, object] | None = None  # (node, status); node None: no master
    lrms: dict[str, str] = {}
    for e in own:
        if e.kind == K.HA_MASTER:
            master = (e.data.get("node"), e.data.get("status"))
        elif e.kind == K.HA_NODE_STATE and e.data.get("node") is not None:
            if e.data.get("status") is None:
                lrms.pop(str(e.data["node"]), None)
            else:
                lrms[str(e.data["node"])] = str(e.data["status"])
        elif e.kind in (K.NODE_UNREACHABLE, K.NODE_REACHABLE):
            reachable = e.kind == K.NODE_REACHABLE
        else:
            continue
        parts, degraded = [], False
        if master is not None:
            if master[0] is None:
                parts.append("no master")
                degraded = True
            elif master[1] == "active":
                parts.append(f"master {master[0]}")
            else:
                parts.append(f"master {master[0]} {_short(master[1])}")
                degraded = True
        for name, status in sorted(lrms.items()):
            if status not in NORMAL_LRM:
                parts.append(f"lrm {name} {_short(status)}")
                degraded = True
        label = ", ".join(parts) or "lrms ok"
        look = _Look(label, "ha degraded" if degraded else "ha ok")
        track.set(e.t, look if reachable else NO_ANSWER)
    return track


def _probe(events: Iterable[Event]) -> _Track:
    """``up on <node>`` (per boot: a restart in place is a new band) or ``down``."""
    track = _Track()
    for e in events:
        if e.kind == K.PROBE_UP:
            node = str(e.data.get("node", "?"))
            track.set(e.t, _Look(f"up on {node}", "up", node, f"boot {e.data.get('boot_id')}"))
        elif e.kind == K.PROBE_DOWN:
            track.set(e.t, _Look("down", "down"))
    return track


def markers(events: EventSource) -> list[Marker]:
    """Faults (every ``fault.*`` kind), scenario actions and broken invariants."""
    out = []
    for e in as_events(events):
        kind = str(e.kind)
        if kind == K.FAULT_POWER_CUT:
            out.append(Marker(e.t, f"power cut {e.data.get('node', '?')}", "fault"))
        elif kind == K.FAULT_POWER_ON:
            out.append(Marker(e.t, f"power on {e.data.get('node', '?')}", "fault"))
        elif kind.startswith("fault."):
            target = e.data.get("node", e.data.get("target", ""))
            out.append(Marker(e.t, f"{kind[6:].replace('_', ' ')} {target}".strip(), "fault"))
        elif kind == K.ACTION:
            out.append(Marker(e.t, str(e.data.get("what", "action")), "action"))
        elif kind == K.INVARIANT_BROKEN:
            out.append(Marker(e.t, f"{e.data.get('invariant', 'invariant')} broken", "invariant"))
    return out


# -- drawing -------------------------------------------------------------------------------
NODE_COLOURS = ("#4e79a7", "#b07aa1", "#76b7b2", "#9c755f", "#edc948", "#ff9da7", "#59a14f",
                "#bab0ac")
STATE_COLOURS = {
    "on": "#e3e3e3", "off": "#1a1a1a",
    "quorate": "#a6dba0", "not quorate": "#f4a582", "no answer": "#595959",
    "no view": "#cfcfcf",
    "down": "#fbd5d5",
    "fence": "#d62728", "recovery": "#ff7f0e", "error": "#7f0000",
    "queued": "#fee08b", "migrate": "#fee08b", "relocate": "#fee08b",
    "freeze": "#9ecae1", "stopped": "#bdbdbd", "request_stop": "#bdbdbd",
    "disabled": "#bdbdbd", "ignored": "#bdbdbd",
    "ha ok": "#e5f5e0", "ha degraded": "#fdb863",
}
UNKNOWN_COLOUR = "#e8e8e8"
MARKER_STYLES = {  # colour, line style, width
    "fault": ("#333333", "--", 1.3),
    "action": ("#2166ac", ":", 1.6),
    "invariant": ("#e41a1c", "-", 2.2),
}
VERDICT_COLOURS = {"ok": "#1a9850", "measured": "#525252", "outside_window": "#f46d43",
                   "open": "#969696"}
OVER_BUDGET_COLOUR = "#d73027"
WINDOW_COLOUR = "#9ecae1"
BUDGET_COLOUR = "#762a83"
MARKER_LEVELS = 4
FONT_PT = 8.5
CHAR_EM = 0.6  # a character's mean width in ems, to decide whether a label fits


def _lighter(colour: str, amount: float = 0.5) -> str:
    from matplotlib.colors import to_hex, to_rgb
    return to_hex(tuple(c + (1 - c) * amount for c in to_rgb(colour)))


def _node_colours(lane_list: Sequence[Lane], nodes: Sequence[str]) -> dict[str, str]:
    """Nodes in the given order first, then any other node a band names, sorted."""
    others = sorted({b.node for lane in lane_list for b in lane.bands
                     if b.node is not None and b.node not in nodes})
    return {n: NODE_COLOURS[i % len(NODE_COLOURS)] for i, n in enumerate([*nodes, *others])}


def _band_style(band: Band, node_colours: Mapping[str, str]) -> tuple[str, str]:
    """(face colour, legend entry)."""
    if band.node is not None and band.state in ("up", "started"):
        return node_colours.get(band.node, UNKNOWN_COLOUR), f"{band.node}: up / started"
    if band.node is not None and band.state == "starting":
        return _lighter(node_colours.get(band.node, UNKNOWN_COLOUR)), f"{band.node}: starting"
    return STATE_COLOURS.get(band.state, UNKNOWN_COLOUR), band.state or band.label


def _text_colour(face: str) -> str:
    from matplotlib.colors import to_rgb
    r, g, b = to_rgb(face)
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#1a1a1a"


def render(events: EventSource, *, nodes: Sequence[str],
           overlays: Sequence[RecoveryOverlay] = (), title: str = "",
           off_at_start: Collection[str] = (), width_px: int = 1600, height_px: int = 900,
           dpi: int = 100) -> bytes:
    """The timeline as a PNG of ``width_px`` x ``height_px``: the ``lanes`` of ``nodes``,
    the probes, the ``markers`` and one row per recovery overlay, on one time axis.

    Deterministic: the same events give the same bytes (no date, no software tag)."""
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    evs = as_events(events)
    start = min(0.0, evs[0].t) if evs else 0.0
    points = [e.t for e in evs]
    for o in overlays:
        points += [o.start_s, o.end_s if o.end_s is not None else o.start_s]
        points += [o.start_s + o.window[1]] if o.window else []
        points += [o.start_s + o.budget_s] if o.budget_s is not None else []
    last = max(points, default=start)
    right = max(last, start + 1.0) + max(1.0, 0.02 * (max(last, start + 1.0) - start))
    lane_list = lanes(evs, nodes, end=last, off_at_start=off_at_start)
    marks = markers(evs)

    # matplotlib's defaults, whatever a matplotlibrc says: the same bytes everywhere
    with matplotlib.style.context("default"), matplotlib.rc_context({"font.size": FONT_PT}):
        fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, 1, height_ratios=(1, 10), hspace=0.02, left=0.11,
                                right=0.85, top=0.93 if title else 0.97, bottom=0.07)
        strip = fig.add_subplot(grid[0])
        ax = fig.add_subplot(grid[1], sharex=strip)
        px_per_s = (0.85 - 0.11) * width_px / (right - start)
        char_s = FONT_PT * CHAR_EM * dpi / 72 / px_per_s  # seconds one character covers
        legend: dict[str, object] = {}
        node_colours = _node_colours(lane_list, nodes)

        _draw_lanes(ax, lane_list, node_colours, char_s, legend)
        _draw_overlays(ax, overlays, len(lane_list), right, legend)
        rows = len(lane_list) + len(overlays)
        ax.set_ylim(max(rows, 1) - 0.5, -0.5)
        ax.set_yticks(range(rows),
                      [lane.title for lane in lane_list] + [o.label for o in overlays])
        ax.set_xlim(start, right)
        ax.set_xlabel("seconds since the start of the run")
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        _draw_markers(ax, strip, marks, char_s, legend)
        if not evs and not overlays:
            ax.text(0.5, 0.5, "no events recorded", transform=ax.transAxes, ha="center",
                    va="center", fontsize=14, color="#777777")
        if title:
            fig.suptitle(title, fontsize=13, x=0.11, ha="left")
        if legend:
            fig.legend(handles=list(legend.values()), loc="upper left",
                       bbox_to_anchor=(0.86, 0.93 if title else 0.97), frameon=False,
                       fontsize=FONT_PT - 0.5, handlelength=1.6, borderaxespad=0)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=dpi, metadata={"Software": None})
    return out.getvalue()


def _draw_lanes(ax, lane_list: Sequence[Lane], node_colours: Mapping[str, str],
                char_s: float, legend: dict[str, object]) -> None:
    from matplotlib.patches import Patch, Rectangle

    groups = [lane.group for lane in lane_list]
    for y, lane in enumerate(lane_list):
        if y and groups[y] != groups[y - 1]:
            ax.axhline(y - 0.5, color="#8c8c8c", linewidth=1.0)
        if list(dict.fromkeys(groups)).index(lane.group) % 2:
            ax.axhspan(y - 0.5, y + 0.5, color="#f5f5f5", zorder=0)
        for band in lane.bands:
            face, entry = _band_style(band, node_colours)
            ax.add_patch(Rectangle((band.start, y - 0.38), band.end - band.start, 0.76,
                                   facecolor=face, edgecolor="white", linewidth=0.8, zorder=2))
            legend.setdefault(entry, Patch(facecolor=face, edgecolor="#999999", label=entry))
            width = band.end - band.start
            text = band.label
            if band.detail and (len(text) + len(band.detail) + 5) * char_s <= width:
                text = f"{band.label} · {band.detail}"
            if (len(text) + 1) * char_s <= width:
                ax.text(band.start + width / 2, y, text, ha="center", va="center",
                        color=_text_colour(face), fontsize=FONT_PT, zorder=4, clip_on=True)


def _draw_overlays(ax, overlays: Sequence[RecoveryOverlay], first_row: int, right: float,
                   legend: dict[str, object]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    for i, o in enumerate(overlays):
        y = first_row + i
        ax.axhline(y - 0.5, color="#8c8c8c", linewidth=1.0)
        if o.window is not None:
            lo, hi = o.start_s + o.window[0], o.start_s + o.window[1]
            ax.add_patch(Rectangle((lo, y - 0.45), hi - lo, 0.9, facecolor=WINDOW_COLOUR,
                                   alpha=0.7, edgecolor="none", zorder=1))
            legend.setdefault("predicted window", Patch(facecolor=WINDOW_COLOUR, alpha=0.7,
                                                        label="predicted window"))
        verdict = o.verdict
        colour = OVER_BUDGET_COLOUR if "over_budget" in verdict else VERDICT_COLOURS.get(
            verdict.split("+")[0], VERDICT_COLOURS["measured"])
        end = o.end_s if o.end_s is not None else right
        ax.add_patch(Rectangle((o.start_s, y - 0.05), end - o.start_s, 0.3, facecolor=colour,
                               edgecolor=colour, hatch="//" if o.end_s is None else None,
                               alpha=0.5 if o.end_s is None else 1.0, zorder=3))
        legend.setdefault(f"recovery: {verdict}",
                          Patch(facecolor=colour, label=f"recovery: {verdict}"))
        shown = "not recovered" if o.duration_s is None else f"{o.duration_s:.1f} s"
        ax.text(o.start_s, y - 0.22, f" {o.label}: {shown} ({verdict})", ha="left",
                va="center", fontsize=FONT_PT, zorder=4, color="#1a1a1a")
        if o.budget_s is not None:
            at = o.start_s + o.budget_s
            ax.plot([at, at], [y - 0.47, y + 0.47], color=BUDGET_COLOUR, linestyle="--",
                    linewidth=2.0, zorder=4)
            ax.text(at, y + 0.36, f" budget {o.budget_s:g} s", ha="left", va="center",
                    fontsize=FONT_PT - 0.5, color=BUDGET_COLOUR, zorder=4)
            legend.setdefault("budget", Line2D([], [], color=BUDGET_COLOUR, linestyle="--",
                                               linewidth=2.0, label="budget"))


def _draw_markers(ax, strip, marks: Sequence[Marker], char_s: float,
                  legend: dict[str, object]) -> None:
    """Lines over every lane; labels in the strip above, on the first of a few levels
    where they do not run into the previous label (else on the least crowded one)."""
    from matplotlib.lines import Line2D

    strip.set_ylim(MARKER_LEVELS - 0.4, -0.6)
    strip.set_yticks([])
    strip.tick_params(axis="x", labelbottom=False, length=0)
    for side in ("top", "right", "left"):
        strip.spines[side].set_visible(False)
    ends = [float("-inf")] * MARKER_LEVELS
    names = {"fault": "fault", "action": "action", "invariant": "invariant broken"}
    for mark in marks:
        colour, style, width = MARKER_STYLES.get(mark.kind, MARKER_STYLES["fault"])
        for axes in (ax, strip):
            # over the bands, under their labels
            axes.axvline(mark.t, color=colour, linestyle=style, linewidth=width, zorder=3)
        free = [i for i, e in enumerate(ends) if e <= mark.t]
        level = free[0] if free else min(range(MARKER_LEVELS), key=lambda i: ends[i])
        ends[level] = mark.t + (len(mark.label) + 2) * char_s
        strip.text(mark.t, level, f" {mark.label}", ha="left", va="center", color=colour,
                   fontsize=FONT_PT, fontweight="bold" if mark.kind == "invariant" else None,
                   bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5}, zorder=6)
        name = names.get(mark.kind, mark.kind)
        legend.setdefault(name, Line2D([], [], color=colour, linestyle=style, linewidth=width,
                                       label=name))
