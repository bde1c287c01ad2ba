"""Line charts as plain SVG text: the figure every run logs (gradient flow through time).

Drawing it with matplotlib cost ~0.2 s per run (most of a tracked run's fixed cost in a claim
grid of hundreds of short runs); this writes the same chart's SVG directly in about a millisecond.
Only what that chart needs: panels side by side, a linear x axis, a log10 y axis with decade
ticks, one polyline per series, an optional dashed reference line, a legend.
"""
from __future__ import annotations

import math
from html import escape

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
W, H = 460, 330  # one panel
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 34, 48


def _ticks(low: float, high: float) -> list[int]:
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    step = max(1, (last - first) // 6)
    return list(range(first, last + 1, step))


def panel(x0: float, title: str, xlabel: str, ylabel: str, series: list[tuple[str, list[float], list[float]]],
          reference: tuple[str, float] | None = None) -> str:
    """One panel at horizontal offset x0: series = [(label, xs, ys)], ys > 0 drawn on log10."""
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y > 0 and math.isfinite(y)]
    if reference is not None and reference[1] > 0:
        points.append((points[0][0] if points else 0.0, reference[1]))
    if not points:
        return ""
    xmin, xmax = min(p[0] for p in points), max(p[0] for p in points)
    ymin, ymax = min(p[1] for p in points), max(p[1] for p in points)
    decades = _ticks(ymin, ymax)
    lo, hi = 10.0 ** decades[0], 10.0 ** decades[-1]
    lo, hi = (lo / 10, hi * 10) if lo == hi else (lo, hi)
    xspan = (xmax - xmin) or 1.0
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x: float) -> float:
        return x0 + LEFT + pw * (x - xmin) / xspan

    def sy(y: float) -> float:
        return TOP + ph * (1 - (math.log10(y) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    out = [f'<rect x="{x0 + LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>',
           f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-size="13">{escape(title)}</text>',
           f'<text x="{x0 + LEFT + pw / 2}" y="{H - 10}" text-anchor="middle" font-size="11">{escape(xlabel)}</text>',
           f'<text transform="translate({x0 + 14},{TOP + ph / 2}) rotate(-90)" text-anchor="middle" '
           f'font-size="11">{escape(ylabel)}</text>']
    for d in decades:
        y = sy(10.0 ** d)
        out.append(f'<line x1="{x0 + LEFT}" x2="{x0 + LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{x0 + LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">1e{d}</text>')
    for k in range(5):
        x = xmin + xspan * k / 4
        out.append(f'<text x="{sx(x):.1f}" y="{TOP + ph + 14}" text-anchor="middle" font-size="10">{x:.0f}</text>')
    legend = []
    for i, (label, xs, ys) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{sx(x):.1f},{sy(min(max(y, lo), hi)):.1f}" for x, y in zip(xs, ys)
                       if y > 0 and math.isfinite(y))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        legend.append((label, color, ""))
    if reference is not None and reference[1] > 0:
        y = sy(reference[1])
        out.append(f'<line x1="{x0 + LEFT}" x2="{x0 + LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#666" '
                   f'stroke-dasharray="5,3"/>')
        legend.append((reference[0], "#666", 'stroke-dasharray="5,3"'))
    for i, (label, color, dash) in enumerate(legend):
        y = TOP + 12 + 14 * i
        out.append(f'<line x1="{x0 + W - RIGHT - 150}" x2="{x0 + W - RIGHT - 130}" y1="{y}" y2="{y}" '
                   f'stroke="{color}" stroke-width="2" {dash}/>')
        out.append(f'<text x="{x0 + W - RIGHT - 126}" y="{y + 4}" font-size="10">{escape(label)}</text>')
    return "\n".join(out)


def figure(panels: list[str], title: str) -> str:
    """The SVG document of panels laid side by side, under a title."""
    width = W * len(panels)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H + 24}" '
            f'viewBox="0 {-24} {width} {H + 24}" font-family="sans-serif">'
            f'<rect x="0" y="-24" width="{width}" height="{H + 24}" fill="white"/>'
            f'<text x="{width / 2}" y="-6" text-anchor="middle" font-size="14">{escape(title)}</text>'
            + "\n".join(panels) + "</svg>\n")
