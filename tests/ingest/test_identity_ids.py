"""Who is who by the target's SCIM id: an id that is alive is its own account, an id that is gone
(deleted, or answered 404) is never current again, and a new id after the old one was seen gone
is a re-creation of the same person. Found by an adversarial log (two people sharing a userName
without externalId merged into one; a stale PATCH of a deleted id rewinding the person). Real SCIM
v1 lines on the fixture's database, in time order, reversed, shuffled, one by one or in two
batches: the result is the same.
"""
from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from dashboard.db import db
from dashboard.models import Exchange
from tests.ingest.test_identity_ingest import (
    ERROR,
    PATCH,
    T0,
    USER,
    _line,
    aliases,
    ingest,
    lookup,
    no_dangling_rows,
    users,
)

ORDERS = ["time", "reversed", "shuffled-1", "shuffled-2", "shuffled-3", "two-batches"]


def post(at, name: str, scim_id: str | None, *, external_id: str | None = None, status: int = 201) -> bytes:  # type: ignore[no-untyped-def]
    body = {"schemas": [USER], "userName": name, **({"externalId": external_id} if external_id else {})}
    if status >= 400:
        answer = {"schemas": [ERROR], "status": str(status), "scimType": "uniqueness", "detail": "exists"}
    else:
        answer = {**body, "id": scim_id, "active": True}
    return _line(at, "POST", "/scim/v2/Users", status, request_body=body, response_body=answer)


def read(at, scim_id: str, name: str | None) -> bytes:  # type: ignore[no-untyped-def]
    """GET /Users/{id}: 200 with the resource (`name`), or 404 when `name` is None."""
    if name is None:
        return _line(at, "GET", f"/scim/v2/Users/{scim_id}", 404,
                     response_body={"schemas": [ERROR], "status": "404", "detail": f"Resource {scim_id} not found"})
    return _line(at, "GET", f"/scim/v2/Users/{scim_id}", 200,
                 response_body={"schemas": [USER], "id": scim_id, "userName": name})


def patch_by_id(at, scim_id: str, status: int, *, user_name: str | None = None, active: bool | None = None) -> bytes:  # type: ignore[no-untyped-def]
    if user_name is not None:
        op = {"op": "replace", "path": "userName", "value": user_name}
    else:
        op = {"op": "Replace", "path": "active", "value": "True" if active else "False"}
    extra = {}
    if status == 404:
        extra = {"response_body": {"schemas": [ERROR], "status": "404", "detail": "not found"}}
    elif status == 200:
        extra = {"response_body": {"schemas": [USER], "id": scim_id, "userName": user_name}}
    return _line(at, "PATCH", f"/scim/v2/Users/{scim_id}", status,
                 request_body={"schemas": [PATCH], "Operations": [op]}, **extra)


def delete(at, scim_id: str, status: int = 204) -> bytes:  # type: ignore[no-untyped-def]
    return _line(at, "DELETE", f"/scim/v2/Users/{scim_id}", status)


def arrive(settings, lines: list[bytes], order: str) -> None:  # type: ignore[no-untyped-def]
    """Ingest `lines` (in time order) as `order` says: as told, reversed or shuffled one line a
    batch, or in two batches (the second half first)."""
    if order == "two-batches":
        half = len(lines) // 2
        for part in (lines[half:], lines[:half]):
            result = ingest(settings, part)
            assert result.rejected == 0
        return
    if order == "reversed":
        lines = lines[::-1]
    elif order.startswith("shuffled"):
        lines = list(lines)
        random.Random(int(order.rsplit("-", 1)[1])).shuffle(lines)
    result = ingest(settings, lines, batch_size=1)
    assert (result.accepted, result.rejected) == (len(lines), 0)


def owners() -> dict[int, int]:
    """Exchange -> user row, by the exchange's time (seconds after T0)."""
    db.session.rollback()
    return {int((ts - int(T0.timestamp() * 1_000_000)) // 1_000_000): user_id
            for ts, user_id in db.session.execute(select(Exchange.ts_us, Exchange.user_id))}


# -- two people on one userName, no externalId: an alive id is its own account ---------------------


def shared_name_lines() -> list[bytes]:
    """The adversarial log: Alice created as s@x (id-A); a second create of s@x refused (409);
    Alice renamed to s.alice@x; s@x created again (id-B, another account); both ids answer 200."""
    at = [T0 + timedelta(seconds=60 * n) for n in range(8)]
    return [
        post(at[0], "s@x", "id-A"),
        lookup(at[1], "s@x", found={"schemas": [USER], "id": "id-A", "userName": "s@x"}),
        post(at[2], "s@x", None, status=409),
        patch_by_id(at[3], "id-A", 200, user_name="s.alice@x"),
        post(at[4], "s@x", "id-B"),
        read(at[5], "id-A", "s.alice@x"),
        read(at[6], "id-B", "s@x"),
        patch_by_id(at[7], "id-A", 204, active=False),
    ]


@pytest.mark.parametrize("order", ORDERS)
def test_a_second_alive_id_under_a_shared_name_is_another_person(app, settings, order):  # type: ignore[no-untyped-def]
    arrive(settings, shared_name_lines(), order)

    by_id = {u.scim_id: u for u in users()}
    assert set(by_id) == {"id-A", "id-B"}, [(u.scim_id, u.user_name) for u in users()]
    alice, bob = by_id["id-A"], by_id["id-B"]
    assert (alice.user_name, alice.external_id) == ("s.alice@x", None)
    assert (bob.user_name, bob.external_id) == ("s@x", None)
    assert aliases(alice, "s") <= {"id-A"} and aliases(bob, "s") <= {"id-B"}
    assert aliases(alice, "n") == {"s@x", "s.alice@x"}
    mine = owners()
    assert {t: mine[t] for t in (0, 60, 180, 300, 420)} == dict.fromkeys((0, 60, 180, 300, 420), alice.id)
    assert {t: mine[t] for t in (240, 360)} == dict.fromkeys((240, 360), bob.id)
    # (the 409 at 120 s names only s@x: whose it is, the line does not say; see docs/analysis.md)
    assert alice.state == "disabled" and alice.provisioned
    assert bob.state == "in_sync" and bob.provisioned
    no_dangling_rows()


def recreated_without_external_id_lines() -> list[bytes]:
    """Deleted in the target (DELETE answered 204, then a read by the old id 404), looked up,
    created again under the same userName: a new id, the same person."""
    at = [T0 + timedelta(seconds=n) for n in range(6)]
    return [
        post(at[0], "re@x", "id-1"),
        delete(at[1], "id-1"),
        read(at[2], "id-1", None),
        lookup(at[3], "re@x"),
        post(at[4], "re@x", "id-2"),
        patch_by_id(at[5], "id-2", 204, active=True),
    ]


@pytest.mark.parametrize("order", ["time", "two-batches-in-time", "reversed", "two-batches", "shuffled-1", "shuffled-2", "shuffled-3"])
def test_a_new_id_after_the_old_one_was_deleted_is_a_re_creation(app, settings, order):  # type: ignore[no-untyped-def]
    lines = recreated_without_external_id_lines()
    if order == "two-batches-in-time":
        for part in (lines[:3], lines[3:]):
            ingest(settings, part)
    else:
        arrive(settings, lines, order)

    (user,) = users()
    assert (user.scim_id, user.user_name) == ("id-2", "re@x")
    assert aliases(user, "s") == {"id-1", "id-2"}
    no_dangling_rows()


# -- a stale PATCH of a deleted id after the re-creation -------------------------------------------


def stale_patch_lines() -> list[bytes]:
    """The adversarial log: created (id-re1), deleted in the target, read 404, looked up (nothing),
    created again (id-re2), disabled by id-re2; then a PATCH of id-re1 (Entra's stale cached id)
    answered 404."""
    at = [T0 + timedelta(seconds=n) for n in range(7)]
    return [
        post(at[0], "re@contoso.com", "id-re1", external_id="ext-re"),
        delete(at[1], "id-re1"),
        read(at[2], "id-re1", None),
        lookup(at[3], "re@contoso.com"),
        post(at[4], "re@contoso.com", "id-re2", external_id="ext-re"),
        patch_by_id(at[5], "id-re2", 204, active=False),
        patch_by_id(at[6], "id-re1", 404, active=True),
    ]


@pytest.mark.parametrize("order", ORDERS)
def test_a_stale_patch_of_a_gone_id_does_not_rewind_the_person(app, settings, order):  # type: ignore[no-untyped-def]
    arrive(settings, stale_patch_lines(), order)

    (user,) = users()
    assert (user.external_id, user.scim_id, user.user_name) == ("ext-re", "id-re2", "re@contoso.com")
    assert aliases(user, "s") == {"id-re1", "id-re2"}
    # The PATCH of id-re1 is a real request Entra made and the target refused: a failure of the
    # person in that cycle (Entra retries). The account id-re2 was created and is there: the
    # person stays provisioned (disabled by the PATCH of id-re2).
    assert user.state == "failing"
    assert user.provisioned
    no_dangling_rows()
