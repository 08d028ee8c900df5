"""Server-side SVG bar charts for pages: no script, no CDN, readable without JavaScript and by a
screen reader (each bar carries a <title> with its figure; the page also shows the figures as
a table). Amounts arrive in fen and are labelled in yuan.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from fulema.core.money import Money

_W, _H, _PAD_TOP, _PAD_BOTTOM, _PAD_LEFT = 600, 220, 16, 40, 8


def bars(labels: Sequence[str], values: Sequence[int], *, title: str) -> Markup:
    """A bar chart of `values` (fen) under `labels`; every n-th label when they would crowd."""
    if len(labels) != len(values):
        raise ValueError("one label per value")
    n = max(len(values), 1)
    top = max([*values, 1])
    slot = (_W - _PAD_LEFT * 2) / n
    plot_h = _H - _PAD_TOP - _PAD_BOTTOM
    step = max(1, round(n / 12))  # at most ~12 labels on the axis
    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>",
             f'<line x1="{_PAD_LEFT}" y1="{_H - _PAD_BOTTOM}" x2="{_W - _PAD_LEFT}" '
             f'y2="{_H - _PAD_BOTTOM}" stroke="#ccd"/>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = 0.0 if value <= 0 else max(1.0, plot_h * value / top)
        width = min(slot * 0.7, 60.0)  # one or two bars stay bars, not slabs
        x = _PAD_LEFT + i * slot + (slot - width) / 2
        y = _H - _PAD_BOTTOM - h
        yuan = Money(value).to_yuan()
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                     f'height="{h:.1f}"><title>{escape(label)}: ¥{yuan}</title></rect>')
        if value > 0 and n <= 12:
            parts.append(f'<text x="{x + width / 2:.1f}" y="{max(y - 4, 12):.1f}" '
                         f'text-anchor="middle">{yuan}</text>')
        if i % step == 0:
            parts.append(f'<text x="{x + width / 2:.1f}" y="{_H - _PAD_BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
