"""Server-rendered SVG charts. Geometry in SVG attributes, colours in dashboard.css (the CSP forbids
inline styles); every label goes through format_html, so recorded model names stay text."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 56, 28, 12


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return value


def bar_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    stacked: bool = False,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    title: str = "",
) -> SafeString:
    """Grouped (or stacked) vertical bars: one group per label, one bar per series."""
    n = max(len(labels), 1)
    if stacked:
        peak = max((sum(s[1][i] for s in series) for i in range(len(labels))), default=0)
    else:
        peak = max((v for _, values in series for v in values), default=0)
    top = _nice_max(peak)
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    group_w = plot_w / n
    # Capped, so one day of data is a bar and not a wall.
    bar_w = min(group_w * 0.75 / (1 if stacked else max(len(series), 1)), 36)
    parts: list[SafeString] = []
    for frac in (0, 0.5, 1):
        y = TOP + plot_h * (1 - frac)
        parts.append(
            format_html('<line class="axis" x1="{}" x2="{}" y1="{}" y2="{}"></line>', LEFT, WIDTH - 8, y, y)
        )
        parts.append(
            format_html('<text x="{}" y="{}" text-anchor="end">{}</text>', LEFT - 6, y + 4, fmt(top * frac))
        )
    every = max(1, n // 12)  # at most ~12 x labels
    for i, label in enumerate(labels):
        used = bar_w * (1 if stacked else len(series))
        x0 = LEFT + group_w * i + (group_w - used) / 2
        base: float = TOP + plot_h
        for j, (name, values) in enumerate(series):
            v = values[i]
            h = plot_h * v / top if top else 0
            x = x0 if stacked else x0 + bar_w * j
            y = base - h
            parts.append(format_html(
                '<rect class="s{}" x="{}" y="{}" width="{}" height="{}"><title>{} · {}: {}</title></rect>',
                j, round(x, 1), round(y, 1), round(max(bar_w - 1, 1), 1), round(h, 1), label, name, fmt(v),
            ))  # fmt: skip
            if stacked:
                base = y
        if i % every == 0:
            parts.append(format_html('<text x="{}" y="{}" text-anchor="middle">{}</text>',
                                     round(LEFT + group_w * (i + 0.5), 1), HEIGHT - 8, label))  # fmt: skip
    legend = format_html_join(
        "", '<span><span class="sw s{}"></span>{}</span>', ((j, s[0]) for j, s in enumerate(series))
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption>'
        '<svg viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}">{}</svg>'
        '<div class="legend">{}</div></figure>',
        title, WIDTH, HEIGHT, title, SafeString("".join(parts)), legend,
    )  # fmt: skip


def hbar(value: float, peak: float, *, cls: str = "s0") -> SafeString:
    """A small inline horizontal bar for table cells."""
    w = 100 * value / peak if peak else 0
    return format_html(
        '<svg class="hbar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true">'
        '<rect class="track" x="0" y="0" width="100" height="8"></rect>'
        '<rect class="{}" x="0" y="0" width="{}" height="8"></rect></svg>',
        cls, round(w, 1),
    )  # fmt: skip
