"""The demo's map: every site by latitude and longitude, the ones that ran coloured by the
requests they served, and a line for each route the answers took, as thick as it was used.

Rules:
- matplotlib is optional (a dev dependency): without it nothing is drawn, the caller prints
  `hubhop.loadgen.output.NO_MATPLOTLIB` and the JSON still holds every figure.
- The map is equirectangular with the x axis shrunk by cos(latitude), so distances look right
  around the network's middle; it is a sketch of where things are, not a survey. It frames
  the sites that ran (other sites of the topology in view are grey dots), and spreads the sites
  of one city on a small circle around it, so a hospital and its city's data centre, a few km
  apart, are two markers with a route between them.
- Routes are drawn per lane, entry to serving node through any relay, with the line's width
  proportional to its count; a request served by its own entry node draws no line (its count
  is in the node's colour).
- The latency CDF per lane and tier is the load generator's plot (`hubhop.loadgen.output`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hubhop.loadgen.output import save_figure
from hubhop.wan.topology import Topology

# Lane colours: emergency stands out, batch recedes; emergency is drawn last, on top.
LANE_COLOURS = {"emergency": "tab:red", "standard": "tab:blue", "batch": "tab:gray"}
LANE_ORDER = ("batch", "standard", "emergency")
OTHER_COLOUR = "tab:green"
MARKERS = {"edge": "^", "city": "o", "hub": "s"}
# The busiest route is this wide (points); the least used ones never vanish below MIN_WIDTH.
MAX_WIDTH = 6.0
MIN_WIDTH = 0.6
# Degrees around the sites that ran; a slice inside one city is still framed as a region.
FRAME_MARGIN_DEG = 1.5
MIN_SPAN_DEG = 3.0
# Sites of one city sit on a circle this share of the frame's span across.
CITY_SPREAD = 0.035
# A label sits this many points from its marker.
LABEL_OFFSET = 6.0


def positions(
    topology: Topology, ran: Sequence[str], angles: dict[str, float] | None = None
) -> dict[str, tuple[float, float]]:
    """(x = longitude, y = latitude) to draw each site at: its own, but the sites that ran in
    one city spread evenly around the city's first such site (each one's angle on the circle
    goes into `angles`, so its label can point outwards)."""
    where = {s.name: (s.lon, s.lat) for s in topology.sites}
    xs = [where[n][0] for n in ran] or [0.0]
    ys = [where[n][1] for n in ran] or [0.0]
    radius = CITY_SPREAD * max(MIN_SPAN_DEG, max(xs) - min(xs), max(ys) - min(ys))
    by_city: dict[str, list[str]] = {}
    for name in ran:
        by_city.setdefault(topology.site(name).city, []).append(name)
    for names in by_city.values():
        if len(names) < 2:
            continue
        cx, cy = where[names[0]]
        for i, name in enumerate(names):
            angle = 2.0 * math.pi * i / len(names) + math.pi / 2.0
            where[name] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
            if angles is not None:
                angles[name] = angle
    return where


def write_map_png(
    path: Path,
    topology: Topology,
    ran: Sequence[str],
    served: Mapping[str, int],
    lane_routes: Mapping[str, Mapping[tuple[str, ...], int]],
    title: str,
) -> bool:
    """Draw the map to `path`; False when matplotlib is not installed.

    `ran`: the sites that ran as daemons; `served`: answers served per site; `lane_routes`:
    per lane, how many answers took each path (entry, relays..., node)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display where demos run headless
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    angles: dict[str, float] = {}
    where = positions(topology, ran, angles)
    xs = [where[n][0] for n in ran] or [0.0]
    ys = [where[n][1] for n in ran] or [0.0]
    pad_x = max(FRAME_MARGIN_DEG, (MIN_SPAN_DEG - (max(xs) - min(xs))) / 2.0)
    pad_y = max(FRAME_MARGIN_DEG, (MIN_SPAN_DEG - (max(ys) - min(ys))) / 2.0)
    x_range = (min(xs) - pad_x, max(xs) + pad_x)
    y_range = (min(ys) - pad_y, max(ys) + pad_y)
    figure, axes = plt.subplots(figsize=(9.0, 7.0))
    others = [
        s
        for s in topology.sites
        if s.name not in ran
        and x_range[0] <= s.lon <= x_range[1]
        and y_range[0] <= s.lat <= y_range[1]
    ]
    if others:
        axes.scatter(
            [s.lon for s in others], [s.lat for s in others], s=12, c="lightgray", zorder=1,
            label="other sites of the topology (not started)",
        )  # fmt: skip
    busiest = max((n for paths in lane_routes.values() for n in paths.values()), default=1)
    rank = {lane: i for i, lane in enumerate(LANE_ORDER)}
    ordered = sorted(lane_routes, key=lambda lane: rank.get(lane, -1))
    for depth, lane in enumerate(ordered):
        paths = lane_routes[lane]
        colour = LANE_COLOURS.get(lane, OTHER_COLOUR)
        first = True
        for hops, count in sorted(paths.items(), key=lambda item: item[1]):
            if len(hops) < 2 or any(h not in where for h in hops):
                continue
            line_x = [where[h][0] for h in hops]
            line_y = [where[h][1] for h in hops]
            width = MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * count / busiest
            axes.plot(
                line_x, line_y, color=colour, linewidth=width, alpha=0.45, zorder=2 + depth / 10.0,
                solid_capstyle="round", label=f"{lane} routes" if first else None,
            )  # fmt: skip
            first = False
    top = max((served.get(name, 0) for name in ran), default=0) or 1
    drawn: Any = None
    for role, marker in MARKERS.items():
        mine = [topology.site(name) for name in ran if topology.site(name).role == role]
        if not mine:
            continue
        drawn = axes.scatter(  # above every route (zorder 2 to 3)
            [where[s.name][0] for s in mine], [where[s.name][1] for s in mine],
            c=[served.get(s.name, 0) for s in mine], cmap="YlOrRd", vmin=0, vmax=top,
            s=90, marker=marker, edgecolors="black", linewidths=0.6, zorder=3.5,
            label=f"{role} (ran)",
        )  # fmt: skip
    for name in ran:
        angle = angles.get(name, math.pi / 4.0)  # alone in its city: up and to the right
        dx, dy = LABEL_OFFSET * math.cos(angle), LABEL_OFFSET * math.sin(angle)
        axes.annotate(
            name, where[name], textcoords="offset points", xytext=(dx, dy), fontsize=7,
            ha="left" if dx >= 0 else "right", va="bottom" if dy >= 0 else "top", zorder=4,
        )  # fmt: skip
    if drawn is not None:
        figure.colorbar(drawn, ax=axes, shrink=0.7, label="requests served")
    axes.set_xlim(*x_range)
    axes.set_ylim(*y_range)
    axes.set_aspect(1.0 / math.cos(math.radians(sum(y_range) / 2.0)))
    axes.set_xlabel("longitude (°E)")
    axes.set_ylabel("latitude (°N)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    save_figure(figure, axes, path, title)
    return True
