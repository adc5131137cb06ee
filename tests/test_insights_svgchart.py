"""The server-side SVG charts: escaped labels, accessible markup, nothing the Content-Security-Policy forbids."""

from leadcockpit.lib import svgchart

PAYLOAD = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def test_labels_series_names_and_titles_are_escaped_in_every_chart():
    for chart in (
        svgchart.bar_chart(
            [PAYLOAD, "b"], [(PAYLOAD, [1, 2], None), ("y", [3, None], "green")], label=PAYLOAD
        ),
        svgchart.stacked_bar_chart([PAYLOAD], [(PAYLOAD, [1], None), ("y", [2], None)], label=PAYLOAD),
        svgchart.hbar_chart([PAYLOAD], [(PAYLOAD, [5], None)], label=PAYLOAD),
        svgchart.line_chart([PAYLOAD, "b"], [(PAYLOAD, [1, 2], "temp-hot")], label=PAYLOAD),
    ):
        assert "<script" not in chart
        assert "<img" not in chart
        assert "&lt;script&gt;" in chart
        assert chart.startswith('<svg class="chart" role="img" aria-label="&lt;script&gt;')
        assert "style=" not in chart


def test_bars_scale_to_a_round_axis_and_skip_missing_values():
    chart = svgchart.bar_chart(["a", "b", "c"], [("n", [30, None, 70], None)], label="x")
    assert chart.count('<rect class="s0"') == 2  # no bar for the missing value
    assert ">80<" in chart  # 70 rounds up to an axis of 80
    assert svgchart.nice_ceiling(0) == 1
    assert svgchart.nice_ceiling(2998) == 3000
    assert svgchart.nice_ceiling(0.26) == 0.3


def test_a_line_breaks_where_a_value_is_missing():
    chart = svgchart.line_chart(["a", "b", "c", "d"], [("n", [1, 2, None, 4], None)], label="x")
    assert chart.count("<polyline") == 2
    assert chart.count("<circle") == 3


def test_stacked_bars_stack_and_a_legend_names_each_series():
    chart = svgchart.stacked_bar_chart(["q1"], [("won", [2], "green"), ("lost", [2], "red")], label="x")
    assert 'class="tone-green"' in chart
    assert 'class="tone-red"' in chart
    assert ">won<" in chart
    assert ">lost<" in chart
    assert ">4<" in chart  # the axis reaches the stacked total
