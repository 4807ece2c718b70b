"""One test per leak of issue 12: each form of a secret, through the real ingest, is kept out of
every column it would have reached (the canary test walks all outputs; these name each form)."""
from __future__ import annotations

import logging

import orjson
import pytest
from sqlalchemy import select

from dashboard.admin.jobs import create_token, get_job
from dashboard.db import db
from dashboard.formats import codec
from dashboard.formats.scim.redact import DEFAULT_RULES, redact_raw, redact_text
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.logredact import RedactingFilter
from dashboard.models import EntraEvent, Exchange, Reject

from .canaries import (
    accepted_forms,
    canary,
    entra_records,
    rejected_forms,
    write_entra_csv,
    write_entra_page,
)

JOB = "uniflow-prod"


def _ingest(settings, lines: list[bytes]):  # type: ignore[no-untyped-def]
    return ingest_lines(db.engine, get_job(JOB), enumerate(lines, start=1), source="test", via="cli",
                        options=options_from(settings.ingest, cycles=settings.cycles))


def _stored_text() -> str:
    db.session.rollback()
    parts = []
    for row in db.session.scalars(select(Exchange)):
        parts += [orjson.dumps(codec.unpack(row.blob)).decode(), row.error_detail or "", row.request_id or "",
                  row.scim_type or ""]
    for reject in db.session.scalars(select(Reject)):
        parts += [reject.raw, reject.reason]
    for event in db.session.scalars(select(EntraEvent)):
        parts += [orjson.dumps(codec.unpack(event.blob)).decode(), event.reason or "", event.recommended_action or "",
                  event.error_code or ""]
    return "\n".join(parts)


@pytest.mark.parametrize("form", list(accepted_forms("t")))
def test_it_keeps_a_secret_of_an_accepted_line_out_of_the_database(app, settings, form):
    record = {"ts": "2026-11-28T08:00:00Z", "request_id": form, **accepted_forms("t")[form]}

    result = _ingest(settings, [orjson.dumps(record)])

    assert result.accepted == 1, result.problems
    stored = _stored_text()
    assert canary(form, "t") not in stored
    assert "[REDACTED]" in stored or "%5BREDACTED%5D" in stored  # replaced (percent-encoded in a query), not dropped


@pytest.mark.parametrize("form", list(rejected_forms("t")))
def test_it_keeps_a_secret_of_a_rejected_line_out_of_the_rejects(app, settings, form):
    result = _ingest(settings, [rejected_forms("t")[form]])

    assert result.rejected == 1
    stored = _stored_text()
    assert "Cnry" not in stored  # every canary of the line, whatever its name
    assert "Cnry" not in result.problems[0].raw + result.problems[0].reason


def test_it_keeps_the_secrets_of_an_entra_failure_reason_and_its_modified_properties_out(app, settings, tmp_path, runner):
    result = runner.invoke(args=["ingest", str(write_entra_page(tmp_path / "page.json", "t")), "--job", JOB])
    runner.invoke(args=["ingest", str(write_entra_csv(tmp_path / "csv", "t")), "--job", JOB, "--format", "entra-csv"])

    assert "rejected" in result.output
    stored = _stored_text()
    assert db.session.scalar(select(EntraEvent.id).where(EntraEvent.entra_id == "t-event-1")) is not None
    assert "Cnry" not in stored
    assert "pin" in stored and "[REDACTED]" in stored  # the reason is kept, its value hidden


def test_the_reason_of_an_entra_event_keeps_its_words(app, settings, tmp_path, runner):
    runner.invoke(args=["ingest", str(write_entra_page(tmp_path / "page.json", "t")), "--job", JOB])

    reason = db.session.scalar(select(EntraEvent.reason))

    assert reason.startswith("StatusCode: BadRequest Message: Processing of the HTTP request")
    assert f'"path":"urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin","value":"[REDACTED]"' in reason


def test_a_line_cut_at_2000_characters_is_redacted_before_it_is_cut():
    line = rejected_forms("t")["reject-cut-at-2000"].decode()

    kept = redact_raw(line, DEFAULT_RULES, keep=2000)

    assert len(line) > 2000 and len(kept) == 2001 and kept.endswith("…")
    assert canary("reject-cut-at-2000", "t") not in kept


def test_the_push_api_refuses_a_token_in_the_query_string(app, client):
    token = create_token(get_job(JOB))[1]

    response = client.post(f"/api/v1/jobs/{JOB}/exchanges?token={token}", data=b"{}")

    assert response.status_code == 401
    assert "Authorization header" in response.json["error"]
    assert db.session.scalar(select(Exchange.id)) is None


def test_the_read_api_refuses_a_token_in_the_query_string_too(app, client):
    assert client.get(f"/api/v1/jobs?access_token=pma_{'x' * 20}").status_code == 401


@pytest.mark.parametrize("message", [
    '127.0.0.1 - - "POST /api/v1/jobs/uniflow-prod/exchanges?token=%s HTTP/1.1" 401 -',
    "retrying with Authorization: Bearer %s",
    'answer {"pin": "%s"}',
])
def test_the_log_filter_hides_a_secret_in_any_message(message):
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, message, ("pmd_" + "Cnry0Secret42",), None)

    RedactingFilter(DEFAULT_RULES).filter(record)

    assert "Cnry0Secret42" not in record.getMessage()
    assert "[REDACTED]" in record.getMessage()


@pytest.mark.parametrize("text", [
    'filter=userName eq "token@contoso.com"', "Basic Printer", "Attribute pin, cardNumber must be valid",
    "The value is invalid", "Administrators group", 'userName eq "ryan@contoso.com"',
])
def test_text_without_a_secret_is_left_as_it_is(text):
    assert redact_text(text, DEFAULT_RULES) is text


def test_entra_records_hide_no_canary_in_their_raw_form():
    # the fixtures really carry their canaries (else the tests above would prove nothing)
    raw = orjson.dumps(entra_records("t")).decode()

    assert canary("entra-reason", "t") in raw and canary("entra-modified-pin", "t") in raw


def test_a_simulated_target_that_echoes_refused_secrets_leaves_none_in_the_database(app, settings):  # type: ignore[no-untyped-def]
    """The simulator's realistic target answers some refused secrets with "Attribute 'pin' value
    '1234' does not satisfy the pin policy", as real targets do: every such value stays out."""
    from dashboard.demo.simulate import (
        simulate_lines,  # the simulator: only this test needs it
    )
    from dashboard.demo.truth import SimConfig

    config = SimConfig.realistic(users=300, cycles=6, seed=3, job=JOB, failure_rate=0.25, change_rate=0.4)
    lines = list(simulate_lines(config)[0])
    echoed = {detail.split("value '", 1)[1].split("'", 1)[0]
              for line in lines for detail in [orjson.loads(line).get("response_body", {}) or {}]
              if isinstance(detail, dict) and "does not satisfy" in str(detail.get("detail"))
              and "value '" in str(detail.get("detail"))
              for detail in [detail["detail"]]}
    assert len(echoed) >= 5  # the simulator did echo some (card numbers, PINs)

    result = _ingest(settings, lines)

    assert result.rejected == 0, result.problems[:3]
    stored = _stored_text()
    assert "does not satisfy the" in stored  # the messages are kept...
    for value in echoed:
        assert f"'{value}'" not in stored  # ...without the values
