"""JSON API: log push for shippers (Fluent Bit, Vector) under /api/v1."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

import orjson

from ..db import db
from ..ingest.load import ingest_lines
from ..jobs import job_for_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def error(message: str, status: int, **headers: str) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    response.headers.update(headers)
    return response


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
    body = request.get_data(cache=False)
    from ..cli import ingest_options

    result = ingest_lines(db.engine, job, _numbered(body), source=f"push:{request.remote_addr}",
                          via="push", options=ingest_options(only_job=True))
    return jsonify(
        lines=result.lines,
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=result.rejected,
        rejects=[{"line": p.line_no, "reason": p.reason} for p in result.problems],
    )


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
    for number, line in enumerate(body.split(b"\n"), start=1):
        yield number, line
