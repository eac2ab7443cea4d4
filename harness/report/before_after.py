"""Before and after side by side: one small panel per figure of a verdict
(harness/verify.py): each side's samples as points, its mean as a bar, the noise floor
around the before mean shaded, the verdict in the panel's title in its colour.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from harness.report.plot_style import (
    FONT_PT,
    NODE_COLOURS,
    OVER_BUDGET_COLOUR,
    VERDICT_COLOURS,
    WINDOW_COLOUR,
)

COLUMNS = 3
SIDE_COLOURS = (NODE_COLOURS[0], NODE_COLOURS[1])  # before, after
TITLE_COLOURS = {"REGRESSION": OVER_BUDGET_COLOUR, "faster": VERDICT_COLOURS["ok"],
                 "same": VERDICT_COLOURS["measured"]}


def render(figures: Sequence, *, dpi: int = 100) -> bytes:
    """PNG of the figures (harness.verify.FigureVerdict), ``COLUMNS`` panels a row."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = max(1, math.ceil(len(figures) / COLUMNS))
    with matplotlib.style.context("default"), matplotlib.rc_context({"font.size": FONT_PT}):
        fig = Figure(figsize=(4.0 * COLUMNS, 0.6 + 2.6 * rows), dpi=dpi)
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, COLUMNS, squeeze=False).ravel()
        for ax in axes[len(figures):]:
            ax.set_axis_off()
        if not figures:
            axes[0].text(0.5, 0.5, "no figures to compare", ha="center", va="center",
                         transform=axes[0].transAxes)
        for ax, f in zip(axes, figures, strict=False):
            panel(ax, f)
        fig.suptitle("Before and after: samples (points), means (bars), noise floor around "
                     "the before mean (shaded)", x=0.01, ha="left")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def panel(ax, f) -> None:
    """One figure: x 0 is before, x 1 after."""
    for x, samples, colour in ((0, f.before, SIDE_COLOURS[0]), (1, f.after, SIDE_COLOURS[1])):
        if samples is None:
            continue
        n = len(samples.values)
        xs = [x + (i - (n - 1) / 2) * 0.06 for i in range(n)]  # spread, not stacked
        ax.scatter(xs, samples.values, color=colour, s=18, zorder=3)
        ax.hlines(samples.mean, x - 0.25, x + 0.25, color=colour, linewidth=2, zorder=2)
    if f.before is not None and f.floor_s is not None:
        ax.axhspan(f.before.mean - f.floor_s, f.before.mean + f.floor_s,
                   color=WINDOW_COLOUR, alpha=0.35, zorder=1)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["before", "after"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylabel("s")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{f.scenario}: {f.name}\n{f.verdict}", loc="left", fontsize=FONT_PT,
                 color=TITLE_COLOURS.get(f.verdict, VERDICT_COLOURS["open"]))
