"""The CLI commands, through Flask's runner and as real processes."""
from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.db import db
from dashboard.models import Exchange, IngestToken, Reject

ROOT = Path(__file__).resolve().parents[2]
URN = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"


def write_log(path: Path, count: int, *, garbage_every: int = 0, start: int = 0) -> Path:
    with open(path, "wb") as out:
        for n in range(start, start + count):
            if garbage_every and n % garbage_every == garbage_every - 1:
                out.write(b'{"ts": "2026-11-28T09:00:00Z", "broken\n')
                continue
            out.write(orjson.dumps({
                "ts": f"2026-11-28T09:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z",
                "method": "POST", "path": "/scim/v2/Users", "status": 201, "request_id": f"req-{n}",
                "request_headers": {"authorization": f"Bearer tok-{n}-SECRET"},
                "request_body": {"userName": f"user{n}@contoso.com", URN: {"pin": f"PIN{n:06d}X", "cardRegistrationCode": f"CRC{n}Z"}},
                "response_body": {"id": f"id-{n}", "userName": f"user{n}@contoso.com"},
            }) + b"\n")
    return path


def test_it_ingests_a_file_and_prints_a_summary(runner, tmp_path):  # type: ignore[no-untyped-def]
    log = write_log(tmp_path / "a.jsonl", 20)

    result = runner.invoke(args=["ingest", str(log), "--job", "uniflow-prod"])

    assert result.exit_code == 0, result.output
    assert "20 lines: 20 accepted, 0 duplicates, 0 rejected" in result.output


def test_it_exits_1_and_names_each_rejected_line(runner, tmp_path):  # type: ignore[no-untyped-def]
    log = write_log(tmp_path / "a.jsonl", 40, garbage_every=20)  # lines 20 and 40 are broken

    result = runner.invoke(args=["ingest", str(log), "--job", "uniflow-prod"])

    assert result.exit_code == 1
    assert "38 accepted, 0 duplicates, 2 rejected" in result.output
    assert f"{log}:20: rejected: malformed JSON" in result.output
    assert f"{log}:40: rejected" in result.output


def test_it_exits_2_on_usage_errors(runner, tmp_path):  # type: ignore[no-untyped-def]
    assert runner.invoke(args=["ingest", str(tmp_path / "missing.jsonl"), "--job", "uniflow-prod"]).exit_code == 2
    log = write_log(tmp_path / "a.jsonl", 1)
    unknown = runner.invoke(args=["ingest", str(log), "--job", "nope"])
    assert unknown.exit_code == 2
    assert "no job named 'nope'" in unknown.output


def test_it_reads_gzip_and_stdin(runner, tmp_path):  # type: ignore[no-untyped-def]
    plain = write_log(tmp_path / "a.jsonl", 10).read_bytes()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(plain))
    plain2 = write_log(tmp_path / "b.jsonl", 10, start=100).read_bytes()

    gz = runner.invoke(args=["ingest", str(tmp_path / "a.jsonl.gz"), "--job", "uniflow-prod"])
    stdin = runner.invoke(args=["ingest", "-", "--job", "uniflow-prod"], input=plain2)

    assert "10 accepted" in gz.output and "10 accepted" in stdin.output
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 20


def _damaged_gzip(kind: str, plain: bytes) -> tuple[bytes, bytes]:
    """Gzip data of `plain` damaged as `kind` says, and what of it can be decompressed."""
    zipped = gzip.compress(plain)
    if kind == "junk":
        return zipped + b"garbage", plain
    if kind == "crc":
        damaged = bytearray(zipped)
        damaged[-8] ^= 0xFF
        return bytes(damaged), plain
    cut = zipped[: len(zipped) * 9 // 10]
    return cut, zlib.decompressobj(31).decompress(cut)  # (zlib does not mind a cut-off input)


@pytest.mark.parametrize(("kind", "count", "reason"), [
    ("junk", 4500, "the gzip stream is followed by data that is not gzip (after line 4500); that data is ignored"),
    ("crc", 4500, "the gzip stream is damaged after line 4500: CRC check failed; nothing after that point can be read"),
    ("crc", 3, "the gzip stream is damaged after line 3: CRC check failed; nothing after that point can be read"),
    ("cut", 4500, "the gzip stream ends early after line {last}: the file is cut off"),
])
def test_it_stores_every_line_of_a_damaged_gzip_file_and_rejects_the_damage(runner, tmp_path, kind, count, reason):  # type: ignore[no-untyped-def]
    # 4,500 lines: past PARALLEL_AFTER_LINES, the last batches go through the worker processes.
    data, readable = _damaged_gzip(kind, write_log(tmp_path / "a.jsonl", count).read_bytes())
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(data)
    complete = readable.count(b"\n")
    cut_line = 1 if readable and not readable.endswith(b"\n") else 0
    reason = reason.format(last=complete + cut_line)

    first = runner.invoke(args=["ingest", str(path), "--job", "uniflow-prod"])
    again = runner.invoke(args=["ingest", str(path), "--job", "uniflow-prod"])

    assert first.exception is None or isinstance(first.exception, SystemExit), first.output
    assert first.exit_code == 1, first.output
    lines = complete + cut_line + 1
    assert (f"{path}: {lines} lines: {complete} accepted, 0 duplicates, {cut_line + 1} rejected"
            in first.output), first.output
    assert f"{path}:0: rejected: {reason}" in first.output
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == complete
    rejects = db.session.execute(select(Reject.line_no, Reject.reason).order_by(Reject.line_no)).all()
    assert rejects[0] == (0, reason)
    if cut_line:
        assert rejects[1][0] == complete + 1 and rejects[1][1].startswith("malformed JSON")
    assert len(rejects) == 1 + cut_line
    assert again.exit_code == 1
    assert f"{lines} lines: 0 accepted, {complete} duplicates, {cut_line + 1} rejected" in again.output
    assert db.session.scalar(select(func.count()).select_from(Reject)) == 1 + cut_line  # not stored twice


def test_it_reads_a_file_whose_lines_end_in_a_bare_cr(runner, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "mac.jsonl"
    path.write_bytes(write_log(tmp_path / "a.jsonl", 3).read_bytes().replace(b"\n", b"\r"))

    result = runner.invoke(args=["ingest", str(path), "--job", "uniflow-prod"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{path}: 3 lines: 3 accepted, 0 duplicates, 0 rejected"]


def test_it_lists_rejects_redacted(runner, tmp_path):  # type: ignore[no-untyped-def]
    log = tmp_path / "bad.jsonl"
    log.write_bytes(b'{"ts": "x", "request_body": {"pin": "77665544"}\n')

    runner.invoke(args=["ingest", str(log), "--job", "uniflow-prod"])
    listed = runner.invoke(args=["rejects", "--job", "uniflow-prod"])

    assert f"{log}:1: malformed JSON" in listed.output
    assert "77665544" not in listed.output
    assert "1 rejected lines in all" in listed.output


def test_it_creates_lists_and_revokes_tokens_stored_hashed(runner):  # type: ignore[no-untyped-def]
    created = runner.invoke(args=["token", "create", "--job", "uniflow-prod"])
    token = created.output.strip().splitlines()[-1]

    row = db.session.scalars(select(IngestToken)).one()
    assert token.startswith("pmd_") and row.token_hash == IngestToken.hash_token(token)
    assert token not in row.token_hash
    assert "active" in runner.invoke(args=["token", "list", "--job", "uniflow-prod"]).output
    runner.invoke(args=["token", "revoke", str(row.id)])
    assert "revoked" in runner.invoke(args=["token", "list", "--job", "uniflow-prod"]).output


def test_it_adds_jobs(runner):  # type: ignore[no-untyped-def]
    added = runner.invoke(args=["job", "add", "uniflow-emea", "--display-name", "EMEA", "--scope-size", "5000"])
    again = runner.invoke(args=["job", "add", "uniflow-emea"])

    assert added.exit_code == 0
    assert again.exit_code == 2 and "already exists" in again.output
    assert "uniflow-emea\tEMEA" in runner.invoke(args=["job", "list"]).output


def test_it_exports_to_a_file_that_reingests_identically(runner, tmp_path):  # type: ignore[no-untyped-def]
    runner.invoke(args=["ingest", str(write_log(tmp_path / "a.jsonl", 30)), "--job", "uniflow-prod"])
    out = tmp_path / "bundle.jsonl"

    exported = runner.invoke(args=["export", "--job", "uniflow-prod", "--out", str(out), "--since", "2026-11-28T09:00:00.010Z"])

    assert exported.exit_code == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == 20
    assert b"SECRET" not in out.read_bytes() and b"PIN0000" not in out.read_bytes()
    again = runner.invoke(args=["ingest", str(out), "--job", "uniflow-prod"])
    assert "0 accepted, 20 duplicates" in again.output


def _flask(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_it_survives_kill_9_mid_file_and_a_rerun_completes_it(app, tmp_path, subprocess_env):  # type: ignore[no-untyped-def]
    # A real ingest process killed with SIGKILL part-way leaves whole batches only; the same
    # command again completes the file with no duplicates.
    count = 30_000
    log = write_log(tmp_path / "big.jsonl", count)
    proc = _flask(["ingest", str(log), "--job", "uniflow-prod"], subprocess_env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if db.session.scalar(select(func.count()).select_from(Exchange)) >= 2000:
            break
        db.session.rollback()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    db.session.rollback()
    partial = db.session.scalar(select(func.count()).select_from(Exchange))
    assert 0 < partial < count, "the kill came too late to test anything"
    assert partial % 2000 == 0  # default batch size: only whole batches were committed

    rerun = _flask(["ingest", str(log), "--job", "uniflow-prod"], subprocess_env)
    out, err = rerun.communicate(timeout=300)

    assert rerun.returncode == 0, err.decode()
    assert f"{count - partial} accepted, {partial} duplicates, 0 rejected".encode() in out
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == count
    assert db.session.scalar(select(func.count(func.distinct(Exchange.request_id)))) == count


def test_it_leaves_no_secret_in_the_database_file_or_the_log(app, tmp_path, subprocess_env, settings):  # type: ignore[no-untyped-def]
    log = write_log(tmp_path / "pins.jsonl", 500)
    with open(log, "ab") as out:
        out.write(b'{"ts": "2026-11-28T10:00:00Z", "method": "PATCH", "request_body": {"pin": "PIN777777X"\n')
    env = dict(subprocess_env, DASHBOARD_LOG_LEVEL="DEBUG")
    proc = _flask(["ingest", str(log), "--job", "uniflow-prod"], env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1  # the broken last line

    seen = out + err
    for row in db.session.scalars(select(Exchange)):
        seen += orjson.dumps(row.details())
    for row in db.session.scalars(select(Reject)):
        seen += row.raw.encode()
    if settings.database.url.startswith("sqlite:///"):
        path = Path(settings.database.url[len("sqlite:///"):])
        for suffix in ("", "-wal"):
            if Path(str(path) + suffix).exists():
                seen += Path(str(path) + suffix).read_bytes()
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 500
    for secret in (b"PIN000123X", b"PIN777777X", b"CRC42Z", b"tok-42-SECRET", b"SECRET"):
        assert secret not in seen


def test_simulate_writes_the_realities_and_entras_logs_of_the_same_run(runner, tmp_path):  # type: ignore[no-untyped-def]
    log, truth, pages = tmp_path / "log.jsonl", tmp_path / "truth.json", tmp_path / "entra"

    made = runner.invoke(args=["simulate", "--users", "30", "--cycles", "4", "--seed", "3", "--job", "uniflow-prod",
                               "--reality", "all", "--out", str(log), "--truth", str(truth), "--entra-pages", str(pages)])

    assert made.exit_code == 0, made.output
    people = orjson.loads(truth.read_bytes())["people"]
    assert len(people) >= 30 and any(len(p["names"]) > 1 for p in people.values())  # somebody was renamed
    scim = runner.invoke(args=["ingest", str(log), "--job", "uniflow-prod"])
    entra = runner.invoke(args=["ingest", str(pages), "--job", "uniflow-prod"])
    assert scim.exit_code == 0 and "0 rejected" in scim.output, scim.output
    assert entra.exit_code == 0 and "0 rejected" in entra.output and "Entra records" in entra.output, entra.output
    from dashboard.models import ScimUser

    stored = set(db.session.scalars(select(ScimUser.external_id)))
    assert set(people) <= stored  # each person of the run, by externalId
