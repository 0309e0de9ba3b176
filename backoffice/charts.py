"""Line charts drawn on the server as SVG: no charting script and nothing from a CDN, so the
pages work on a closed network and refresh as plain HTML."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from backoffice import dashboard

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


CHART_WIDTH, CHART_HEIGHT = 640, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 12, 44, 28


def _nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times 10^n at or above `value`: a round top for the y axis."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return float(top)
    return float(10 ** (exponent + 1))  # unreachable


def _tick(value: float) -> str:
    """Whole numbers from 10 up; two significant digits below (0.5 s, 2.5 s)."""
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:.2g}"  # noqa: PLR2004


def line_chart(
    *,
    name: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float | None]]],
    unit: str,
) -> SafeString:
    """An SVG line chart: one polyline per series (name, colour, values; None leaves a gap),
    a y axis from 0 to a round top, the first, middle and last x labels, a legend."""
    width = CHART_WIDTH - _LEFT - _RIGHT
    height = CHART_HEIGHT - _TOP - _BOTTOM
    values = [v for _, _, vs in series for v in vs if v is not None]
    top = _nice_top(max(values)) if values else 1.0
    count = max(1, len(labels) - 1)

    def x(i: int) -> float:
        return _LEFT + width * i / count

    def y(v: float) -> float:
        return _TOP + height * (1 - v / top)

    parts = [
        f'<text class="chart-title" x="{_LEFT}" y="14">{escape(title)}</text>',
        f'<text class="chart-unit" x="{_LEFT - 6}" y="{_TOP - 12}" '
        f'text-anchor="end">{escape(unit)}</text>',
    ]
    for share in (0, 0.5, 1):
        gy = y(top * share)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + width}" y1="{gy:.1f}" y2="{gy:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{_tick(top * share)}</text>"
        )
    if labels:
        for i in sorted({0, len(labels) // 2, len(labels) - 1}):
            anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
            parts.append(
                f'<text class="tick" x="{x(i):.1f}" y="{CHART_HEIGHT - 8}" '
                f'text-anchor="{anchor}">{escape(labels[i])}</text>'
            )
    for n, (series_name, colour, series_values) in enumerate(series):
        parts.extend(_lines(series_values, colour, x, y))
        lx = _LEFT + width - 110 * (len(series) - n)
        parts.append(
            f'<rect x="{lx}" y="21" width="10" height="10" fill="{colour}"/>'
            f'<text class="legend" x="{lx + 14}" y="30">{escape(series_name)}</text>'
        )
    if not values:
        parts.append(
            f'<text class="chart-empty" x="{_LEFT + width / 2}" y="{_TOP + height / 2}" '
            'text-anchor="middle">No orders in this period yet</text>'
        )
    body = "".join(parts)
    return mark_safe(  # noqa: S308  (every interpolated text above is escaped; the rest are numbers)
        f'<svg class="chart" data-chart="{escape(name)}" data-points="{len(values)}" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _lines(
    values: Sequence[float | None],
    colour: str,
    x: Callable[[int], float],
    y: Callable[[float], float],
) -> list[str]:
    """A polyline per run of values (None leaves a gap); a dot for a run of one."""
    runs: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            runs.append([])
        else:
            runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
    parts = []
    for points in runs:
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
        elif points:
            parts.append(
                f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" '
                f'points="{" ".join(points)}"/>'
            )
    return parts


ACCEPTED, PAID, MEDIAN, P95 = "#417690", "#3a8a3a", "#417690", "#ba2121"


def throughput_charts(name: str, span: str, throughput: dashboard.Throughput) -> list[SafeString]:
    labels = [f"{timezone.localtime(p.at):%H:%M}" for p in throughput.points]
    return [
        line_chart(
            name=f"{name}-throughput",
            title=f"Orders per minute, {span}",
            labels=labels,
            series=[
                ("accepted", ACCEPTED, [p.accepted_per_minute for p in throughput.points]),
                ("paid", PAID, [p.paid_per_minute for p in throughput.points]),
            ],
            unit="/min",
        ),
        line_chart(
            name=f"{name}-latency",
            title=f"Time from accept to paid, {span}",
            labels=labels,
            series=[
                ("median", MEDIAN, [p.p50 for p in throughput.points]),
                ("p95", P95, [p.p95 for p in throughput.points]),
            ],
            unit="s",
        ),
    ]
