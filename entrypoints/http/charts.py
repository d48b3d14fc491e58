"""Small server-side SVG charts for the admin dashboard: every number is a <text> element."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from html import escape

#: Colour-blind-safe palette (Okabe-Ito), in order of use.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"'


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _open(chart_id: str, title: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{_attr(chart_id)}-title" class="chart" '
        f'id="{_attr(chart_id)}" {FONT} font-size="12">',
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>',
    ]


def _axis(value: int) -> tuple[int, int]:
    """A round axis top at or above `value` and an integer tick step (1, 2, 5 x 10^n)."""
    if value <= 4:
        return max(1, value), 1
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(int(m * magnitude) for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, step)
    return step * math.ceil(value / step), step


def time_series(chart_id: str, title: str, days: list[date], series: dict[str, list[int]]) -> str:
    """Lines per series over `days`; each non-zero point and each series total is labelled."""
    width, height = 640, 280
    left, right, top, bottom = 44, 150, 26, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value, tick = _axis(max((v for values in series.values() for v in values), default=0))
    parts = _open(chart_id, title, width, height)

    def x(i: int) -> float:
        return left + (plot_w * i / max(1, len(days) - 1))

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / top_value

    for v in range(0, top_value + 1, tick):  # horizontal grid with the axis values
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e3e6ea"/>'
        )
        label = str(v)
        parts.append(
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#5f6b7a">'
            f"{label}</text>"
        )
    if days:
        ticks = sorted({0, len(days) - 1, *range(0, len(days), max(1, len(days) // 5))})
        for i in ticks:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 18}" text-anchor="middle" '
                f'fill="#5f6b7a">{days[i].strftime("%d %b")}</text>'
            )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
        'stroke="#9aa5b1"/>'
    )
    for n, (name, values) in enumerate(sorted(series.items())):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5" '
            'stroke-linejoin="round"/>'
        )
        for i, v in enumerate(values):
            if v:
                parts.append(
                    f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>'
                    f'<text x="{x(i):.1f}" y="{y(v) - 8:.1f}" text-anchor="middle" '
                    f'font-weight="600" fill="{colour}" class="point" '
                    f'data-series="{_attr(name)}" data-day="{days[i].isoformat()}" '
                    f'data-value="{v}">{v}</text>'
                )
        legend_y = top + 14 + n * 22
        parts.append(
            f'<rect x="{width - right + 16}" y="{legend_y - 10}" width="12" height="12" '
            f'rx="2" fill="{colour}"/>'
            f'<text x="{width - right + 34}" y="{legend_y}" class="total" '
            f'data-series="{_attr(name)}" data-value="{sum(values)}">'
            f"{escape(name)}: {sum(values)}</text>"
        )
    if not series:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'fill="#5f6b7a">No data yet</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float  # the bar's length, 0..maximum
    text: str  # what the bar says, e.g. "75% (3 of 4)"
    data_value: str  # the number a reader (or a test) takes from the bar
    colour: str | None = None


def bar_chart(chart_id: str, title: str, bars: list[Bar], *, maximum: float | None = None) -> str:
    """Horizontal bars with their label on the left and their value on the right."""
    row, left, right = 36, 64, 104
    width = 360
    height = max(1, len(bars)) * row + 16
    top_value = maximum if maximum is not None else max((b.value for b in bars), default=0) or 1
    plot_w = width - left - right
    parts = _open(chart_id, title, width, height)
    for n, bar in enumerate(bars):
        y = 12 + n * row
        length = plot_w * min(bar.value, top_value) / top_value
        colour = bar.colour or PALETTE[n % len(PALETTE)]
        parts.append(
            f'<text x="{left - 10}" y="{y + 17}" text-anchor="end" fill="#1f2933">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{left}" y="{y}" width="{plot_w}" height="24" rx="4" fill="#f0f2f5"/>'
            f'<rect x="{left}" y="{y}" width="{length:.1f}" height="24" rx="4" fill="{colour}"/>'
            f'<text x="{left + plot_w + 10}" y="{y + 17}" font-weight="600" fill="#1f2933" '
            f'class="bar-value" data-label="{_attr(bar.label)}" '
            f'data-value="{_attr(bar.data_value)}">{escape(bar.text)}</text>'
        )
    if not bars:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2 + 4}" text-anchor="middle" fill="#5f6b7a">'
            "No data yet</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def gauge(chart_id: str, title: str, part: int, whole: int, *, caption: str) -> str:
    """A half-circle gauge of part/whole with the percentage and the counts written out."""
    width, height, cx, cy, r = 320, 200, 160, 150, 110
    share = part / whole if whole else 0.0
    percent = round(share * 100)
    parts = _open(chart_id, title, width, height)

    def point(fraction: float) -> tuple[float, float]:
        angle = math.pi * (1 - fraction)
        return cx + r * math.cos(angle), cy - r * math.sin(angle)

    x0, y0 = point(0)
    x1, y1 = point(1)
    parts.append(
        f'<path d="M {x0:.1f} {y0:.1f} A {r} {r} 0 0 1 {x1:.1f} {y1:.1f}" fill="none" '
        'stroke="#e3e6ea" stroke-width="22" stroke-linecap="round"/>'
    )
    if share > 0:
        xs, ys = point(min(share, 0.9999))
        parts.append(
            f'<path d="M {x0:.1f} {y0:.1f} A {r} {r} 0 0 1 {xs:.1f} {ys:.1f}" fill="none" '
            f'stroke="{PALETTE[2]}" stroke-width="22" stroke-linecap="round"/>'
        )
    parts.append(
        f'<text x="{cx}" y="{cy - 18}" text-anchor="middle" font-size="38" font-weight="700" '
        f'fill="#1f2933" class="gauge-percent" data-value="{percent}">'
        f"{percent if whole else '-'}{'%' if whole else ''}</text>"
        f'<text x="{cx}" y="{cy + 12}" text-anchor="middle" fill="#5f6b7a" class="gauge-counts" '
        f'data-part="{part}" data-whole="{whole}">{part} of {whole} {escape(caption)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
