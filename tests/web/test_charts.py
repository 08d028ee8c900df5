"""Server-side SVG charts: figures in yuan, labels escaped, heights in proportion."""

from __future__ import annotations

import re

import pytest

from fulema.web.charts import bars


def test_bars_carry_their_figures_in_yuan_and_escape_labels() -> None:
    svg = str(bars(["<b>店</b>", "wechat"], [1250, 2500], title="按渠道 & more"))
    assert svg.startswith('<svg class="chart"')
    assert svg.endswith("</svg>")
    assert "<b>" not in svg
    assert "&lt;b&gt;店&lt;/b&gt;" in svg
    assert "按渠道 &amp; more" in svg
    assert "wechat: ¥25.00" in svg
    assert "¥12.50" in svg
    heights = [float(h) for h in re.findall(r'<rect class="bar"[^>]* height="([0-9.]+)"', svg)]
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.01)


def test_an_empty_day_draws_no_bar_and_a_mismatch_is_refused() -> None:
    svg = str(bars([f"{h:02d}" for h in range(24)], [0] * 24, title="按小时"))
    assert 'height="0.0"' in svg
    assert "¥0.00" in svg
    with pytest.raises(ValueError, match="one label per value"):
        bars(["a"], [1, 2], title="x")
