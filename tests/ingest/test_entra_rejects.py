"""Issue 10 items 3 and 7: a rejected document of any Entra format is listed by `flask rejects`;
`--format entra-job-status` on what is not a synchronizationJob is a reject naming the file and
never touches the stored job status."""
from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.models import EntraJobStatus, Reject
from dashboard.queries.entra import latest_status

DATA = Path(__file__).resolve().parents[1] / "data" / "entra"
JOB = "uniflow-prod"
PAGE = DATA / "graph-v1-example-success.json"  # Microsoft's v1.0 provisioningObjectSummary list example


def _ingest(runner, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(args=["ingest", *args, "--job", JOB])


def _rejects(runner) -> str:  # type: ignore[no-untyped-def]
    listed = runner.invoke(args=["rejects", "--job", JOB])
    assert listed.exit_code == 0, listed.output
    return listed.output


def _statuses() -> list[tuple[str | None, str | None]]:
    db.session.rollback()
    return [(r.code, r.quarantine_reason) for r in db.session.scalars(select(EntraJobStatus).order_by(EntraJobStatus.id))]


# -- job status: what is not a synchronizationJob ----------------------------------------------------


def test_a_provisioning_log_page_forced_in_as_a_job_status_is_a_reject_and_keeps_the_quarantine(runner):  # type: ignore[no-untyped-def]
    assert _ingest(runner, str(DATA / "job-quarantined.json")).exit_code == 0

    result = _ingest(runner, str(PAGE), "--format", "entra-job-status")

    assert result.exit_code == 1
    assert f"{PAGE}: rejected: a page of Entra provisioning events (1), not a synchronizationJob" in result.output
    assert "--format entra-graph" in result.output  # what to do instead
    assert "Entra job status" not in result.output
    assert _statuses() == [("Quarantine", "EncounteredEscrowProportionThreshold")]
    assert latest_status(db.session, get_job(JOB)).code == "Quarantine"
    assert f"{PAGE}:0: a page of Entra provisioning events" in _rejects(runner)


@pytest.mark.parametrize(("content", "reason"), [
    (orjson.dumps(orjson.loads(PAGE.read_bytes())["value"][0]),
     "not a synchronizationJob or its status: a provisioning event (it has activityDateTime"),
    (b"{}", "not a synchronizationJob or its status: none of a job's fields (status, templateId, schedule)"),
    (b'{"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}}',
     "a Graph error answer (Authorization_RequestDenied: Insufficient privileges)"),
    (b'{"value": []}', "no synchronizationJob in the file (an empty list)"),
    (b'"Quarantine"', "a JSON string, not an object"),
    (b'{"templateId": "scim", "status": {"code": "Active"', "not JSON ("),
    (gzip.compress(b'{"status": {"code": "Active"}}')[:-9], "not JSON ("),
], ids=["one event", "empty object", "Graph error", "empty list", "string", "truncated", "broken gzip"])
def test_what_is_not_a_job_status_is_a_reject_named_by_file_and_listed(runner, tmp_path, content, reason):  # type: ignore[no-untyped-def]
    assert _ingest(runner, str(DATA / "job-quarantined.json")).exit_code == 0
    path = tmp_path / "status.json"
    path.write_bytes(content)

    result = _ingest(runner, str(path), "--format", "entra-job-status")

    assert result.exit_code == 1
    assert f"{path}: rejected: " in result.output and reason in result.output
    assert _statuses() == [("Quarantine", "EncounteredEscrowProportionThreshold")]
    listed = _rejects(runner)
    assert f"{path}:0: " in listed and reason in listed
    assert "1 rejected lines in all" in listed


def test_in_graph_s_list_of_jobs_only_what_is_not_a_job_is_rejected(runner, tmp_path):  # type: ignore[no-untyped-def]
    job = orjson.loads((DATA / "job-quarantined.json").read_bytes())
    path = tmp_path / "jobs.json"
    path.write_bytes(orjson.dumps({"value": [{"name": "not a job"}, job]}))

    result = _ingest(runner, str(path), "--format", "entra-job-status")

    assert result.exit_code == 1
    assert f"{path}: rejected: job 1: not a synchronizationJob or its status" in result.output
    assert "Entra job status Quarantine" in result.output
    assert _statuses() == [("Quarantine", "EncounteredEscrowProportionThreshold")]
    assert f"{path}:1: job 1: not a synchronizationJob" in _rejects(runner)


def test_a_rejected_job_status_re_ingested_is_listed_once(runner, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "status.json"
    path.write_text('{"templateId": "x", "status": {"code": "Active"')

    _ingest(runner, str(path), "--format", "entra-job-status")
    _ingest(runner, str(path), "--format", "entra-job-status")

    assert db.session.scalar(select(func.count()).select_from(Reject)) == 1


def test_the_job_status_s_secrets_never_reach_the_rejects(runner, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "status.json"
    path.write_bytes(b'{"value": [{"password": "Hunter2-Secret", "pin": "77665544"}]}')

    _ingest(runner, str(path), "--format", "entra-job-status")

    listed = _rejects(runner)
    assert f"{path}:1: job 1: not a synchronizationJob" in listed
    assert "Hunter2-Secret" not in listed and "77665544" not in listed


# -- every Entra format: a rejected document is listed ------------------------------------------------


@pytest.mark.parametrize(("fmt", "name", "content", "reason"), [
    ("entra-graph", "page.json", b'{"@odata.context": "x", "value": [{"id": "a",, }', "record 1: "),
    ("entra-graph", "page.json", b"<html>Bad gateway</html>", "a entra-graph file must be JSON"),
    ("entra-graph", "page.json.gz", gzip.compress(b'{"value": []}')[:-9], "unreadable file"),
    ("entra-portal-json", "download.json", b"[{\"id\": \"a\"", "record 1: "),
    ("entra-csv", "logs.csv", b"\x00\x01\x02garbage\n1,2,3\n", "record 1 (line 2): has 3 fields, the header has 1"),
    ("entra-csv", "ProvisioningLogs_ProvisioningSteps_2026-03-28.csv",
     (DATA / "csv" / "ProvisioningLogs_ProvisioningSteps_2026-03-28.csv").read_bytes(),
     "steps file without a logs file to join it to"),
    ("log-analytics", "rows.json", b'{"tables": 5}', "record 1: "),
    (None, "mystery.json", b'{"hello": "world"}', "cannot tell the format"),
], ids=["graph garbage", "graph html", "graph gzip", "portal", "csv", "csv steps alone", "log analytics",
        "unknown in a directory"])
def test_a_rejected_document_of_each_format_is_listed_by_rejects(runner, tmp_path, fmt, name, content, reason):  # type: ignore[no-untyped-def]
    folder = tmp_path / "export"
    folder.mkdir()
    path = folder / name
    path.write_bytes(content)
    args = [str(folder)] if fmt is None else [str(path), "--format", fmt]

    result = _ingest(runner, *args)

    assert result.exit_code == 1, result.output
    listed = _rejects(runner)
    assert f"{path}:" in listed, listed
    assert reason in listed, listed


@pytest.mark.parametrize(("fmt", "content"), [
    ("entra-job-status", b"\x00\x00{not json"),
    ("entra-graph", b"\x00\x00{not json"),
    (None, b"\x00\x00\x00"),
], ids=["job status", "graph", "unknown in a directory"])
def test_a_rejected_document_holding_nul_bytes_is_listed_too(runner, tmp_path, fmt, content):  # type: ignore[no-untyped-def]
    # PostgreSQL takes no NUL in text: the reject's text keeps it written as an escape
    folder = tmp_path / "export"
    folder.mkdir()
    path = folder / "odd.json"
    path.write_bytes(content)

    result = _ingest(runner, *([str(folder)] if fmt is None else [str(path), "--format", fmt]))

    assert result.exit_code == 1, result.output
    assert f"{path}:" in _rejects(runner)


def test_a_directory_given_as_job_status_reads_each_of_its_files(runner, tmp_path):  # type: ignore[no-untyped-def]
    folder = tmp_path / "statuses"
    folder.mkdir()
    (folder / "a.json").write_bytes((DATA / "job-quarantined.json").read_bytes())
    (folder / "b.json").write_bytes(PAGE.read_bytes())

    result = _ingest(runner, str(folder), "--format", "entra-job-status")

    assert result.exit_code == 1
    assert f"{folder / 'a.json'}: Entra job status Quarantine" in result.output
    assert f"{folder / 'b.json'}: rejected: a page of Entra provisioning events" in result.output
    assert _statuses() == [("Quarantine", "EncounteredEscrowProportionThreshold")]
    assert f"{folder / 'b.json'}:0: " in _rejects(runner)
