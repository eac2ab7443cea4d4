"""Recovery time across runs: every run's figures are kept in a history file beside
metrics.json, and the report carries a picture of each recovery figure run after run, with
its predicted window and budget, so a nightly runner shows a trend, not just green/red.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.metrics import Metric

KEEP_RUNS = 60  # the history file keeps this many runs
TRENDED = ("time_to_recovery",)  # the figures a budget is about


@dataclass(frozen=True)
class Run:
    run: str
    when: str  # ISO time the run ended
    revision: str
    metrics: tuple[Metric, ...]
    setting: str = ""  # lab kind and timescale: figures of other settings do not compare


def append_run(path: Path, run: str, revision: str, metrics: Sequence[Metric], *,
               setting: str = "", keep: int = KEEP_RUNS) -> list[Run]:
    """Add this run to the history file (a run already there is replaced; the oldest
    beyond ``keep`` are dropped); returns the runs now in it, oldest first."""
    runs = [r for r in read_runs(path) if r.run != run]
    runs.append(Run(run, time.strftime("%Y-%m-%dT%H:%M:%S%z"), revision, tuple(metrics),
                    setting))
    runs = runs[-keep:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"run": r.run, "when": r.when, "revision": r.revision,
                                        "setting": r.setting,
                                        "metrics": [m.to_json() for m in r.metrics]}) + "\n"
                            for r in runs))
    return runs


def comparable(runs: Sequence[Run]) -> list[Run]:
    """The runs of the same setting as the last one (a recovery at timescale 0.1 takes a
    tenth of the seconds it takes on real PVE: the two do not make one trend)."""
    if not runs:
        return []
    return [r for r in runs if r.setting == runs[-1].setting]


def read_runs(path: Path) -> list[Run]:
    """The runs of a history file; a damaged line is skipped (the file is rewritten)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    runs = []
    for line in lines:
        try:
            doc = json.loads(line)
            runs.append(Run(str(doc["run"]), str(doc.get("when", "")),
                            str(doc.get("revision", "")),
                            tuple(Metric.from_json(m) for m in doc.get("metrics", [])),
                            str(doc.get("setting", ""))))
        except (ValueError, KeyError, TypeError):
            continue
    return runs


def series(runs: Sequence[Run]) -> dict[tuple[str, str], list[tuple[int, Metric]]]:
    """(scenario, metric) -> [(run index, metric)] for the trended recovery figures; a
    figure measured twice in one run (xdist) keeps its last value."""
    out: dict[tuple[str, str], dict[int, Metric]] = {}
    for index, run in enumerate(runs):
        for m in run.metrics:
            if m.name.endswith(TRENDED):
                out.setdefault((m.scenario, m.name), {})[index] = m
    return {key: sorted(values.items()) for key, values in sorted(out.items())}


def render(runs: Sequence[Run], *, width_px: int = 1600, dpi: int = 100) -> bytes:
    """One panel per recovery figure: its value run after run (red when its verdict was
    not ok), the latest predicted window shaded, the budget as a dashed line."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lines = series(runs)
    panels = max(1, len(lines))
    with matplotlib.style.context("default"), matplotlib.rc_context({"font.size": 9}):
        height_in = (1.0 + 2.0 * panels) * 100 / dpi
        fig = Figure(figsize=(width_px / dpi, height_in), dpi=dpi)
        FigureCanvasAgg(fig)
        axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
        if not lines:
            axes[0].text(0.5, 0.5, "no recovery figures recorded yet", ha="center",
                         va="center", transform=axes[0].transAxes)
            axes[0].set_axis_off()
        for ax, ((scenario, name), points) in zip(axes, lines.items(), strict=False):
            xs = [i for i, _ in points]
            ys = [m.value_s for _, m in points]
            ax.plot(xs, ys, color="#4c78a8", marker="o", linewidth=1.5)
            bad = [(i, m.value_s) for i, m in points if m.verdict not in ("ok", "measured")]
            if bad:
                ax.scatter(*zip(*bad, strict=True), color="#d62728", zorder=3,
                           label="outside window or over budget")
                ax.legend(loc="upper left", fontsize=8)
            latest = points[-1][1]
            if latest.window_s:
                ax.axhspan(*latest.window_s, color="#9ecae1", alpha=0.4)
            if latest.budget_s is not None:
                ax.axhline(latest.budget_s, color="#7b3294", linestyle="--", linewidth=1)
            ax.set_title(f"{scenario}: {name} (s)", loc="left", fontsize=10)
            ax.set_xticks(range(len(runs)))
            ax.set_xticklabels([r.when[5:16].replace("T", " ") for r in runs], rotation=30,
                               ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(runs) - 0.5)
            ax.grid(axis="y", alpha=0.3)
        setting = f" ({runs[-1].setting})" if runs and runs[-1].setting else ""
        fig.suptitle(f"Recovery time across the last {len(runs)} run(s){setting}: window "
                     "shaded, budget dashed", x=0.01, ha="left")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height_in))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def write_global_attachment(alluredir: Path, png: bytes, name: str) -> None:
    """Put a picture among the report's global attachments (Allure's *-globals.json)."""
    import uuid

    alluredir.mkdir(parents=True, exist_ok=True)
    source = f"{uuid.uuid4()}-attachment.png"
    (alluredir / source).write_bytes(png)
    (alluredir / f"{uuid.uuid4()}-globals.json").write_text(json.dumps({"attachments": [
        {"name": name, "source": source, "type": "image/png",
         "timestamp": int(time.time() * 1000)}]}))
