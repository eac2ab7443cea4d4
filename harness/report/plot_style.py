"""The timeline picture's look: colours per state, node and verdict, marker styles, the
font, and the small colour rules (a lighter shade, readable text on a face).

harness/report/timeline_plot.py draws with these; matplotlib is imported only when a
colour is computed, as the picture is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.report.fault_bands import STATE_PREFIX
from harness.report.lanes import Band, Lane

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
# fault bands (harness/report/fault_bands.py), by the fault's family (before any dot)
FAULT_COLOURS = {
    "partition": "#8e0152", "one-way": "#c51b7d", "link down": "#8e0152",
    "netem": "#de77ae", "daemon": "#7b3294", "clock": "#e08214", "storage": "#8c510a",
    "freeze": "#2166ac",
}
FAULT_COLOUR = "#636363"  # a fault family this version does not know
FAULT_SHADE_ALPHA = 0.13  # the shade a fault casts over its node's other lanes
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


def lighter(colour: str, amount: float = 0.5) -> str:
    from matplotlib.colors import to_hex, to_rgb
    return to_hex(tuple(c + (1 - c) * amount for c in to_rgb(colour)))


def node_colours(lane_list: Sequence[Lane], nodes: Sequence[str]) -> dict[str, str]:
    """Nodes in the given order first, then any other node a band names, sorted."""
    others = sorted({b.node for lane in lane_list for b in lane.bands
                     if b.node is not None and b.node not in nodes})
    return {n: NODE_COLOURS[i % len(NODE_COLOURS)] for i, n in enumerate([*nodes, *others])}


def fault_colour(fault: str) -> str:
    """``daemon.kill`` and ``daemon.pause`` share the daemon colour."""
    return FAULT_COLOURS.get(fault, FAULT_COLOURS.get(fault.split(".")[0], FAULT_COLOUR))


def band_style(band: Band, colours: Mapping[str, str]) -> tuple[str, str]:
    """(face colour, legend entry); ``colours``: the node colours (``node_colours``)."""
    if band.state.startswith(STATE_PREFIX):
        return fault_colour(band.label), band.state
    if band.node is not None and band.state in ("up", "started"):
        return colours.get(band.node, UNKNOWN_COLOUR), f"{band.node}: up / started"
    if band.node is not None and band.state == "starting":
        return lighter(colours.get(band.node, UNKNOWN_COLOUR)), f"{band.node}: starting"
    return STATE_COLOURS.get(band.state, UNKNOWN_COLOUR), band.state or band.label


def text_colour(face: str) -> str:
    from matplotlib.colors import to_rgb
    r, g, b = to_rgb(face)
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#1a1a1a"

