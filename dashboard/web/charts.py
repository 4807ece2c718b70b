"""Plotly figure dicts from analysis results (no HTML here; the page embeds the JSON).

Plotly renders a subset of HTML (<a href>, <b>, <br>, <span style>) in every label, hover text,
legend entry and title. Every text that goes into a figure passes through `_text`, which escapes
it, so a `scimType` of `<a href=...>` is drawn as those characters, never as a link; only the
hover templates, which are ours, keep their markup.
"""
from __future__ import annotations

from html import escape
from typing import Any

_LAYOUT = {
    "margin": {"l": 48, "r": 16, "t": 28, "b": 40},
    "height": 280,
    "legend": {"orientation": "h", "y": -0.25},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": "system-ui, sans-serif", "size": 12},
}
COLORS = {"success": "#1b7f3b", "failure": "#b42318", "skipped": "#98a2b3"}


def outcomes_figure(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """Users per cycle, stacked by outcome (oldest cycle on the left)."""
    ordered = list(reversed(cycles))
    x = [c["started_at"] for c in ordered]
    return {
        "data": [
            {"type": "bar", "name": _text(outcome), "x": x, "y": [c["totals"][outcome] for c in ordered],
             "marker": {"color": COLORS[outcome]}, "hovertemplate": "%{x}<br>%{y} " + outcome + "<extra></extra>"}
            for outcome in ("success", "failure", "skipped")
        ],
        "layout": {**_LAYOUT, "barmode": "stack", "title": {"text": _text("Users per cycle by outcome"), "x": 0},
                   "yaxis": {"title": {"text": _text("users")}}, "xaxis": {"type": "date"}},
    }


def rate_and_duration_figure(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """Failure rate (% of the cycle's users) and cycle duration (minutes) over time."""
    ordered = list(reversed(cycles))
    x = [c["started_at"] for c in ordered]
    rate = [round(100 * c["totals"]["failure"] / c["users"], 1) if c["users"] else 0 for c in ordered]
    duration = [round(c["duration_s"] / 60, 1) for c in ordered]
    return {
        "data": [
            {"type": "scatter", "mode": "lines+markers", "name": _text("failure rate %"), "x": x, "y": rate,
             "line": {"color": COLORS["failure"]}},
            {"type": "scatter", "mode": "lines+markers", "name": _text("duration (min)"), "x": x, "y": duration,
             "yaxis": "y2", "line": {"color": "#175cd3", "dash": "dot"}},
        ],
        "layout": {**_LAYOUT, "title": {"text": _text("Failure rate and cycle duration"), "x": 0}, "xaxis": {"type": "date"},
                   "yaxis": {"title": {"text": _text("% failed")}, "rangemode": "tozero"},
                   "yaxis2": {"title": {"text": _text("minutes")}, "overlaying": "y", "side": "right", "rangemode": "tozero"}},
    }


def signatures_figure(signatures: list[dict[str, Any]]) -> dict[str, Any]:
    """Users affected per error signature (the biggest at the top)."""
    top = list(reversed(signatures[:8]))
    labels = [_text(f"{s['operation']} {s['status']} {s['scimType'] or ''}".strip() + f" · {s['action']['title']}")
              for s in top]
    return {
        "data": [{"type": "bar", "orientation": "h", "x": [s["users"] for s in top], "y": labels,
                  "marker": {"color": COLORS["failure"]}, "hovertemplate": "%{y}<br>%{x} users<extra></extra>"}],
        "layout": {**_LAYOUT, "title": {"text": _text("Top error signatures (users affected)"), "x": 0},
                   "margin": {"l": 16, "r": 16, "t": 28, "b": 40}, "yaxis": {"automargin": True}},
    }


def trend_figure(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """A small trend for the overview: failed users per cycle."""
    ordered = list(reversed(cycles))
    return {
        "data": [{"type": "scatter", "mode": "lines", "x": [c["started_at"] for c in ordered],
                  "y": [c["totals"]["failure"] for c in ordered], "line": {"color": COLORS["failure"]},
                  "fill": "tozeroy", "hovertemplate": "%{x}<br>%{y} failed<extra></extra>"}],
        "layout": {**_LAYOUT, "height": 90, "margin": {"l": 28, "r": 4, "t": 4, "b": 20}, "showlegend": False,
                   "xaxis": {"type": "date", "showgrid": False}, "yaxis": {"rangemode": "tozero"}},
    }


def _text(value: object) -> str:
    """A label as Plotly shows it literally: `<`, `>` and `&` as entities (Plotly decodes them
    only after it has read the markup)."""
    return escape(str(value), quote=False)
