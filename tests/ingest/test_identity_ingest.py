"""Issue 10, who is who at ingest: a corrected or renamed userName, two people on one userName, an
empty lookup, a re-created account, a PATCH before its create; a line the database refuses, and
lines dated years ahead. Real SCIM v1 lines, a real database (SQLite, or PostgreSQL with
--database-url), the real CLI; the only failure provoked is one the database itself raises (a
trigger refusing one exchange row).
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from dashboard.admin.jobs import create_token, get_job
from dashboard.db import db
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.models import Cycle, Exchange, Reject, ScimUser, ScimUserAlias, UserCycle
from dashboard.queries.health import health_status
from dashboard.queries.users import find_user
from dashboard.times import to_us
from tests.db_faults import refusing_inserts

ROOT = Path(__file__).resolve().parents[2]
JOB = "uniflow-prod"
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
NBSP_NAME = "ryan\u00a0smith@contoso.com"  # the UPN as first provisioned, with a no-break space
FIXED_NAME = "ryan.smith@contoso.com"  # as the admin corrected it
E = "0f1e2d3c-aaaa-4bbb-8ccc-000000000001"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
_seq = iter(range(1, 10**6))


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _line(at: datetime, method: str, path: str, status: int, **fields) -> bytes:  # type: ignore[no-untyped-def]
    record = {"ts": _ts(at), "method": method, "path": path, "status": status,
              "request_id": fields.pop("request_id", f"r-{next(_seq):06d}"), "job": JOB, **fields}
    return orjson.dumps(record) + b"\n"


def lookup(at: datetime, name: str, *, found: dict | None = None) -> bytes:
    """GET /Users?filter=userName eq "name": an empty ListResponse, or one that found `found`."""
    resources = [found] if found else []
    return _line(at, "GET", "/scim/v2/Users", 200, query=f'filter=userName eq "{name}"',
                 response_body={"schemas": [LIST], "totalResults": len(resources), "Resources": resources,
                                "startIndex": 1, "itemsPerPage": len(resources)})


def create(at: datetime, name: str, external_id: str, scim_id: str) -> bytes:
    return _line(at, "POST", "/scim/v2/Users", 201,
                 request_body={"schemas": [USER], "userName": name, "externalId": external_id, "active": True},
                 response_body={"schemas": [USER], "id": scim_id, "userName": name, "externalId": external_id,
                                "active": True})


def conflict(at: datetime, name: str, external_id: str) -> bytes:
    """POST /Users answered 409 uniqueness."""
    return _line(at, "POST", "/scim/v2/Users", 409,
                 request_body={"schemas": [USER], "userName": name, "externalId": external_id, "active": True},
                 response_body={"schemas": [ERROR], "status": "409", "scimType": "uniqueness",
                                "detail": "One or more of the attribute values are already in use or are reserved."})


def patch(at: datetime, scim_id: str, *, user_name: str | None = None, status: int = 204,
          answer: dict | None = None) -> bytes:
    """PATCH /Users/{id}: Replace userName (or displayName), answered 204 or 200 with `answer`."""
    op = {"op": "Replace", "path": "userName", "value": user_name} if user_name else \
        {"op": "Replace", "path": "displayName", "value": "Ryan Smith"}
    extra = {"response_body": answer} if answer is not None else {}
    return _line(at, "PATCH", f"/scim/v2/Users/{scim_id}", status,
                 request_body={"schemas": [PATCH], "Operations": [op]}, **extra)


def options(settings, **overrides):  # type: ignore[no-untyped-def]
    return replace(options_from(settings.ingest, cycles=settings.cycles), **overrides)


def ingest(settings, lines: list[bytes], **overrides):  # type: ignore[no-untyped-def]
    result = ingest_lines(db.engine, get_job(JOB), list(enumerate(lines, start=1)), source="test.jsonl", via="cli",
                          options=options(settings, **overrides))
    db.session.expire_all()
    return result


def users() -> list[ScimUser]:
    db.session.rollback()
    return db.session.scalars(select(ScimUser).where(ScimUser.job_id == get_job(JOB).id).order_by(ScimUser.id)).all()


def aliases(user: ScimUser, kind: str) -> set[str]:
    return set(db.session.scalars(select(ScimUserAlias.value).where(ScimUserAlias.user_id == user.id,
                                                                    ScimUserAlias.kind == kind)))


def found(key: str) -> ScimUser | None:
    return find_user(db.session, get_job(JOB), key)


def cycles() -> list[tuple]:
    db.session.rollback()
    rows = db.session.scalars(select(Cycle).where(Cycle.job_id == get_job(JOB).id).order_by(Cycle.started_us)).all()
    return [(c.started_us, c.ended_us, c.requests, c.users, c.looked_up_users, orjson.loads(c.counts)) for c in rows]


def no_dangling_rows() -> None:
    """No merge leaves a row pointing at a user that is gone."""
    ids = set(db.session.scalars(select(ScimUser.id)))
    assert set(db.session.scalars(select(Exchange.user_id).where(Exchange.user_id.is_not(None)))) <= ids
    assert set(db.session.scalars(select(UserCycle.user_id))) <= ids
    assert set(db.session.scalars(select(ScimUserAlias.user_id))) <= ids


# -- 1. a corrected userName (the item 1), a rename --------------------------------------


def corrected_name_lines() -> list[bytes]:
    """The four lines of the issue: created earlier with a no-break space in the userName; in the
    next cycle the corrected name is looked up (nothing), created, and the target answers 409."""
    later = T0 + timedelta(hours=1)
    return [
        lookup(T0, NBSP_NAME),
        create(T0 + timedelta(seconds=1), NBSP_NAME, E, "scim-ryan-1"),
        lookup(later, FIXED_NAME),
        conflict(later + timedelta(seconds=1), FIXED_NAME, E),
    ]


def assert_one_person_with_both_names() -> None:
    (user,) = users()
    assert user.external_id == E
    assert user.scim_id == "scim-ryan-1"
    assert aliases(user, "n") == {NBSP_NAME, FIXED_NAME}
    for key in (NBSP_NAME, FIXED_NAME, "ryan smith@contoso.com", "RYAN.SMITH@contoso.com", E, "scim-ryan-1"):
        assert found(key) is not None and found(key).id == user.id, key
    no_dangling_rows()


def test_a_corrected_user_name_in_one_batch_is_stored_by_the_real_cli_and_a_rerun_is_a_no_op(app, tmp_path,
                                                                                              subprocess_env):  # type: ignore[no-untyped-def]
    log = tmp_path / "corrected.jsonl"
    log.write_bytes(b"".join(corrected_name_lines()))

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flask", "--app", "app", "ingest", str(log), "--job", JOB],
                              cwd=ROOT, env=subprocess_env, capture_output=True, text=True, timeout=120)

    first = run()
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr and "Error" not in first.stderr, first.stderr
    assert "4 lines: 4 accepted, 0 duplicates, 0 rejected" in first.stdout
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 4
    assert db.session.scalar(select(func.count()).select_from(Reject)) == 0
    assert_one_person_with_both_names()
    before = cycles()
    assert [c[3] for c in before] == [1, 1]  # one person in each cycle

    again = run()
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert "4 lines: 0 accepted, 4 duplicates, 0 rejected" in again.stdout
    assert db.session.scalar(select(func.count()).select_from(Exchange)) == 4
    assert_one_person_with_both_names()
    assert cycles() == before


def test_the_same_four_lines_pushed_answer_200_with_their_counts(client):  # type: ignore[no-untyped-def]
    token = create_token(get_job(JOB))[1]
    url = f"/api/v1/jobs/{JOB}/exchanges"
    body = b"".join(corrected_name_lines()).rstrip(b"\n")

    first = client.post(url, data=body, headers={"Authorization": f"Bearer {token}"})
    again = client.post(url, data=body, headers={"Authorization": f"Bearer {token}"})

    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.json == {"lines": 4, "accepted": 4, "duplicates": 0, "rejected": 0, "rejects": []}
    assert again.status_code == 200
    assert again.json == {"lines": 4, "accepted": 0, "duplicates": 4, "rejected": 0, "rejects": []}
    assert_one_person_with_both_names()


@pytest.mark.parametrize("answered", [200, 204])
@pytest.mark.parametrize("batch_size", [1, 50])
def test_a_rename_by_patch_keeps_one_person_with_both_names(app, settings, batch_size, answered):  # type: ignore[no-untyped-def]
    later = T0 + timedelta(hours=1)
    renamed = {"schemas": [USER], "id": "scim-alice", "userName": "alice.smith@contoso.com", "externalId": "ext-alice"}
    lines = [
        lookup(T0, "alice@contoso.com"),
        create(T0 + timedelta(seconds=1), "alice@contoso.com", "ext-alice", "scim-alice"),
        lookup(later, "alice.smith@contoso.com"),  # the new name, not there yet
        # answered 200 with the user, or 204 No Content (RFC 7644 §3.5.2): the applied PatchOp
        # is then the only record of the new name
        patch(later + timedelta(seconds=1), "scim-alice", user_name="alice.smith@contoso.com", status=answered,
              answer=renamed if answered == 200 else None),
    ]

    result = ingest(settings, lines, batch_size=batch_size)

    assert (result.accepted, result.rejected) == (4, 0)
    (user,) = users()
    assert (user.external_id, user.scim_id, user.user_name) == ("ext-alice", "scim-alice", "alice.smith@contoso.com")
    assert aliases(user, "n") == {"alice@contoso.com", "alice.smith@contoso.com"}
    assert found("alice@contoso.com").id == found("alice.smith@contoso.com").id == user.id
    assert [c[3] for c in cycles()] == [1, 1]
    no_dangling_rows()


@pytest.mark.parametrize("runs", [1, 2])
def test_a_case_correction_keeps_its_spelling_when_older_lines_arrive_after_it(app, settings, runs):  # type: ignore[no-untyped-def]
    """sam@contoso.com, corrected to Sam@Contoso.com in the next cycle; the correction arrives
    first, then two lines of the earlier cycle (a shipper's disorder), one per batch, in one
    ingest run or two. The latest line's spelling is the name: the first late line must not make
    its spelling look current since its own time, so that the second one takes the name back."""
    later = T0 + timedelta(minutes=40)
    corrected = {"schemas": [USER], "id": "scim-sam", "userName": "Sam@Contoso.com", "externalId": "ext-sam"}
    lines = [
        patch(later, "scim-sam", user_name="Sam@Contoso.com", status=200, answer=corrected),
        create(T0, "sam@contoso.com", "ext-sam", "scim-sam"),
        _line(T0 + timedelta(seconds=1), "GET", "/scim/v2/Users/scim-sam", 200,
              response_body={"schemas": [USER], "id": "scim-sam", "userName": "sam@contoso.com", "externalId": "ext-sam"}),
    ]

    if runs == 1:
        result = ingest(settings, lines, batch_size=1)
        assert (result.accepted, result.rejected) == (3, 0)
    else:
        ingest(settings, lines[:2], batch_size=1)
        assert ingest(settings, lines, batch_size=1).accepted == 1

    (user,) = users()
    assert (user.external_id, user.scim_id, user.user_name) == ("ext-sam", "scim-sam", "Sam@Contoso.com")


def test_a_rename_answered_409_keeps_one_person_with_both_names(app, settings):  # type: ignore[no-untyped-def]
    later = T0 + timedelta(hours=1)
    lines = [
        create(T0, "bob@contoso.com", "ext-bob", "scim-bob"),
        lookup(later, "robert@contoso.com"),
        conflict(later + timedelta(seconds=1), "robert@contoso.com", "ext-bob"),
    ]

    ingest(settings, lines)

    (user,) = users()
    assert user.external_id == "ext-bob"
    assert aliases(user, "n") == {"bob@contoso.com", "robert@contoso.com"}
    assert found("bob@contoso.com").id == found("robert@contoso.com").id == user.id
    no_dangling_rows()


# -- 2. two people, one userName ------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_two_people_colliding_on_one_user_name_stay_two(app, settings, reverse):  # type: ignore[no-untyped-def]
    name = "kim@contoso.com"
    lines = [
        lookup(T0, name),
        lookup(T0 + timedelta(seconds=1), name),
        create(T0 + timedelta(seconds=2), name, "ext-kim-1", "scim-kim-1"),
        conflict(T0 + timedelta(seconds=3), name, "ext-kim-2"),
    ]

    result = ingest(settings, lines[::-1] if reverse else lines)

    assert (result.accepted, result.rejected) == (4, 0)
    by_external = {u.external_id: u for u in users()}
    assert set(by_external) == {"ext-kim-1", "ext-kim-2"}
    assert len(users()) == 2
    assert by_external["ext-kim-1"].state == "in_sync" and by_external["ext-kim-1"].provisioned
    assert by_external["ext-kim-2"].state == "failing" and not by_external["ext-kim-2"].provisioned
    ((_s, _e, requests, user_count, _looked, counts),) = cycles()
    assert (requests, user_count) == (4, 2)
    assert found("ext-kim-1").id == by_external["ext-kim-1"].id
    assert found("ext-kim-2").id == by_external["ext-kim-2"].id
    assert found("scim-kim-1").id == by_external["ext-kim-1"].id
    assert {u.id for u in [found(name)]} <= set(u.id for u in users())
    # each one's link (pages, emails) opens their own page, not the other holder's of the name
    assert {found(u.key).id for u in users()} == {u.id for u in users()}
    no_dangling_rows()


# -- 3. an empty lookup is not "provisioned" ------------------------------------------------------


def test_a_lookup_that_found_nothing_does_not_mark_the_user_provisioned(app, settings):  # type: ignore[no-untyped-def]
    ingest(settings, [lookup(T0, "nobody@contoso.com")])

    (user,) = users()
    assert user.provisioned is False
    assert user.state == "never_provisioned"


def test_a_lookup_that_found_the_account_marks_it_provisioned(app, settings):  # type: ignore[no-untyped-def]
    account = {"schemas": [USER], "id": "scim-dana", "userName": "dana@contoso.com", "externalId": "ext-dana"}

    ingest(settings, [lookup(T0, "dana@contoso.com", found=account)])

    (user,) = users()
    assert user.provisioned is True
    assert user.state == "in_sync"
    assert (user.external_id, user.scim_id) == ("ext-dana", "scim-dana")


# -- 4. deleted in the target, created again with a new SCIM id ------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_a_user_re_created_with_a_new_scim_id_is_one_person_with_both_ids(app, settings, reverse):  # type: ignore[no-untyped-def]
    later = T0 + timedelta(hours=2)
    lines = [
        lookup(T0, "eve@contoso.com"),
        create(T0 + timedelta(seconds=1), "eve@contoso.com", "ext-eve", "scim-eve-old"),
        lookup(later, "eve@contoso.com"),  # deleted in the target: found nothing
        create(later + timedelta(seconds=1), "eve@contoso.com", "ext-eve", "scim-eve-new"),
    ]

    result = ingest(settings, lines[::-1] if reverse else lines)

    assert (result.accepted, result.rejected) == (4, 0)
    (user,) = users()
    assert user.external_id == "ext-eve"
    assert user.scim_id == "scim-eve-new"
    assert aliases(user, "s") == {"scim-eve-old", "scim-eve-new"}
    for key in ("scim-eve-old", "scim-eve-new", "ext-eve", "eve@contoso.com"):
        assert found(key) is not None and found(key).id == user.id, key
    assert [c[3] for c in cycles()] == [1, 1]
    no_dangling_rows()


# -- 5. a PATCH by id before the create that names the id ----------------------------------------


@pytest.mark.parametrize("batch_size", [1, 50])
def test_a_patch_arriving_before_the_create_of_its_id_is_one_person(app, settings, batch_size):  # type: ignore[no-untyped-def]
    lines = [
        patch(T0 + timedelta(seconds=5), "scim-finn"),  # arrives first, happened after the create
        lookup(T0, "finn@contoso.com"),
        create(T0 + timedelta(seconds=1), "finn@contoso.com", "ext-finn", "scim-finn"),
    ]

    result = ingest(settings, lines, batch_size=batch_size)

    assert (result.accepted, result.rejected) == (3, 0)
    (user,) = users()
    assert (user.external_id, user.scim_id, user.user_name) == ("ext-finn", "scim-finn", "finn@contoso.com")
    assert db.session.scalar(select(func.count(func.distinct(Exchange.user_id)))) == 1
    assert [c[3] for c in cycles()] == [1]
    no_dangling_rows()


# -- 6. a line the database refuses inside a batch --------------------------------------------------


def refusing_request(request_id: str):  # type: ignore[no-untyped-def]
    """The database refuses to insert the exchange row with this request_id (a real failure)."""
    return refusing_inserts("exchange", f"NEW.request_id = '{request_id}'", name="identity_refuse")


def test_a_line_the_database_refuses_is_a_reject_and_the_other_nine_are_stored(app, runner, settings, tmp_path):  # type: ignore[no-untyped-def]
    lines = []
    for n in range(5):
        at = T0 + timedelta(seconds=10 * n)
        lines.append(lookup(at, f"user{n}@contoso.com"))
        lines.append(create(at + timedelta(seconds=1), f"user{n}@contoso.com", f"ext-{n}", f"scim-{n}"))
    record = orjson.loads(lines[6])  # line 7: the create of user3
    record["request_id"] = "poison-7"
    lines[6] = orjson.dumps(record) + b"\n"
    log = tmp_path / "ten.jsonl"
    log.write_bytes(b"".join(lines))
    assert settings.ingest.batch_size >= 10  # all ten lines in one batch

    with refusing_request("poison-7"):
        result = runner.invoke(args=["ingest", str(log), "--job", JOB])

    assert result.exit_code == 1, result.output
    assert "10 lines: 9 accepted, 0 duplicates, 1 rejected" in result.output
    db.session.rollback()
    stored = set(db.session.scalars(select(Exchange.request_id)))
    assert len(stored) == 9 and "poison-7" not in stored
    (reject,) = db.session.scalars(select(Reject)).all()
    assert reject.line_no == 7
    assert reject.reason.startswith("line 7: could not be stored (")
    assert "IntegrityError" in reject.reason or "RaiseException" in reject.reason, reject.reason
    assert "refused by the test trigger" in reject.reason
    assert f"{log}:7: line 7: could not be stored (" in runner.invoke(args=["rejects", "--job", JOB]).output
    # the lines before and after the refused one are there: the run went on
    names = {u.external_id for u in users()}
    assert {"ext-0", "ext-1", "ext-2", "ext-4"} <= names
    no_dangling_rows()

    before = cycles()
    recomputed = runner.invoke(args=["recompute", "--job", JOB])
    assert recomputed.exit_code == 0, recomputed.output
    assert cycles() == before
    assert before[0][2] == 9  # the cycle counts the nine stored requests


# -- 7. lines dated years ahead -------------------------------------------------------------------


def test_a_line_dated_2031_is_rejected_naming_ts_and_does_not_hide_a_stall(app, settings):  # type: ignore[no-untyped-def]
    lines = []
    for n in range(6):
        at = T0 + timedelta(minutes=n)
        lines.append(lookup(at, f"user{n}@contoso.com",
                            found={"id": f"scim-{n}", "userName": f"user{n}@contoso.com", "externalId": f"ext-{n}"}))
    future = datetime(2031, 1, 1, 12, tzinfo=UTC)
    lines.insert(3, lookup(future, "clock@contoso.com"))
    lines.append(lookup(future + timedelta(minutes=1), "clock2@contoso.com"))

    result = ingest(settings, lines)

    assert (result.accepted, result.rejected) == (6, 2)
    reasons = {p.line_no: p.reason for p in result.problems}
    assert set(reasons) == {4, 8}
    assert all("field 'ts'" in r and "2031" in r for r in reasons.values()), reasons
    assert db.session.scalar(select(func.max(Exchange.ts_us))) < to_us(datetime.now(UTC))
    assert db.session.scalar(select(func.max(Cycle.ended_us))) < to_us(datetime.now(UTC))
    assert db.session.scalar(select(func.max(Cycle.started_us))) == to_us(T0)
    # four hours without traffic: the job is stalled, not held open by a 2031 cycle
    status = health_status(db.session, get_job(JOB), T0 + timedelta(hours=4), settings)
    assert status.state.value == "stalled", status
