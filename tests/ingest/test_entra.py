"""Importing Entra provisioning logs and job status into the database, and the analysis on them.

The same guarantees as the SCIM request log: a bad record is a reject naming its file and record
and loses nothing else; re-importing is a no-op; a crash mid-import leaves whole batches and a
re-run completes the file; secrets never reach the database.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.entra_pages import generate_records, write_pages
from dashboard.formats.entra.parse import read_paths
from dashboard.ingest.entra import evidence_ref, import_events
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import (
    Cycle,
    EntraEvent,
    EntraJobStatus,
    Exchange,
    IngestRun,
    Reject,
    ScimUser,
    Signature,
    UserCycle,
)
from dashboard.queries.cycles import list_cycles
from dashboard.queries.health import health_json
from dashboard.tracking.rebuild import rebuild

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "entra"
JOB = "uniflow-prod"


def _count(model) -> int:  # type: ignore[no-untyped-def]
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model))


def _record(number: int, *, at: datetime, cycle: str = "cycle-1", action: str = "create", status: str = "success",
            user: str | None = None, error: dict | None = None, modified: list | None = None) -> dict:
    name = user or f"user{number}@contoso.com"
    return {
        "id": f"event-{cycle}-{number}", "activityDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "cycleId": cycle,
        "changeId": f"change-{number}", "jobId": "scim.tenant.job", "provisioningAction": action,
        "provisioningStatusInfo": {"status": status, "errorInformation": error},
        "sourceIdentity": {"id": f"src-{number}", "displayName": name, "identityType": "User",
                           "details": {"UserPrincipalName": name}},
        "targetIdentity": {"id": f"tgt-{number}", "displayName": name, "identityType": "User", "details": {}},
        "modifiedProperties": modified or [{"displayName": "userName", "oldValue": None, "newValue": name}],
    }


def _page(path: Path, records: list[dict]) -> Path:
    path.write_bytes(orjson.dumps({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning",
                                   "value": records}))
    return path


def _import(settings, paths, fmt=None):  # type: ignore[no-untyped-def]
    options = options_from(settings.ingest, cycles=settings.cycles)
    items = ((str(where), item) for where, item in read_paths(paths, fmt, rules=options.rules))
    return import_events(db.engine, get_job(JOB), items, source="test", via="cli", options=options)


# -- the CLI: formats, detection, bad input, idempotence --------------------------------------------


def test_the_cli_detects_each_export_format_and_imports_it(runner):  # type: ignore[no-untyped-def]
    for name in ("graph-v1-example-success.json", "portal-download.json", "la-query-api.json", "la-export.csv"):
        result = runner.invoke(args=["ingest", str(DATA / name), "--job", JOB])
        assert result.exit_code == 0, result.output
        assert "Entra records" in result.output and " 0 rejected" in result.output
    assert _count(EntraEvent) > 4
    # la-rows.json has one record whose ProvisioningSteps column is broken JSON: that one is
    # rejected by number; the two others are the same events as the query API's export: duplicates
    result = runner.invoke(args=["ingest", str(DATA / "la-rows.json"), "--job", JOB])
    assert result.exit_code == 1
    assert f"rejected: {DATA / 'la-rows.json'}: record 3: field 'ProvisioningSteps' is not valid JSON" in result.output
    assert "0 accepted, 2 duplicates, 1 rejected" in result.output
    result = runner.invoke(args=["ingest", str(DATA / "diagnostic-events.jsonl"), "--job", JOB])
    assert f"rejected: {DATA / 'diagnostic-events.jsonl'}: line 3: malformed JSON" in result.output
    assert "4 accepted, 0 duplicates, 1 rejected" in result.output
    assert _count(Exchange) == 0  # nothing was read as a SCIM request log


def test_the_csv_download_s_three_files_join_on_change_id(runner):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["ingest", str(DATA / "csv"), "--job", JOB, "--format", "entra-csv"])

    # the fixture download has a steps row without a change id, a truncated logs row and a steps
    # row whose change id is in no logs row: each is one reject, the four good records are stored
    assert result.exit_code == 1
    assert "4 accepted, 0 duplicates, 3 rejected" in result.output
    assert "record 5 (line 8): has 7 fields, the header has 20" in result.output
    assert _count(EntraEvent) == 4
    events = db.session.scalars(select(EntraEvent)).all()
    assert events
    assert any(event.details()["steps"] for event in events)
    assert any(event.details()["modified_properties"] for event in events)


def test_bad_records_are_rejected_by_number_and_the_rest_is_kept(runner):  # type: ignore[no-untyped-def]
    bad = DATA / "graph-malformed-records.json"
    truncated = DATA / "graph-truncated.json"

    result = runner.invoke(args=["ingest", str(bad), str(truncated), "--job", JOB])

    assert result.exit_code == 1
    assert "record " in result.output and "rejected" in result.output
    rejects = db.session.scalars(select(Reject)).all()
    assert rejects and all(r.source.endswith(("graph-malformed-records.json", "graph-truncated.json")) for r in rejects)
    assert all(r.line_no >= 1 for r in rejects)
    assert _count(EntraEvent) >= 2  # the good records of both files
    run = db.session.scalars(select(IngestRun)).one()
    assert run.finished_at is not None and run.rejected == len(rejects)


def test_re_importing_is_a_no_op(runner, tmp_path):  # type: ignore[no-untyped-def]
    write_pages(tmp_path, 900, page_size=400)
    first = runner.invoke(args=["ingest", str(tmp_path), "--job", JOB])
    cycles = [(c.key, c.events, c.users, c.counts) for c in db.session.scalars(select(Cycle).order_by(Cycle.id))]

    again = runner.invoke(args=["ingest", str(tmp_path), "--job", JOB])

    assert "900 accepted, 0 duplicates, 0 rejected" in first.output
    assert "0 accepted, 900 duplicates, 0 rejected" in again.output
    db.session.expire_all()
    assert [(c.key, c.events, c.users, c.counts) for c in db.session.scalars(select(Cycle).order_by(Cycle.id))] == cycles
    assert _count(EntraEvent) == 900


def test_the_same_record_from_another_export_is_a_duplicate(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    records = [_record(n, at=at + timedelta(seconds=n)) for n in range(5)]
    _page(tmp_path / "graph.json", records)
    portal = [{**r, "action": r.pop("provisioningAction"), "statusInfo": r.pop("provisioningStatusInfo")} for r in records]
    (tmp_path / "portal.json").write_bytes(orjson.dumps(portal))

    first = _import(settings, [tmp_path / "graph.json"])
    second = _import(settings, [tmp_path / "portal.json"], "entra-portal-json")

    assert (first.accepted, second.accepted, second.duplicates) == (5, 0, 5)


def test_an_unknown_file_is_read_as_a_scim_log_and_its_lines_rejected_by_number(runner, tmp_path):  # type: ignore[no-untyped-def]
    odd = tmp_path / "odd.txt"
    odd.write_text("hello\nworld\n")

    result = runner.invoke(args=["ingest", str(odd), "--job", JOB])

    assert result.exit_code == 1
    assert f"{odd}:1: rejected" in result.output and f"{odd}:2: rejected" in result.output


def test_secrets_in_modified_properties_never_reach_the_database(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    secret = [
        {"displayName": "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin", "oldValue": "PIN-OLD-4711",
         "newValue": "PIN-NEW-4712"},
        {"displayName": "cardRegistrationCode", "oldValue": None, "newValue": "CRC-SECRET-99"},
    ]
    _page(tmp_path / "p.json", [_record(1, at=at, modified=secret)])
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'{"value": [{"id": "x", "activityDateTime": "nope", "modifiedProperties": '
                       b'[{"displayName": "pin", "newValue": "PIN-IN-A-REJECT"}]}]}')

    _import(settings, [tmp_path / "p.json", broken])

    seen = b""
    for event in db.session.scalars(select(EntraEvent)):
        seen += orjson.dumps(event.details()) + (event.reason or "").encode()
    for reject in db.session.scalars(select(Reject)):
        seen += reject.raw.encode()
    assert _count(EntraEvent) == 1 and _count(Reject) == 1
    for value in (b"PIN-OLD-4711", b"PIN-NEW-4712", b"CRC-SECRET-99", b"PIN-IN-A-REJECT"):
        assert value not in seen
    if settings.database.url.startswith("sqlite:///"):
        path = Path(settings.database.url[len("sqlite:///"):])
        for suffix in ("", "-wal"):
            if Path(str(path) + suffix).exists():
                assert b"PIN-NEW-4712" not in Path(str(path) + suffix).read_bytes()


def test_a_kill_9_mid_import_leaves_whole_batches_and_a_rerun_completes(app, tmp_path, subprocess_env):  # type: ignore[no-untyped-def]
    count = 30_000
    write_pages(tmp_path / "pages", count, page_size=5000)
    command = [sys.executable, "-m", "flask", "--app", "app", "ingest", str(tmp_path / "pages"), "--job", JOB]
    proc = subprocess.Popen(command, cwd=ROOT, env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _count(EntraEvent) < 2000:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    partial = _count(EntraEvent)
    assert 0 < partial < count, "the kill came too late to test anything"
    assert partial % 2000 == 0  # only whole batches (the default batch size) were committed

    rerun = subprocess.run(command, cwd=ROOT, env=subprocess_env, capture_output=True, timeout=600)

    assert rerun.returncode == 0, rerun.stderr.decode()
    assert f"{count - partial} accepted, {partial} duplicates, 0 rejected".encode() in rerun.stdout
    assert _count(EntraEvent) == count
    assert db.session.scalar(select(func.sum(Cycle.events))) == count


# -- job status -----------------------------------------------------------------------------------


def test_a_job_status_document_is_stored_once(runner):  # type: ignore[no-untyped-def]
    path = DATA / "job-quarantined.json"

    first = runner.invoke(args=["ingest", str(path), "--job", JOB])
    again = runner.invoke(args=["ingest", str(path), "--job", JOB, "--format", "entra-job-status"])

    assert first.exit_code == 0, first.output
    assert "Entra job status Quarantine" in first.output and "(stored)" in first.output
    assert "(already stored)" in again.output
    row = db.session.scalars(select(EntraJobStatus)).one()
    assert row.code == "Quarantine" and row.quarantine_reason
    assert orjson.loads(row.data)["status"]["code"] == "Quarantine"


def test_a_job_status_that_is_not_json_is_rejected_by_name(runner, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "job.json"
    path.write_text('{"templateId": "x", "status": {"code": "Active"')

    result = runner.invoke(args=["ingest", str(path), "--job", JOB, "--format", "entra-job-status"])

    assert result.exit_code == 1
    assert f"{path}: rejected: not JSON" in result.output
    assert f"{path}:0: not JSON" in runner.invoke(args=["rejects", "--job", JOB]).output  # listed, as any reject
    assert _count(EntraJobStatus) == 0


# -- analysis on events ---------------------------------------------------------------------------


def test_events_make_cycles_by_cycle_id_with_per_user_outcomes_and_signatures(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    conflict = {"errorCode": "SystemForCrossDomainIdentityManagementServiceIncompatibleFiltering",
                "reason": "StatusCode: Conflict\r\nMessage: user already exists. This operation was retried 2 times. "
                          "It will be retried again after this date: 2026-03-01T14:00:00Z UTC"}
    records = [_record(n, at=at + timedelta(seconds=n)) for n in range(6)]
    records += [_record(n, at=at + timedelta(seconds=10 + n), status="failure", error=conflict) for n in (6, 7)]
    records += [_record(n, at=at + timedelta(minutes=40, seconds=n), cycle="cycle-2", action="update") for n in range(3)]
    _page(tmp_path / "p.json", records)

    _import(settings, [tmp_path / "p.json"])

    cycles = db.session.scalars(select(Cycle).order_by(Cycle.started_us)).all()
    assert [(c.key, c.events, c.failed_events, c.users) for c in cycles] == [("cycle-1", 8, 2, 8), ("cycle-2", 3, 0, 3)]
    assert orjson.loads(cycles[0].counts)["create"] == {"success": 6, "failure": 2, "skipped": 0}
    failed = db.session.scalars(select(EntraEvent).where(EntraEvent.failed)).all()
    assert {(e.status, e.retry_count) for e in failed} == {(409, 2)}
    sig = db.session.scalars(select(Signature)).one()
    assert (sig.status, sig.exchanges, sig.users) == (409, 2, 2)
    assert sig.scim_type.startswith("SystemForCrossDomainIdentityManagement")
    assert evidence_ref(sig.sample_exchange_id)[0] == "event"
    user = db.session.scalars(select(ScimUser).where(ScimUser.user_name == "user6@contoso.com")).one()
    assert user.state == "failing" and evidence_ref(user.last_failure_exchange_id) == ("event", failed[0].id)


def test_held_deletes_count_toward_the_deletion_threshold(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    records = [_record(n, at=at + timedelta(seconds=n), action="stagedDelete", status="skipped") for n in range(5)]
    _page(tmp_path / "p.json", records)
    _import(settings, [tmp_path / "p.json"])
    strict = replace(settings, quarantine=replace(settings.quarantine, deletion_threshold=3))

    health = health_json(db.session, get_job(JOB), at + timedelta(hours=1), strict)

    assert db.session.scalars(select(Cycle)).one().staged_deletes == 5
    assert (health["state"], health["reason"]) == ("quarantined", "TooManyDeletes")
    users = db.session.scalars(select(ScimUser)).all()
    assert not any(u.state == "deleted" for u in users)  # held back: the users are still there


def test_rejected_credentials_in_events_quarantine_the_job(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    unauthorized = {"errorCode": "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable",
                    "reason": "StatusCode: Unauthorized\r\nMessage: the token is invalid"}
    _page(tmp_path / "p.json", [_record(n, at=at + timedelta(seconds=n), status="failure", error=unauthorized)
                                for n in range(4)])
    _import(settings, [tmp_path / "p.json"])

    health = health_json(db.session, get_job(JOB), at + timedelta(hours=1), settings)

    assert health["state"] == "quarantined"
    assert db.session.scalars(select(Cycle)).one().rejected_credentials == 4


def test_a_user_s_events_and_exchanges_meet_in_one_user(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    line = orjson.dumps({
        "ts": "2026-03-01T07:59:59Z", "method": "POST", "path": "/scim/v2/Users", "status": 409, "request_id": "r1",
        "request_body": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "alice@contoso.com",
                         "externalId": "alice"},
        "response_body": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409",
                          "scimType": "uniqueness", "detail": "exists"},
    })
    ingest_lines(db.engine, get_job(JOB), [(1, line)], source="scim.jsonl", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))
    _page(tmp_path / "p.json", [_record(1, at=at, user="Alice@contoso.com", status="failure",
                                        error={"errorCode": "EntryConflict", "reason": "StatusCode: Conflict"})])

    _import(settings, [tmp_path / "p.json"])

    exchange = db.session.scalars(select(Exchange)).one()
    event = db.session.scalars(select(EntraEvent)).one()
    assert exchange.user_id is not None and event.user_id == exchange.user_id
    assert _count(ScimUser) == 1
    # one cycle: the inferred one took Entra's cycleId, and the user's outcome folds both
    cycle = db.session.scalars(select(Cycle)).one()
    assert (cycle.key, cycle.requests, cycle.events, cycle.users) == ("cycle-1", 1, 1, 1)
    assert exchange.cycle_id == event.cycle_id == cycle.id


def _scim_line(number: int, at: datetime) -> bytes:
    return orjson.dumps({
        "ts": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "method": "POST", "path": "/scim/v2/Users", "status": 201,
        "request_id": f"r{number}",
        "request_body": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"user{number}@contoso.com"},
        "response_body": {"id": f"tgt-{number}", "userName": f"user{number}@contoso.com"},
    })


def test_entra_cycles_and_scim_traffic_join_whichever_arrives_first(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    options = options_from(settings.ingest, cycles=settings.cycles)
    # two Entra cycles 40 minutes apart; the SCIM log of the first arrives before its events, the
    # second's after them
    first = [_record(n, at=at + timedelta(seconds=n + 1), cycle="c1") for n in range(3)]
    second = [_record(n, at=at + timedelta(minutes=40, seconds=n + 1), cycle="c2", action="update") for n in range(3)]
    _page(tmp_path / "p1.json", first)
    _page(tmp_path / "p2.json", second)
    job = get_job(JOB)
    ingest_lines(db.engine, job, [(n + 1, _scim_line(n, at + timedelta(seconds=n))) for n in range(3)],
                 source="a.jsonl", via="cli", options=options)
    _import(settings, [tmp_path / "p1.json"])
    _import(settings, [tmp_path / "p2.json"])
    ingest_lines(db.engine, job, [(n + 1, _scim_line(n + 10, at + timedelta(minutes=40, seconds=n))) for n in range(3)],
                 source="b.jsonl", via="cli", options=options)

    cycles = db.session.scalars(select(Cycle).order_by(Cycle.started_us)).all()
    assert [(c.key, c.requests, c.events) for c in cycles] == [("c1", 3, 3), ("c2", 3, 3)]
    rows = [(c["cycle_id"], c["source"]) for c in list_cycles(db.session, job, at + timedelta(hours=2), settings)]
    assert rows == [("c2", "both"), ("c1", "both")]


def test_recompute_rebuilds_the_same_analysis_from_stored_events(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    write_pages(tmp_path, 1200, page_size=600)
    _import(settings, [tmp_path])
    job = get_job(JOB)

    def state():  # type: ignore[no-untyped-def]
        db.session.expire_all()
        return (
            sorted((c.key, c.events, c.failed_events, c.staged_deletes, c.users, orjson.loads(c.counts))
                   for c in db.session.scalars(select(Cycle))),
            sorted((s.key, s.exchanges, s.users) for s in db.session.scalars(select(Signature))),
            sorted((u.id, u.state, u.streak) for u in db.session.scalars(select(ScimUser))),
            _count(UserCycle),
        )

    before = state()
    replayed = rebuild(db.engine, job.id, gap_us=settings.cycles.gap_minutes * 60 * 1_000_000)

    assert replayed == 1200
    assert state() == before
    assert [c["entra_events"] for c in list_cycles(db.session, job, datetime.now(UTC), settings)]


def test_generated_records_cover_every_action(app):  # type: ignore[no-untyped-def]
    # the benchmark's and these tests' data: each action the analysis maps appears
    actions = {r["provisioningAction"] for r in generate_records(2000)}
    assert actions == {"create", "update", "disable", "other", "stagedDelete"}


def test_out_of_range_numbers_do_not_fail_the_batch(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    odd = {**_record(1, at=at), "durationInMilliseconds": 10**15}
    _page(tmp_path / "p.json", [odd, {**_record(2, at=at), "durationInMilliseconds": 5}])

    result = _import(settings, [tmp_path / "p.json"])

    assert (result.accepted, result.rejected) == (2, 0)
    assert {e.entra_id: e.duration_ms for e in db.session.scalars(select(EntraEvent))} == {
        "event-cycle-1-1": None, "event-cycle-1-2": 5}


def test_an_event_dated_beyond_the_tolerance_is_a_reject_and_opens_no_cycle(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    page = _page(tmp_path / "p.json", [
        _record(1, at=now - timedelta(minutes=5), cycle="c-now"),
        _record(2, at=datetime(2031, 1, 1, tzinfo=UTC), cycle="c-2031"),  # a clock gone wrong
    ])

    result = _import(settings, [page])

    assert (result.accepted, result.rejected) == (1, 1)
    (problem,) = result.problems
    assert "record 2" in problem.reason and "field 'ts' is 2031-01-01" in problem.reason
    assert db.session.scalars(select(Cycle.key)).all() == ["c-now"]
