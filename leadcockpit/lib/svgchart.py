"""Small server-rendered SVG charts: grouped bars, horizontal bars, stacked bars and lines over time.

Every label and value goes through format_html/escape, so names from imports or tracking cannot inject markup.
The markup carries no style attributes and no script (the Content-Security-Policy allows neither inline); colours
come from classes the stylesheet defines (.chart .s0 … .s7, and tones such as .tone-red). Each chart is
role="img" with an aria-label; the numbers belong in a table beside it, which the caller renders.

A series is (name, values, tone): values line up with the categories (None: no value), tone is an optional CSS
class suffix (e.g. "green" → class "tone-green") used instead of the series' position colour.
"""

import math

from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

WIDTH = 720
LEGEND_ROW = 18
AXIS_FONT = 11
MAX_LABEL_CHARS = 14


def nice_ceiling(value):
    """A round number at or above `value` for the top of an axis (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × a power of ten)."""
    if value <= 0:
        return 1
    exponent = math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        top = float(f"{step * 10**exponent:.6g}")  # 3 × 0.1 is 0.30000000000000004 otherwise
        if top >= value:
            return top
    return 10 ** (exponent + 1)


def format_number(value):
    """A compact number for ticks and tips: 1234 → 1,234; 0.25 → 0.25; 1.5e6 → 1.5M."""
    if value is None:
        return "–"
    if abs(value) >= 1_000_000:
        return f"{_number(value / 1_000_000, 1)}M"
    if abs(value) >= 10_000:
        return f"{_number(value / 1000, 0)}k"
    if value == int(value):
        return _number(int(value), 0)
    return _number(value, 2 if abs(value) < 10 else 1)


def _number(value, decimals):
    """In the reader's language: 1,234.5 in English, 1.234,5 in German."""
    from django.utils.formats import number_format

    return number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)


def _f(value):
    """A coordinate with one decimal (format_html escapes its arguments to text, so numbers arrive formatted)."""
    return f"{value:.1f}"


def short(text, limit=MAX_LABEL_CHARS):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _series_class(index, tone):
    return f"tone-{tone}" if tone else f"s{index % 8}"


def _legend(series, width):
    """A legend row over the plot: a swatch and the name of each series (only when there are several)."""
    if len(series) < 2:
        return mark_safe(""), 0  # noqa: S308 - a constant
    items, x, y = [], 0, 0
    for index, (name, _values, tone) in enumerate(series):
        label_width = 18 + 7 * min(len(str(name)), 24)
        if x and x + label_width > width:
            x, y = 0, y + LEGEND_ROW
        items.append(
            format_html(
                '<rect class="{}" x="{}" y="{}" width="10" height="10" rx="2"></rect>'
                '<text class="chart-legend" x="{}" y="{}">{}</text>',
                _series_class(index, tone),
                x,
                y + 2,
                x + 14,
                y + 11,
                short(name, 24),
            )
        )
        x += label_width + 8
    return format_html('<g class="legend">{}</g>', mark_safe("".join(items))), y + LEGEND_ROW + 6  # noqa: S308


def _svg(label, width, height, body):
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}</svg>',
        label,
        width,
        height,
        label,
        body,
    )


def _y_axis(top, left, plot_top, plot_height, width, value_format):
    """Gridlines and tick labels at 0, ¼, ½, ¾ and the top of the value axis."""
    parts = []
    for i in range(5):
        value = top * i / 4
        y = plot_top + plot_height - plot_height * i / 4
        parts.append(
            format_html(
                '<line class="grid" x1="{}" y1="{}" x2="{}" y2="{}"></line>'
                '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
                left,
                _f(y),
                width,
                _f(y),
                left - 4,
                _f(y + 4),
                value_format(value),
            )
        )
    return mark_safe("".join(parts))  # noqa: S308 - pieces built by format_html


def _x_labels(categories, left, step, baseline):
    every = max(1, math.ceil(len(categories) / max(1, int(step * len(categories) / 62))))
    return format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="middle"><title>{}</title>{}</text>',
        (
            (_f(left + step * (i + 0.5)), baseline + 14, category, short(category))
            for i, category in enumerate(categories)
            if i % every == 0
        ),
    )


def bar_chart(
    categories, series, *, label, value_format=format_number, height=240, width=WIDTH, stacked=False
):
    """Bars per category, one per series side by side (or stacked when `stacked`)."""
    categories = [str(c) for c in categories]
    legend, legend_height = _legend(series, width)
    left, bottom = 56, 24
    plot_top = legend_height + 6
    plot_height = height - plot_top - bottom
    if stacked:
        totals = [sum(v or 0 for v in values_at) for values_at in zip(*(s[1] for s in series), strict=True)]
        peak = max(totals, default=0)
    else:
        peak = max((v or 0 for _n, values, _t in series for v in values), default=0)
    top = nice_ceiling(peak)
    step = (width - left - 4) / max(len(categories), 1)
    group = step * 0.8
    bar_width = group if stacked else group / max(len(series), 1)
    bars = []
    base = [0.0] * len(categories)
    for index, (name, values, tone) in enumerate(series):
        for i, value in enumerate(values):
            if value is None or value <= 0:
                continue
            bar_height = plot_height * value / top
            x = left + step * i + (step - group) / 2 + (0 if stacked else bar_width * index)
            y = plot_top + plot_height - bar_height - (plot_height * base[i] / top if stacked else 0)
            if stacked:
                base[i] += value
            bars.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title></rect>',
                    _series_class(index, tone),
                    _f(x),
                    _f(y),
                    _f(max(bar_width - 1, 1)),
                    _f(bar_height),
                    categories[i],
                    name,
                    value_format(value),
                )
            )
    body = format_html(
        "{}{}{}{}",
        legend,
        _y_axis(top, left, plot_top, plot_height, width, value_format),
        mark_safe("".join(bars)),  # noqa: S308 - pieces built by format_html
        _x_labels(categories, left, step, plot_top + plot_height),
    )
    return _svg(label, width, height, body)


def stacked_bar_chart(categories, series, **kwargs):
    """Bars per category with the series stacked on each other (shares of a whole over time)."""
    return bar_chart(categories, series, stacked=True, **kwargs)


def hbar_chart(categories, series, *, label, value_format=format_number, width=WIDTH, row=22):
    """Horizontal bars, one row per category (long names read better across), series side by side in a row."""
    categories = [str(c) for c in categories]
    legend, legend_height = _legend(series, width)
    left = 190
    plot_top = legend_height + 4
    height = plot_top + row * max(len(categories), 1) + 8
    peak = max((v or 0 for _n, values, _t in series for v in values), default=0)
    top = nice_ceiling(peak)
    plot_width = width - left - 60
    bar_height = (row - 6) / max(len(series), 1)
    parts = []
    for i, category in enumerate(categories):
        y0 = plot_top + row * i
        parts.append(
            format_html(
                '<text class="tick" x="{}" y="{}" text-anchor="end"><title>{}</title>{}</text>',
                left - 6,
                _f(y0 + row / 2 + 4),
                category,
                short(category, 28),
            )
        )
        for index, (name, values, tone) in enumerate(series):
            value = values[i]
            if value is None:
                continue
            length = plot_width * max(value, 0) / top
            y = y0 + 3 + bar_height * index
            parts.append(
                format_html(
                    '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}: {} {}</title>'
                    '</rect><text class="tick" x="{}" y="{}">{}</text>',
                    _series_class(index, tone),
                    left,
                    _f(y),
                    _f(max(length, 1)),
                    _f(max(bar_height - 1, 1)),
                    category,
                    name,
                    value_format(value),
                    _f(left + length + 4),
                    _f(y + bar_height - 2),
                    value_format(value),
                )
            )
    body = format_html("{}{}", legend, mark_safe("".join(parts)))  # noqa: S308 - built by format_html
    return _svg(label, width, height, body)


def line_chart(categories, series, *, label, value_format=format_number, height=240, width=WIDTH):
    """Lines over ordered categories (periods); a None value breaks the line."""
    categories = [str(c) for c in categories]
    legend, legend_height = _legend(series, width)
    left, bottom = 56, 24
    plot_top = legend_height + 6
    plot_height = height - plot_top - bottom
    peak = max((v or 0 for _n, values, _t in series for v in values), default=0)
    top = nice_ceiling(peak)
    step = (width - left - 4) / max(len(categories), 1)
    parts = []
    for index, (name, values, tone) in enumerate(series):
        css = _series_class(index, tone)
        runs, run = [], []
        for i, value in enumerate(values):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            x = left + step * (i + 0.5)
            y = plot_top + plot_height - plot_height * max(value, 0) / top
            run.append((x, y, categories[i], value))
        if run:
            runs.append(run)
        for points in runs:
            parts.append(
                format_html(
                    '<polyline class="line {}" points="{}"></polyline>',
                    css,
                    " ".join(f"{x:.1f},{y:.1f}" for x, y, _c, _v in points),
                )
            )
            parts.extend(
                format_html(
                    '<circle class="{}" cx="{}" cy="{}" r="3"><title>{}: {} {}</title></circle>',
                    css,
                    _f(x),
                    _f(y),
                    category,
                    name,
                    value_format(value),
                )
                for x, y, category, value in points
            )
    body = format_html(
        "{}{}{}{}",
        legend,
        _y_axis(top, left, plot_top, plot_height, width, value_format),
        mark_safe("".join(parts)),  # noqa: S308 - pieces built by format_html
        _x_labels(categories, left, step, plot_top + plot_height),
    )
    return _svg(label, width, height, body)
