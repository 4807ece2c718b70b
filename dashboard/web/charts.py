"""Plotly figure dicts from analysis results (no HTML here; the page embeds the JSON).

Plotly renders a subset of HTML (<a href>, <b>, <br>, <span style>) in every label, hover text,
legend entry and title. Every text that goes into a figure passes through `_text`, which escapes
it, so a `scimType` of `<a href=...>` is drawn as those characters, never as a link; only the
hover templates, which are ours, keep their markup.
"""
from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any

_LAYOUT = {
    "margin": {"l": 48, "r": 16, "t": 32, "b": 40},
    "height": 280,
    "autosize": True,
    "legend": {"orientation": "h", "y": -0.3},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": "system-ui, sans-serif", "size": 12},
    # static/js/charts.js turns the UTC x values into the viewer's local time (see `_time_axis`)
    "meta": {"local_time_x": True},
}
# No mode bar (on a phone it covers a small chart); Plotly resizes with the page.
CONFIG = {"displayModeBar": False, "responsive": True, "displaylogo": False}
COLORS = {"success": "#1b7f3b", "failure": "#b42318", "skipped": "#98a2b3"}
UTC_TITLE = " (UTC)"  # charts.js replaces it with the viewer's zone when it localises the axis


def _time_axis(title: str, **extra: Any) -> dict[str, Any]:
    """Cycles along x, one category per cycle, labelled by its start.

    The figure carries UTC ISO strings (what the API gives, and what is shown without JavaScript);
    static/js/charts.js replaces each by a label in the viewer's time zone ("Nov 28, 09:00") and the
    axis title's "(UTC)" by the zone's name. A category axis, not a date axis: Plotly draws dates as
    given (no zone conversion), a lone cycle on a date axis gets tick labels like "14:59:44.6845", and
    cycles are evenly spaced however long Entra paused between them."""
    return {"type": "category", "title": {"text": _text(title + UTC_TITLE)}, "automargin": True, "nticks": 8,
            "tickangle": 0, **extra}


def _split(cycles: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(initial, incremental) cycles, oldest first. An initial cycle looks up every user in scope:
    on the incremental cycles' scale it would flatten them, so it gets its own."""
    ordered = list(reversed(cycles))
    return [c for c in ordered if c.get("kind") == "initial"], [c for c in ordered if c.get("kind") != "initial"]


def outcomes_figure(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """Users per cycle, stacked by outcome (oldest cycle on the left); initial cycles in a narrow
    panel of their own on the left, with their own y axis, when there are incremental ones too."""
    initial, incremental = _split(cycles)
    panels = [(initial, "x2", "y2"), (incremental, "x", "y")] if initial and incremental else [(initial or incremental, "x", "y")]
    data = []
    for outcome in ("success", "failure", "skipped"):
        for n, (group, xaxis, yaxis) in enumerate(panels):
            data.append({
                "type": "bar", "name": _text(outcome), "legendgroup": outcome, "showlegend": n == len(panels) - 1,
                "x": [c["started_at"] for c in group], "y": [c["totals"][outcome] for c in group],
                "xaxis": xaxis, "yaxis": yaxis, "marker": {"color": COLORS[outcome]},
                "hovertemplate": "%{x}<br>%{y} " + outcome + "<extra></extra>",
            })
    layout: dict[str, Any] = {**_LAYOUT, "barmode": "stack", "title": {"text": _text("Users per cycle by outcome"), "x": 0},
                              "yaxis": {"title": {"text": _text("users")}, "rangemode": "tozero", "automargin": True}}
    if len(panels) == 2:
        layout["xaxis"] = _time_axis("incremental cycles", domain=[0.24, 1])
        layout["xaxis2"] = _time_axis("initial", domain=[0, 0.14], anchor="y2")
        layout["yaxis"] = {**layout["yaxis"], "anchor": "x", "title": {"text": _text("users (incremental)")}}
        layout["yaxis2"] = {"anchor": "x2", "rangemode": "tozero", "automargin": True,
                            "title": {"text": _text("users (initial)")}}
    else:
        layout["xaxis"] = _time_axis("initial cycle" if initial else "cycle start")
    return {"data": data, "layout": layout, "config": CONFIG}


def rate_and_duration_figure(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """Failure rate (% of the cycle's users) and cycle duration (minutes) over time. The duration
    axis is scaled to the incremental cycles; an initial cycle above it is marked at the top
    ("initial 52 min ↑") instead of flattening them."""
    ordered = list(reversed(cycles))
    x = [c["started_at"] for c in ordered]
    rate = [round(100 * c["totals"]["failure"] / c["users"], 1) if c["users"] else 0 for c in ordered]
    duration = [round(c["duration_s"] / 60, 1) for c in ordered]
    yaxis2: dict[str, Any] = {"title": {"text": _text("minutes")}, "overlaying": "y", "side": "right",
                              "rangemode": "tozero", "automargin": True}
    annotations = []
    initial, incremental = _split(cycles)
    if initial and incremental:
        top = max(round(c["duration_s"] / 60, 1) for c in incremental) * 1.25 or 1
        off_scale = [c for c in initial if c["duration_s"] / 60 > top]
        if off_scale:
            yaxis2 = {**yaxis2, "range": [0, top], "rangemode": "normal"}
            annotations = [{"x": c["started_at"], "y": top, "xref": "x", "yref": "y2", "showarrow": False,
                            "yanchor": "top", "font": {"color": "#175cd3", "size": 11},
                            "text": _text(f"initial {_minutes(c['duration_s'])} ↑")} for c in off_scale]
    return {
        "data": [
            {"type": "scatter", "mode": "lines+markers", "name": _text("failure rate %"), "x": x, "y": rate,
             "line": {"color": COLORS["failure"]}, "hovertemplate": "%{x}<br>%{y} % failed<extra></extra>"},
            {"type": "scatter", "mode": "lines+markers", "name": _text("duration (min)"), "x": x, "y": duration,
             "yaxis": "y2", "line": {"color": "#175cd3", "dash": "dot"}, "cliponaxis": False,
             "hovertemplate": "%{x}<br>%{y} min<extra></extra>"},
        ],
        "layout": {**_LAYOUT, "title": {"text": _text("Failure rate and cycle duration"), "x": 0},
                   "margin": {**_LAYOUT["margin"], "r": 56}, "xaxis": _time_axis("cycle start"),
                   "yaxis": {"title": {"text": _text("% failed")}, "rangemode": "tozero", "automargin": True},
                   "yaxis2": yaxis2, "annotations": annotations},
        "config": CONFIG,
    }


def signatures_figure(signatures: list[dict[str, Any]]) -> dict[str, Any]:
    """Users affected per error signature, the biggest at the top. Every bar has its own label:
    two signatures that would read the same are told apart by their detail (or their id), so
    Plotly does not stack them into one bar."""
    top = sorted(signatures, key=lambda s: -s["users"])[:8]
    labels = [f"{s['operation']} {s['status']} {s['scimType'] or ''}".strip() + f" · {s['action']['title']}" for s in top]
    labels = _unique(labels, top)
    ordered = list(reversed(list(zip(top, labels, strict=True))))  # Plotly draws the first category at the bottom
    return {
        "data": [{"type": "bar", "orientation": "h", "x": [s["users"] for s, _ in ordered],
                  "y": [_text(label) for _, label in ordered],
                  "customdata": ["user" if s["users"] == 1 else "users" for s, _ in ordered],  # our words only
                  "marker": {"color": COLORS["failure"]}, "hovertemplate": "%{y}<br>%{x} %{customdata}<extra></extra>"}],
        "layout": {**_LAYOUT, "title": {"text": _text("Top error signatures (users affected)"), "x": 0},
                   "margin": {"l": 16, "r": 24, "t": 32, "b": 40}, "height": max(160, 60 + 34 * len(ordered)),
                   "yaxis": {"automargin": True, "type": "category"},
                   "xaxis": {"title": {"text": _text("users")}, "rangemode": "tozero", "automargin": True}},
        "config": CONFIG,
    }


def trend_figure(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    """A small trend for the overview: failed users per cycle."""
    ordered = list(reversed(cycles))
    return {
        "data": [{"type": "scatter", "mode": "lines", "x": [c["started_at"] for c in ordered],
                  "y": [c["totals"]["failure"] for c in ordered], "line": {"color": COLORS["failure"]},
                  "fill": "tozeroy", "hovertemplate": "%{x}<br>%{y} failed<extra></extra>"}],
        "layout": {**_LAYOUT, "height": 120, "margin": {"l": 28, "r": 8, "t": 24, "b": 24}, "showlegend": False,
                   "title": {"text": _text(f"Failed users, last {len(ordered)} cycles"), "x": 0, "font": {"size": 12}},
                   "xaxis": {**_time_axis("cycle start"), "showgrid": False, "showticklabels": False,
                             "title": {"text": ""}},
                   "yaxis": {"rangemode": "tozero", "automargin": True}},
        "config": CONFIG,
    }


def _unique(labels: list[str], signatures: list[dict[str, Any]]) -> list[str]:
    """`labels`, with each one that occurs twice told apart by a piece of its signature's detail
    and, if that is the same too, its id."""
    counts = Counter(labels)
    labels = [f"{label} · {_short(s.get('detail'))}" if counts[label] > 1 and s.get("detail") else label
              for label, s in zip(labels, signatures, strict=True)]
    counts = Counter(labels)
    return [f"{label} (#{s['id']})" if counts[label] > 1 else label for label, s in zip(labels, signatures, strict=True)]


def _short(value: object, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _minutes(seconds: float) -> str:
    """A duration people read: "45 s", "12 min", "2 h 05 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _text(value: object) -> str:
    """A label as Plotly shows it literally: `<`, `>` and `&` as entities (Plotly decodes them
    only after it has read the markup)."""
    return escape(str(value), quote=False)
