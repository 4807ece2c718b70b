"""JSON API: log push for shippers (Fluent Bit, Vector) under /api/v1."""
from __future__ import annotations

import io
from typing import Any

import orjson
from flask import Blueprint, Response, abort, current_app, jsonify, request

from dashboard.admin.jobs import job_for_token
from dashboard.analysis.users import USER_STATES
from dashboard.db import db
from dashboard.formats.gunzip import MAGIC as GZIP_MAGIC
from dashboard.formats.gunzip import Gunzip
from dashboard.formats.scim.parse import LineError, parse_ts
from dashboard.formats.scim.redact import is_secret_query_key
from dashboard.ingest.scim import DATABASE_DOWN, ingest_lines, options_for
from dashboard.queries import by_key, replay
from dashboard.queries import cycles as cycle_views
from dashboard.queries import entra as entra_views
from dashboard.queries import users as user_views
from dashboard.queries.cycles import list_cycles
from dashboard.queries.exchanges import exchange_json
from dashboard.queries.health import health_json
from dashboard.queries.signatures import list_signatures
from dashboard.queries.users import find_user, list_users
from dashboard.runtime import now, settings
from dashboard.times import to_us
from dashboard.web.auth import requires
from dashboard.web.common import cycle_or_404, exchange_or_404
from dashboard.web.common import job_or_404 as _job
from dashboard.web.openapi import document as openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def error(message: str, status: int, **headers: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response


@bp.before_request
def _refuse_tokens_in_the_query() -> Response | None:
    """A token in a query string ends up in logs and browser histories: refused, whatever the
    endpoint, before anything else looks at the request."""
    rules = options_for(settings()).rules
    if any(is_secret_query_key(key, rules) for key in request.args):
        return error("a token in the query string is refused (and was not used): send it in the "
                     "Authorization header, Authorization: Bearer <token>", 401,
                     **{"WWW-Authenticate": 'Bearer realm="api"'})
    return None


@bp.post("/jobs/<job_name>/exchanges")
def push_exchanges(job_name: str) -> Response:
    """Ingest a JSON Lines body or a JSON array; answers counts and each rejected line."""
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error("an ingest token is required: Authorization: Bearer <token>", 401,
                     **{"WWW-Authenticate": 'Bearer realm="ingest"'})
    job = job_for_token(job_name, token.strip())
    if job is None:
        return error("the token is not valid for this job", 403)
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        return error(f"body larger than {limit} bytes", 413)
    body = _body_within(limit)
    if body is None:
        return error(f"body larger than {limit} bytes (sent without Content-Length): nothing was stored; "
                     "send it in smaller pushes", 413)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        return error(f"Content-Encoding {encoding[:40]!r} is not supported (gzip is): nothing was stored", 415)
    if encoding != "identity" or body[:2] == GZIP_MAGIC:
        body, refused = _gunzipped(body, limit)
        if refused is not None:
            return refused

    try:
        result = ingest_lines(db.engine, job, _numbered(body), source=f"push:{request.remote_addr}",
                              via="push", options=options_for(settings(), only_job=True))
    except DATABASE_DOWN:
        # Only the database being unreachable stops a push (a bad line is a reject): the batches
        # stored before are kept, and a retry of the whole body stores nothing twice.
        current_app.logger.warning("push to %s: the database is unavailable", job.name, exc_info=True)
        return error("the database is unavailable; retry the same body later (lines already stored are "
                     "recognised and not stored twice)", 503, **{"Retry-After": "30"})
    return jsonify(
        lines=result.lines,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=result.rejected,
        rejects=[{"line": p.line_no, "reason": p.reason} for p in result.problems],
    )


def _body_within(limit: int) -> bytes | None:
    """The request body, or None when it is longer than `limit`. A body without Content-Length
    (chunked) is read from the server's own stream up to one byte past the limit, so that an
    oversize body is refused whole instead of cut silently at the limit."""
    if request.content_length is not None:
        return request.get_data(cache=False)
    environ = request.environ
    if "wsgi.input_terminated" not in environ:
        return request.get_data(cache=False)  # Werkzeug gives an empty body: nothing to cut
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(65_536, limit + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
    return None


def _gunzipped(body: bytes, limit: int) -> tuple[bytes, Response | None]:
    """A gzip body decompressed (at most `limit` bytes of it, as for a plain body), or the error
    that refuses it whole: damaged gzip data is a transport's fault, not lines to reject."""
    gunzip = Gunzip(io.BytesIO(body))
    plain = io.BufferedReader(gunzip).read(limit + 1)
    if len(plain) > limit:
        return b"", error(f"body larger than {limit} bytes once decompressed: nothing was stored; "
                          "send it in smaller pushes", 413)
    if gunzip.damage is not None:
        return b"", error(f"the body's gzip data is damaged: {gunzip.damage}; nothing was stored "
                          "(send it again)", 400)
    return plain, None


def _numbered(body: bytes):  # type: ignore[no-untyped-def]
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            items = None
        if isinstance(items, list):
            for number, item in enumerate(items, start=1):
                yield number, orjson.dumps(item)
            return
    # Lines end in LF (or CRLF); a body without any LF whose lines end in a bare CR (classic Mac OS)
    # is split on CR, as `flask ingest` reads such a file (docs/ingest.md).
    separator = b"\r" if b"\n" not in body and b"\r" in body.rstrip(b"\r") else b"\n"
    for number, line in enumerate(body.split(separator), start=1):
        yield number, line


# -- reads (accounts: session cookie or a personal API token) ---------------------------------------


def _int_arg(name: str, default: int | None, *, low: int = 1, high: int = 1000) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, description=f"query parameter '{name}' must be an integer")
    if not low <= value <= high:
        abort(400, description=f"query parameter '{name}' must be between {low} and {high}")
    return value


@bp.get("/openapi.json")
@requires("viewer")
def openapi() -> Any:
    """This API described by OpenAPI 3.1 (dashboard/web/openapi.py), for scripts and code generators."""
    return jsonify(openapi_document(request.script_root + (bp.url_prefix or "")))


@bp.get("/jobs")
@requires("viewer")
def jobs() -> Any:
    listed = by_key.jobs(db.session)
    return jsonify(jobs=[{"name": j.name, "title": j.title, "source": j.source_system, "target": j.target_system,
                          "scope_size": j.scope_size} for j in listed])


@bp.get("/jobs/<job_name>/health")
@requires("viewer")
def health(job_name: str) -> Any:
    return jsonify(health_json(db.session, _job(job_name), now(), settings()))


@bp.get("/jobs/<job_name>/cycles/current")
@requires("viewer")
def current_cycle(job_name: str) -> Any:
    """The cycle with its progress bar, and the few health fields the live card shows."""
    job = _job(job_name)
    health = health_json(db.session, job, now(), settings())
    return jsonify(cycle=cycle_views.current_cycle(db.session, job, now(), settings()),
                   health={k: health[k] for k in ("state", "state_label", "state_source", "last_traffic",
                                                  "disagreement")})


@bp.get("/jobs/<job_name>/cycles")
@requires("viewer")
def cycles(job_name: str) -> Any:
    job = _job(job_name)
    limit = _int_arg("limit", 50, high=500)
    before = _int_arg("before", None, low=0, high=2**62)
    rows = list_cycles(db.session, job, now(), settings(), limit=limit or 50, before=before)
    return jsonify(cycles=rows, next_before=_us(rows[-1]["started_at"]) if len(rows) == limit else None)


def _us(iso: str) -> int:
    return to_us(parse_ts(iso))


@bp.get("/jobs/<job_name>/cycles/<int:cycle_id>")
@requires("support")
def cycle_detail(job_name: str, cycle_id: int) -> Any:
    job = _job(job_name)
    cycle = cycle_or_404(job, cycle_id)
    return jsonify(cycle_views.cycle_detail(db.session, job, cycle, now(), settings()))


@bp.get("/jobs/<job_name>/users")
@requires("support")
def users(job_name: str) -> Any:
    state = request.args.get("state") or None
    if state and state not in USER_STATES:
        abort(400, description="query parameter 'state' must be one of " + ", ".join(USER_STATES))
    return jsonify(list_users(db.session, _job(job_name), state=state, limit=_int_arg("limit", 100) or 100,
                                       after=_int_arg("after", None, low=0, high=2**62), search=request.args.get("q")))


@bp.get("/jobs/<job_name>/users/<path:key>/timeline")
@requires("support")
def user_timeline(job_name: str, key: str) -> Any:
    job = _job(job_name)
    user = find_user(db.session, job, key)
    if user is None:
        abort(404, description=f"no user '{key}' in job '{job_name}'")
    # the page's timeline: exchanges and Entra's events of the user, interleaved by time in `items`
    return jsonify(entra_views.merge_timeline(db.session, user_views.user_timeline(db.session, job, user),
                                              entra_views.user_events(db.session, user)))


@bp.get("/jobs/<job_name>/signatures")
@requires("support")
def signatures(job_name: str) -> Any:
    return jsonify(signatures=list_signatures(db.session, _job(job_name), limit=_int_arg("limit", 50) or 50))


@bp.get("/jobs/<job_name>/exchanges/<int:exchange_id>")
@requires("support")
def exchange(job_name: str, exchange_id: int) -> Any:
    job = _job(job_name)
    row = exchange_or_404(job, exchange_id)
    return jsonify(exchange_json(db.session, row))


@bp.get("/jobs/<job_name>/report")
@requires("support")
def report(job_name: str) -> Any:
    at = None
    if request.args.get("at"):
        try:
            at = parse_ts(request.args["at"])
        except LineError:
            abort(400, description="query parameter 'at' must be RFC 3339 with a zone, e.g. 2026-11-28T03:00:00Z")
    return jsonify(replay.report(db.session, _job(job_name), now(), settings(),
                                   cycles=_int_arg("cycles", 5, high=100) or 5, at=at))


# -- Entra's own view: its job status against our health, its provisioning events -----------------


@bp.get("/jobs/<job_name>/entra/status")
@requires("viewer")
def entra_status(job_name: str) -> Any:
    """Entra's latest imported job status and how it compares with our inferred health."""
    job = _job(job_name)
    health_now = health_json(db.session, job, now(), settings())
    return jsonify(entra_views.status_view(db.session, job, health_now, now()))


@bp.get("/jobs/<job_name>/entra/events")
@requires("support")
def entra_events(job_name: str) -> Any:
    job = _job(job_name)
    try:
        f = entra_views.EventFilter.from_args(request.args)
        return jsonify(entra_views.list_events(db.session, job, f, after=request.args.get("after") or None,
                                               limit=_int_arg("limit", 100, high=1000) or 100))
    except entra_views.EventFilterError as exc:
        abort(400, description=f"query parameter {exc}")


@bp.get("/jobs/<job_name>/entra/events/<int:event_id>")
@requires("support")
def entra_event(job_name: str, event_id: int) -> Any:
    """One event in full, with the same user's SCIM exchanges around it (entra_views.JOIN_WINDOW)."""
    job = _job(job_name)
    row = entra_views.event_of(db.session, job, event_id)
    if row is None:
        abort(404, description=f"no Entra event {event_id} in job '{job_name}'")
    return jsonify({**entra_views.event_json(row), "exchanges": entra_views.exchanges_near(db.session, row),
                    "window_s": int(entra_views.JOIN_WINDOW.total_seconds())})
