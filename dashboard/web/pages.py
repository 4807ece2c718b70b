"""HTML pages: overview, job, logs, exchange, Entra event, users, timeline, cycles, diagnostics."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import plotly
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)

from dashboard.admin.accounts import role_allows
from dashboard.analysis.identity import people_labels
from dashboard.analysis.outcomes import BUCKETS, OUTCOMES
from dashboard.analysis.users import USER_STATES
from dashboard.db import db
from dashboard.notify import outbox
from dashboard.notify.outbox import retry_now
from dashboard.notify.recipients import all_recipients
from dashboard.notify.reports import list_reports, report_document
from dashboard.queries import by_key, logs
from dashboard.queries import entra as entra_views
from dashboard.queries.cycles import current_cycle, cycle_detail, list_cycles
from dashboard.queries.diagnostics import diagnostics
from dashboard.queries.endpoint import endpoint_view
from dashboard.queries.exchanges import exchange_json, sibling_briefs
from dashboard.queries.health import at_a_glance, health_json
from dashboard.queries.signatures import list_signatures
from dashboard.queries.users import (
    failing_users,
    find_user,
    list_users,
    user_brief,
    user_timeline,
)
from dashboard.runtime import now as _now
from dashboard.runtime import settings as _settings
from dashboard.times import to_us
from dashboard.web import charts
from dashboard.web.auth import requires
from dashboard.web.common import cycle_or_404, exchange_or_404
from dashboard.web.common import job_or_404 as _job

bp = Blueprint("pages", __name__)
OVERVIEW_CARDS = 20  # more jobs than this: the overview shows a line per job instead of a card
URGENCY = {"disabled": 0, "quarantined": 1, "stalled": 2, "warning": 3, "unknown": 4, "healthy": 5}
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _can(role: str) -> bool:
    return g.account is not None and role_allows(g.account.role, role)


@bp.record_once
def _globals(state: Any) -> None:
    # Globals, not a context processor: imported macros see them too.
    state.app.jinja_env.globals["can"] = _can
    state.app.jinja_env.filters["urldecode_short"] = _urldecode_short
    state.app.jinja_env.filters["people_labels"] = _people_labels


def _people_labels(briefs: list[dict[str, Any]]) -> list[str]:
    """Names for a list of user briefs, two people sharing a name told apart (identity.people_labels)."""
    return people_labels([(b.get("userName"), b.get("externalId"), b.get("scim_id"), b.get("id") or 0) for b in briefs])


def _urldecode_short(query: str, limit: int = 90) -> str:
    text = unquote_plus(query)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@bp.get("/assets/plotly.min.js")
@requires("viewer")
def plotly_js() -> Response:
    """Plotly's JavaScript from the installed package: no CDN."""
    response = send_file(PLOTLY_JS, mimetype="text/javascript", max_age=86400)
    response.headers["Cache-Control"] = "private, max-age=86400"
    return response


@bp.get("/")
@requires("viewer")
def overview_page() -> str:
    """Every job, most urgent first. Up to OVERVIEW_CARDS jobs: a card each, judged now, with its
    cycle's progress and trend. More (a desk watching many tenants): one line each, from the health
    the scheduler last recorded (a minute old at most), so the page costs what a few jobs cost."""
    jobs = by_key.jobs(db.session)
    if len(jobs) > OVERVIEW_CARDS:
        lines = at_a_glance(db.session, jobs)
        lines.sort(key=lambda line: (URGENCY.get(line["state"], 9), line["job"].name))
        return render_template("pages/overview.html", rows=[], lines=lines,
                               summary=summary_of([{"health": {"state": line["state"]}} for line in lines]))
    rows = []
    for job in jobs:
        cycles = list_cycles(db.session, job, _now(), _settings(), limit=12)
        rows.append({
            "job": job,
            "health": health_json(db.session, job, _now(), _settings()),
            "cycle": current_cycle(db.session, job, _now(), _settings()),
            "trend": charts.trend_figure(cycles) if len(cycles) > 1 else None,
        })
    rows.sort(key=lambda r: (URGENCY.get(r["health"]["state"], 9), r["job"].name))
    return render_template("pages/overview.html", rows=rows, lines=None, summary=summary_of(rows))


def summary_of(rows: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(state, words, jobs) for each state some job shows, most urgent first: the overview's summary
    strip ("1 quarantined by Entra · 1 stalled · 2 healthy"). Entra's word when Entra gave the state."""
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        health = row["health"]
        label = health.get("state_label") or ""
        words = label[:1].lower() + label[1:] if health.get("state_source") == "entra" and label \
            else health["state"].replace("_", " ")
        counts[(health["state"], words)] = counts.get((health["state"], words), 0) + 1
    return sorted(((state, words, n) for (state, words), n in counts.items()),
                  key=lambda item: (URGENCY.get(item[0], 9), item[1]))


@bp.get("/search")
@requires("support")
def search_page() -> str:
    """A person across every job, by any name, externalId or SCIM id they have or had."""
    text = request.args.get("q", "").strip()[:200]
    results: list[dict[str, Any]] = []
    if text:
        for job in by_key.jobs(db.session):
            exact = find_user(db.session, job, text)
            users = [user_brief(exact)] if exact is not None else []
            seen = {u["id"] for u in users}
            users += [u for u in list_users(db.session, job, search=text, limit=20)["users"] if u["id"] not in seen]
            results += [{"job": job, "user": u, "exact": exact is not None and u["id"] == exact.id} for u in users]
    return render_template("pages/search.html", q=text, results=results)


bp.add_url_rule("/", endpoint="overview", view_func=overview_page)


@bp.get("/jobs/<job_name>")
@requires("viewer")
def job_page(job_name: str) -> str:
    job = _job(job_name)
    cycles = list_cycles(db.session, job, _now(), _settings(), limit=30)
    signatures = list_signatures(db.session, job, limit=10) if _can("support") else []
    figures = {"outcomes": charts.outcomes_figure(cycles), "rate": charts.rate_and_duration_figure(cycles)}
    if signatures:
        figures["signatures"] = charts.signatures_figure(signatures)
    health = health_json(db.session, job, _now(), _settings())
    latest = health["transitions"][0]["evidence"] if health["transitions"] else []
    return render_template(
        "pages/job.html", job=job, cycles=cycles[:15], signatures=signatures, figures=figures, health=health,
        cycle=current_cycle(db.session, job, _now(), _settings()),
        failing=failing_users(db.session, job, limit=20) if _can("support") else [],
        evidence=entra_views.evidence_items(db.session, job, latest) if _can("support") else [],
        entra=entra_views.status_view(db.session, job, health, _now()),
        endpoint=endpoint_view(db.session, job, _now()) if _can("admin") else None,
    )


@bp.get("/jobs/<job_name>/logs")
@requires("support")
def logs_page(job_name: str) -> tuple[str, int] | str:
    job = _job(job_name)
    try:
        f = logs.LogFilter.from_args(request.args)
        result = logs.page(db.session, job, f, cursor=request.args.get("after") or None,
                           before=request.args.get("before") or None)
    except logs.FilterError as exc:
        return render_template("pages/logs.html", job=job, error=str(exc), result=None, f=logs.LogFilter(),
                               operations=logs.OPERATIONS, cycles=logs.cycles_of(db.session, job)), 400
    return render_template("pages/logs.html", job=job, result=result, f=f, error=None,
                           operations=logs.OPERATIONS, cycles=logs.cycles_of(db.session, job))


@bp.get("/jobs/<job_name>/logs/export.<fmt>")
@requires("support")
def logs_export(job_name: str, fmt: str) -> Response:
    job = _job(job_name)
    if fmt not in ("csv", "jsonl"):
        abort(404)
    try:
        f = logs.LogFilter.from_args(request.args)
    except logs.FilterError as exc:
        abort(400, description=str(exc))
    stamp = _now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        body = stream_with_context(logs.export_csv(db.session, job, f))
        mimetype = "text/csv"
    else:
        body = stream_with_context(logs.export_json(db.session, job, f))
        mimetype = "application/x-ndjson"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{job.name}-logs-{stamp}.{fmt}"'
    return response


@bp.get("/jobs/<job_name>/exchanges/<int:exchange_id>")
@requires("support")
def exchange_page(job_name: str, exchange_id: int) -> str:
    job = _job(job_name)
    row = exchange_or_404(job, exchange_id)
    exchange = exchange_json(db.session, row)
    siblings = sibling_briefs(db.session, row)
    user = by_key.user_by_id(db.session, row.user_id)
    return render_template("pages/exchange.html", job=job, e=exchange, siblings=siblings, user=user,
                           pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False) if v is not None else "")


@bp.get("/jobs/<job_name>/entra-events/<int:event_id>")
@requires("support")
def entra_event_page(job_name: str, event_id: int) -> str:
    """One Entra provisioning event, with the same user's SCIM exchanges within
    entra_views.JOIN_WINDOW (±10 min) of it, failing ones first. Support, like exchanges."""
    job = _job(job_name)
    row = entra_views.event_of(db.session, job, event_id)
    if row is None:
        abort(404, description=f"No Entra event {event_id} in {job.name}.")
    user = by_key.user_by_id(db.session, row.user_id)
    return render_template("pages/entra_event.html", job=job, ev=entra_views.event_json(row), user=user,
                           exchanges=entra_views.exchanges_near(db.session, row),
                           window_min=int(entra_views.JOIN_WINDOW.total_seconds() // 60),
                           pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False) if v is not None else "")


@bp.get("/jobs/<job_name>/users")
@requires("support")
def users_page(job_name: str) -> str:
    job = _job(job_name)
    state = request.args.get("state") or None
    if state and state not in USER_STATES:
        abort(400, description="state must be one of " + ", ".join(USER_STATES))
    after = request.args.get("after")
    result = list_users(db.session, job, state=state, search=request.args.get("q") or None,
                                 after=int(after) if after and after.isdigit() else None, limit=100)
    failures = entra_views.last_failures(db.session, [u["id"] for u in result["users"]])
    return render_template("pages/users.html", job=job, result=result, state=state, q=request.args.get("q", ""),
                           failures=failures)


@bp.get("/jobs/<job_name>/users/<path:key>")
@requires("support")
def user_page(job_name: str, key: str) -> str:
    job = _job(job_name)
    user = find_user(db.session, job, key)
    if user is None:
        abort(404, description=f"No user {key} in {job.name}.")
    timeline = entra_views.merge_timeline(db.session, user_timeline(db.session, job, user),
                                          entra_views.user_events(db.session, user))
    return render_template("pages/user.html", job=job, timeline=timeline, last_failure=user.last_failure_exchange_id,
                           pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False) if v is not None else "")


@bp.get("/jobs/<job_name>/cycles")
@requires("viewer")
def cycles_page(job_name: str) -> str:
    job = _job(job_name)
    before = request.args.get("before")
    cycles = list_cycles(db.session, job, _now(), _settings(), limit=50,
                                  before=int(before) if before and before.isdigit() else None)
    next_before = to_us(datetime.fromisoformat(cycles[-1]["started_at"].replace("Z", "+00:00"))) if len(cycles) == 50 else None
    return render_template("pages/cycles.html", job=job, cycles=cycles, next_before=next_before)


@bp.get("/jobs/<job_name>/cycles/<int:cycle_id>")
@requires("support")
def cycle_page(job_name: str, cycle_id: int) -> str:
    job = _job(job_name)
    cycle = cycle_or_404(job, cycle_id)
    detail = cycle_detail(db.session, job, cycle, _now(), _settings())
    return render_template("pages/cycle.html", job=job, c=detail, buckets=BUCKETS, outcomes=OUTCOMES,
                           entra=entra_views.cycle_events(db.session, cycle) if cycle.events else None,
                           joined=entra_views.cycle_join(db.session, job, cycle),
                           margin_min=int(entra_views.CYCLE_MARGIN.total_seconds() // 60))


@bp.get("/jobs/<job_name>/diagnostics")
@requires("support")
def diagnostics_page(job_name: str) -> str:
    """For support staff: why the job is in this state, the evidence, what Entra does next."""
    job = _job(job_name)
    data = diagnostics(db.session, job, _now(), _settings())
    return render_template("pages/diagnostics.html", job=job, **data,
                           pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False) if v is not None else "")


# -- cycle reports and notifications (dashboard/reports.py, dashboard/notify) ------------------------


@bp.get("/reports")
@requires("support")
def reports_page() -> str:
    name = request.args.get("job") or None
    job = _job(name) if name else None
    return render_template("pages/reports.html", job=job, rows=list_reports(db.session, job=job, limit=200),
                           jobs=by_key.jobs(db.session))


@bp.get("/reports/<int:report_id>")
@requires("support")
def report_page(report_id: int) -> str:
    run = by_key.report_run(db.session, report_id)
    if run is None:
        abort(404, description=f"No report {report_id}.")
    return render_template("pages/report.html", run=run, job=by_key.job_by_id(db.session, run.job_id), r=report_document(run))


@bp.get("/notifications")
@requires("admin")
def notifications_page() -> str:
    now = _now()
    jobs = by_key.jobs(db.session)
    return render_template(
        "pages/notifications.html", now=now, counts=outbox.counts(db.session, now),
        undelivered=outbox.undelivered(db.session), recent=outbox.recent(db.session), in_doubt=outbox.is_in_doubt,
        recipients=[(job, all_recipients(db.session, job, _settings())) for job in jobs],
        smtp=_settings().smtp,
    )


@bp.post("/notifications/<int:notification_id>/retry")
@requires("admin")
def notification_retry(notification_id: int) -> Response:
    if retry_now(db.session, notification_id, _now()):
        flash(f"Email {notification_id} will be sent at the next delivery (within a minute).")
    else:
        flash(f"Email {notification_id} was sent already or does not exist.", "error")
    return redirect(url_for("pages.notifications_page"))
