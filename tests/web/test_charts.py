"""Charts a person reads: figure data from dashboard/web/charts.py (the browser side is in test_layout.py)."""
from __future__ import annotations

from typing import Any

import pytest

from dashboard.web import charts


def cycle(started_at: str, *, kind: str = "incremental", users: int = 20, failure: int = 2,
          duration_s: float = 300) -> dict[str, Any]:
    return {"started_at": started_at, "kind": kind, "users": users, "duration_s": duration_s,
            "totals": {"success": users - failure, "failure": failure, "skipped": 0}}


# newest first, as queries.cycles.list_cycles gives them
CYCLES = [
    cycle("2026-11-28T10:00:00.000Z", failure=3),
    cycle("2026-11-28T09:20:00.000Z", failure=1),
    cycle("2026-11-28T08:00:00.000Z", kind="initial", users=3000, failure=131, duration_s=52 * 60),
]


def signature(sig_id: int, users: int, detail: str, **overrides: Any) -> dict[str, Any]:
    return {"id": sig_id, "operation": "update", "status": 400, "scimType": "invalidValue", "users": users,
            "detail": detail, "action": {"title": "Fix the attribute in Entra"}, **overrides}


def all_figures(cycles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [charts.outcomes_figure(cycles), charts.rate_and_duration_figure(cycles), charts.trend_figure(cycles),
            charts.signatures_figure([signature(1, 3, "x")])]


def test_it_gives_two_signatures_that_read_the_same_a_bar_each():
    # Same operation, status, scimType and action: only the detail differs.
    figure = charts.signatures_figure([signature(1, 5, "Attribute 'department' is not a cost center"),
                                       signature(2, 3, "Attribute 'title' is too long")])

    labels = figure["data"][0]["y"]
    assert len(set(labels)) == 2
    assert any("department" in label for label in labels) and any("title" in label for label in labels)


def test_it_tells_identical_signatures_apart_by_id():
    figure = charts.signatures_figure([signature(7, 5, "same"), signature(9, 3, "same")])

    assert sorted(figure["data"][0]["y"]) == sorted({label for label in figure["data"][0]["y"]})
    assert any("#7" in label for label in figure["data"][0]["y"])


def test_it_puts_the_biggest_signature_at_the_top():
    # Plotly draws the first category at the bottom of a horizontal bar chart.
    figure = charts.signatures_figure([signature(1, 2, "a", status=409), signature(2, 9, "b", status=500),
                                       signature(3, 5, "c", status=404)])

    assert figure["data"][0]["x"] == [2, 5, 9]
    assert figure["data"][0]["y"][-1].startswith("update 500")


def test_it_draws_the_initial_cycle_on_its_own_scale():
    figure = charts.outcomes_figure(CYCLES)

    initial = [t for t in figure["data"] if t["xaxis"] == "x2"]
    incremental = [t for t in figure["data"] if t["xaxis"] == "x"]
    assert {tuple(t["x"]) for t in initial} == {("2026-11-28T08:00:00.000Z",)}
    assert {tuple(t["x"]) for t in incremental} == {("2026-11-28T09:20:00.000Z", "2026-11-28T10:00:00.000Z")}
    assert {t["yaxis"] for t in initial} == {"y2"} and figure["layout"]["yaxis2"]["anchor"] == "x2"
    assert [t["name"] for t in figure["data"] if t["showlegend"]] == ["success", "failure", "skipped"]  # one legend entry each


def test_it_keeps_one_panel_without_an_initial_cycle():
    figure = charts.outcomes_figure(CYCLES[:2])

    assert {t["xaxis"] for t in figure["data"]} == {"x"}
    assert "xaxis2" not in figure["layout"]


def test_it_scales_the_duration_axis_to_the_incremental_cycles_and_marks_the_initial_one():
    figure = charts.rate_and_duration_figure(CYCLES)

    assert figure["layout"]["yaxis2"]["range"] == [0, 5 * 1.25]
    [note] = figure["layout"]["annotations"]
    assert note["x"] == "2026-11-28T08:00:00.000Z" and note["text"] == "initial 52 min ↑"


def test_it_leaves_room_for_the_right_axis():
    layout = charts.rate_and_duration_figure(CYCLES)["layout"]

    assert layout["yaxis2"]["side"] == "right" and layout["yaxis2"]["automargin"] is True
    assert layout["margin"]["r"] >= 48


@pytest.mark.parametrize("cycles", [CYCLES, CYCLES[:1]], ids=["three cycles", "one cycle"])
def test_it_titles_every_chart(cycles):  # type: ignore[no-untyped-def]
    for figure in all_figures(cycles):
        assert figure["layout"]["title"]["text"]


def test_it_titles_the_overview_trend_with_its_span():
    assert charts.trend_figure(CYCLES)["layout"]["title"]["text"] == "Failed users, last 3 cycles"


def test_it_shows_no_mode_bar_and_resizes_with_the_page():
    for figure in all_figures(CYCLES):
        assert figure["config"]["displayModeBar"] is False
        assert figure["config"]["responsive"] is True


def test_it_puts_cycles_on_a_category_axis_of_utc_strings_for_the_browser_to_localise():
    # One cycle on a date axis gave ticks like "14:59:44.6845"; categories are one label per cycle.
    for figure in all_figures([cycle("2026-11-28T14:59:44.684Z")])[:3]:
        assert figure["layout"]["meta"] == {"local_time_x": True}
        assert figure["layout"]["xaxis"]["type"] == "category"
        assert figure["data"][0]["x"] == ["2026-11-28T14:59:44.684Z"]
    assert charts.outcomes_figure(CYCLES[:2])["layout"]["xaxis"]["title"]["text"] == "cycle start (UTC)"
