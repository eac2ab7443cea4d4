"""A scenario's timeline as one picture: what every node believed, second by second.

A failover is a story told by several witnesses that disagree for a while: the harness
cut a node's power, each survivor noticed at its own moment, each node's HA status showed
the fence and the recovery when its poll came, and the probe heard the guest again from
its new node. Side by side on one time axis the disagreements are visible at a glance,
which a table of events does not give.

The picture is drawn in two steps so the first can be tested precisely: ``lanes`` turns
the events into bands of state (pure data, harness/report/lanes.py), ``render`` only
draws them (with markers for faults, actions and broken invariants, a shade over a
node's lanes while a fault is in force on it, and the recovery overlays the caller
measured), in the look of harness/report/plot_style.py.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from harness.metrics import Metric
from harness.report import EventSource, as_events
from harness.report.lanes import Band, Lane, Marker, is_fault_lane, lanes, markers
from harness.report.plot_style import (
    BUDGET_COLOUR,
    CHAR_EM,
    FAULT_SHADE_ALPHA,
    FONT_PT,
    MARKER_LEVELS,
    MARKER_STYLES,
    OVER_BUDGET_COLOUR,
    VERDICT_COLOURS,
    WINDOW_COLOUR,
    band_style,
    fault_colour,
    node_colours,
    text_colour,
)

__all__ = ["Band", "Lane", "Marker", "RecoveryOverlay", "lanes", "markers", "render"]


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
        colours = node_colours(lane_list, nodes)

        _draw_lanes(ax, lane_list, colours, char_s, legend)
        _shade_faults(ax, lane_list)
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


def _draw_lanes(ax, lane_list: Sequence[Lane], colours: Mapping[str, str],
                char_s: float, legend: dict[str, object]) -> None:
    from matplotlib.patches import Patch, Rectangle

    groups = [lane.group for lane in lane_list]
    for y, lane in enumerate(lane_list):
        if y and groups[y] != groups[y - 1]:
            ax.axhline(y - 0.5, color="#8c8c8c", linewidth=1.0)
        if list(dict.fromkeys(groups)).index(lane.group) % 2:
            ax.axhspan(y - 0.5, y + 0.5, color="#f5f5f5", zorder=0)
        for band in lane.bands:
            face, entry = band_style(band, colours)
            ax.add_patch(Rectangle((band.start, y - 0.38), band.end - band.start, 0.76,
                                   facecolor=face, edgecolor="white", linewidth=0.8, zorder=2))
            legend.setdefault(entry, Patch(facecolor=face, edgecolor="#999999", label=entry))
            width = band.end - band.start
            text = band.label
            if band.detail and (len(text) + len(band.detail) + 5) * char_s <= width:
                text = f"{band.label} · {band.detail}"
            if (len(text) + 1) * char_s <= width:
                ax.text(band.start + width / 2, y, text, ha="center", va="center",
                        color=text_colour(face), fontsize=FONT_PT, zorder=4, clip_on=True)


def _shade_faults(ax, lane_list: Sequence[Lane]) -> None:
    """Each fault band casts a shade, edged in its colour, over every lane of its node
    from its start to its end, so what the node saw meanwhile reads against it."""
    from matplotlib.patches import Rectangle

    rows: dict[str, list[int]] = {}
    for y, lane in enumerate(lane_list):
        rows.setdefault(lane.group, []).append(y)
    for lane in lane_list:
        if not is_fault_lane(lane):
            continue
        top, bottom = min(rows[lane.group]) - 0.5, max(rows[lane.group]) + 0.5
        for band in lane.bands:
            colour = fault_colour(band.label)
            ax.add_patch(Rectangle((band.start, top), band.end - band.start, bottom - top,
                                   facecolor=colour, alpha=FAULT_SHADE_ALPHA,
                                   edgecolor="none", zorder=3))
            ax.add_patch(Rectangle((band.start, top), band.end - band.start, bottom - top,
                                   facecolor="none", edgecolor=colour, linewidth=1.0,
                                   linestyle="-", zorder=3))


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
        if not mark.label:  # a later line of a fault labelled at its first
            continue
        free = [i for i, e in enumerate(ends) if e <= mark.t]
        level = free[0] if free else min(range(MARKER_LEVELS), key=lambda i: ends[i])
        ends[level] = mark.t + (len(mark.label) + 2) * char_s
        strip.text(mark.t, level, f" {mark.label}", ha="left", va="center", color=colour,
                   fontsize=FONT_PT, fontweight="bold" if mark.kind == "invariant" else None,
                   bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5}, zorder=6)
        name = names.get(mark.kind, mark.kind)
        legend.setdefault(name, Line2D([], [], color=colour, linestyle=style, linewidth=width,
                                       label=name))
