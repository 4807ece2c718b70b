"""/api/v1/openapi.json describes every API route, no more, and real answers match its schemas."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.accounts import add_account, create_api_token
from dashboard.admin.jobs import create_token, get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle, Exchange

API = "/api/v1"


@pytest.fixture(autouse=True)
def _cheap_hashing(monkeypatch):  # type: ignore[no-untyped-def]
    # Argon2 with its default cost takes half a second per hash; these tests are not about that.
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def api(app, client, settings):  # type: ignore[no-untyped-def]
    """A client with an admin's API token, on a simulated job with failures."""
    lines, truth = simulate_lines(SimConfig(users=30, cycles=3, seed=3, job="uniflow-prod", failure_rate=0.2))
    ingest_lines(db.engine, get_job("uniflow-prod"), enumerate(lines, start=1), source="sim.jsonl", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    moment = truth.cycles[-1].ended_at + timedelta(minutes=30)
    app.extensions["clock"] = lambda: moment
    token = create_api_token(add_account("admin@example.com", "admin", "a long password"))
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def spec_of(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = client.get(API + "/openapi.json")
    assert response.status_code == 200, response.json
    return response.json  # type: ignore[no-any-return]


def openapi_path(rule: str) -> str:
    """Werkzeug's /api/v1/jobs/<job_name>/cycles/<int:cycle_id> → /jobs/{job_name}/cycles/{cycle_id}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.removeprefix(API))


def test_it_describes_every_api_route_and_nothing_else(app, api):  # type: ignore[no-untyped-def]
    routes = {(openapi_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith(API + "/") for method in rule.methods - {"HEAD", "OPTIONS"}}
    spec = spec_of(api)
    described = {(path, method) for path, item in spec["paths"].items() for method in item}

    assert routes - described == set(), "API routes missing from dashboard/web/openapi.py"
    assert described - routes == set(), "described in dashboard/web/openapi.py but not served"


def test_it_names_each_route_s_role_as_the_app_enforces_it(app, api):  # type: ignore[no-untyped-def]
    spec = spec_of(api)
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API + "/"):
            continue
        view = app.view_functions[rule.endpoint]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            role = spec["paths"][openapi_path(rule.rule)][method.lower()]["x-role"]
            assert role == getattr(view, "required_role", "ingest token"), rule.rule


def test_the_document_is_valid_openapi_3_1(api):  # type: ignore[no-untyped-def]
    spec = spec_of(api)

    validate(spec)  # raises OpenAPIValidationError naming the bad part
    assert spec["openapi"] == "3.1.0"
    assert spec["servers"] == [{"url": "/api/v1"}]


def test_it_is_served_only_to_a_signed_in_account(client):  # type: ignore[no-untyped-def]
    response = client.get(API + "/openapi.json")

    assert response.status_code == 401
    assert response.json == {"error": response.json["error"]}


def _check(spec: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    schema = spec["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    # refs are #/components/schemas/…: the components travel with the schema so they resolve
    validator = Draft202012Validator({**schema, "components": spec["components"]},
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{method.upper()} {path} {status}: " + "; ".join(
        f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def test_real_answers_match_their_schemas(app, api):  # type: ignore[no-untyped-def]
    spec = spec_of(api)
    job = "uniflow-prod"
    cycle_id = db.session.scalars(select(Cycle.id).order_by(Cycle.id.desc())).first()
    exchange_id = db.session.scalars(select(Exchange.id).where(Exchange.failed.is_(True))).first()
    key = api.get(f"{API}/jobs/{job}/users?state=failing").json["users"][0]["key"]
    checked = {
        "/jobs": "/jobs",
        "/jobs/{job_name}/health": f"/jobs/{job}/health",
        "/jobs/{job_name}/cycles/current": f"/jobs/{job}/cycles/current",
        "/jobs/{job_name}/cycles": f"/jobs/{job}/cycles?limit=2",
        "/jobs/{job_name}/cycles/{cycle_id}": f"/jobs/{job}/cycles/{cycle_id}",
        "/jobs/{job_name}/users": f"/jobs/{job}/users?state=failing",
        "/jobs/{job_name}/users/{key}/timeline": f"/jobs/{job}/users/{key}/timeline",
        "/jobs/{job_name}/signatures": f"/jobs/{job}/signatures",
        "/jobs/{job_name}/exchanges/{exchange_id}": f"/jobs/{job}/exchanges/{exchange_id}",
        "/jobs/{job_name}/report": f"/jobs/{job}/report?cycles=2",
        "/jobs/{job_name}/entra/status": f"/jobs/{job}/entra/status",
        "/jobs/{job_name}/entra/events": f"/jobs/{job}/entra/events",
    }
    for path, url in checked.items():
        response = api.get(API + url)
        assert response.status_code == 200, (url, response.json)
        _check(spec, path, "get", 200, response.json)

    for path, url, status in [("/jobs/{job_name}/health", "/jobs/nope/health", 404),
                              ("/jobs/{job_name}/cycles", f"/jobs/{job}/cycles?limit=x", 400)]:
        response = api.get(API + url)
        assert response.status_code == status
        _check(spec, path, "get", status, response.json)

    _, token = create_token(get_job(job))
    push = api.post(f"{API}/jobs/{job}/exchanges", data=b'{"not": "a line"}\n',
                    headers={"Authorization": f"Bearer {token}"})
    assert push.status_code == 200
    _check(spec, "/jobs/{job_name}/exchanges", "post", 200, push.json)
