"""Find the person an exchange (or an Entra event) concerns, by the rules of ingest/identity.py.

An exchange names up to three things: a userName, an externalId and the target's SCIM id.
1. With an externalId: that person (durable). A new externalId adopts the provisional row the
   line links it to (the SCIM id's row if it has no externalId, else the row of a lookup that
   found nothing under this name), or starts a row.
2. With a SCIM id only: the person who had that id (at any time), else the provisional row of
   the name, else the person holding the name (one whose SCIM id is not known yet first: a
   new id for a known person is a re-creation in the target), else a new row.
3. With a userName only (a lookup): the identified person who holds that name now, or held it
   at that time; else the name's provisional row.
Provisional rows (no externalId) are merged into the person a later line links them to; two
rows with an externalId never are. The current userName and SCIM id are those of the latest
line (by time, not by arrival), and every name and id is kept as an alias with its first and
last sighting, so the result does not depend on the order lines arrive in.

Writes: new rows are inserted at once (their id goes into the batch's rows); everything else
(completed rows, aliases, merges) is written by `finish_batch`, after the batch's rows are in,
in the batch's transaction. A merge moves the dropped row's exchanges, events, cycles,
signatures and aliases to the kept one before deleting it: nothing ever points at a deleted row.
After a rollback, call `forget`: the cache would describe rows that are not there.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from ..models import ScimUser, ScimUserAlias
from .identity import EXTERNAL, NAME, SCIM, name_key
from .records import Classified

_users = ScimUser.__table__
_aliases = ScimUserAlias.__table__
_INSERT = _users.insert()
_FILL = (
    update(_users)
    .where(_users.c.id == bindparam("uid"))
    .values(
        user_name=bindparam("user_name"), name_key=bindparam("name_key"), external_id=bindparam("external_id"),
        scim_id=bindparam("scim_id"), name_us=bindparam("name_us"), scim_us=bindparam("scim_us"),
    )
)
_CHUNK = 300
# A past name still finds its person this long before its first or after its last sighting: a
# lookup that arrives after a rename, for the name the person still had when it was sent.
NAME_SLACK_US = 60 * 60 * 1_000_000
CACHE_LIMIT = 20_000  # users kept between batches; more are fetched again when a batch names them
_DEFAULTS = {
    column.name: column.default.arg
    for column in _users.columns
    if column.default is not None and column.default.is_scalar
}
_NAMES = ("job_id", "user_name", "name_key", "external_id", "scim_id", "name_us", "scim_us")
_SQLITE_INSERT = (
    f"INSERT INTO {_users.name} ({', '.join(_NAMES + tuple(_DEFAULTS))}) "
    f"VALUES ({', '.join('?' * (len(_NAMES) + len(_DEFAULTS)))})"
)
# Row fields in the cache (a list per user).
R_NAME_KEY, R_EXTERNAL, R_SCIM, R_USER_NAME, R_NAME_US, R_SCIM_US = range(6)


def pad(values: list) -> list:
    """`values` (not empty) lengthened to 10, 100 or a multiple of 100 by repeating the last.

    For `IN (...)` lists sent as SQL text: a few lengths, a few statements in the driver's
    statement cache (each length is a statement of its own); the repeats change no result.
    """
    size = 10 if len(values) <= 10 else 100 if len(values) <= 100 else -(-len(values) // 100) * 100
    return values + [values[-1]] * (size - len(values))


class UserResolver:
    """One job's people as far as ingestion has needed them (fetched per batch, bounded)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.forget()

    def forget(self) -> None:
        """Drop everything cached (after a rollback, or to bound memory)."""
        self.rows: dict[int, list] = {}
        self.by_external: dict[str, int] = {}
        self.by_scim: dict[str, int] = {}
        self.by_name: dict[str, set[int]] = {}
        self.spans: dict[tuple[int, str, str], list] = {}  # (user, kind, key) -> [value, first_us, last_us]
        self._asked: set[tuple[str, str]] = set()
        self._dirty_rows: set[int] = set()
        self._dirty_aliases: set[tuple[int, str, str]] = set()
        self._stored_aliases: set[tuple[int, str, str]] = set()
        self.merges: list[tuple[int, int]] = []

    # -- fetching ---------------------------------------------------------------------------

    def prefetch(self, conn: Connection, found: Iterable[Classified]) -> None:
        """Load the stored people that any of `found` names and that are not cached yet."""
        self.prefetch_names(conn, ((item.user_name, item.external_id, item.scim_id) for item in found))

    def prefetch_names(self, conn: Connection, names: Iterable[tuple[str | None, str | None, str | None]]) -> None:
        """As `prefetch`, for (user_name, external_id, scim_id) triples."""
        if len(self.rows) > CACHE_LIMIT and not (self._dirty_rows or self._dirty_aliases or self.merges):
            self.forget()
        wanted: dict[str, set[str]] = {NAME: set(), EXTERNAL: set(), SCIM: set()}
        asked = self._asked
        for user_name, external_id, scim_id in names:
            for kind, key in ((NAME, name_key(user_name)), (EXTERNAL, external_id), (SCIM, scim_id)):
                if key and (kind, key) not in asked:
                    wanted[kind].add(key)
                    asked.add((kind, key))
        found: list[tuple] = []
        for kind, keys in wanted.items():
            ordered = sorted(keys)
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                found.extend(self._select(
                    conn, f"SELECT user_id, kind, key, value, first_us, last_us FROM {_aliases.name} "
                    f"WHERE job_id = ? AND kind = ? AND key IN", [self.job_id, kind], chunk))
        new_users = sorted({row[0] for row in found} - set(self.rows))
        for start in range(0, len(new_users), _CHUNK):
            chunk = new_users[start : start + _CHUNK]
            for uid, *row in self._select(
                conn, f"SELECT id, name_key, external_id, scim_id, user_name, name_us, scim_us FROM {_users.name} "
                f"WHERE id IN", [], chunk,
            ):
                self._cache_row(int(uid), list(row))
        for user_id, kind, key, value, first_us, last_us in found:
            if user_id in self.rows and (user_id, kind, key) not in self.spans:
                self.spans[(user_id, kind, key)] = [value, first_us, last_us]
                self._stored_aliases.add((user_id, kind, key))
                self._index(user_id, kind, key)

    def _select(self, conn: Connection, head: str, params: list, keys: list) -> list[tuple]:
        padded = pad(keys)
        if conn.dialect.name == "sqlite":
            cursor = conn.connection.cursor()
            try:
                cursor.execute(f"{head} ({', '.join('?' * len(padded))})", [*params, *padded])
                return cursor.fetchall()
            finally:
                cursor.close()
        sql = head.replace("?", "%s") + f" ({', '.join(['%s'] * len(padded))})"
        return [tuple(row) for row in conn.exec_driver_sql(sql, tuple([*params, *padded])).all()]

    def _cache_row(self, user_id: int, row: list) -> None:
        self.rows[user_id] = row
        if row[R_EXTERNAL]:
            self.by_external.setdefault(row[R_EXTERNAL], user_id)
        if row[R_SCIM]:
            self.by_scim.setdefault(row[R_SCIM], user_id)
        if row[R_NAME_KEY]:
            self.by_name.setdefault(row[R_NAME_KEY], set()).add(user_id)

    def _index(self, user_id: int, kind: str, key: str) -> None:
        if kind == NAME:
            self.by_name.setdefault(key, set()).add(user_id)
        elif kind == EXTERNAL:
            self.by_external.setdefault(key, user_id)
        else:
            owner = self.by_scim.get(key)
            if owner is None or owner not in self.rows:
                self.by_scim[key] = user_id

    # -- resolving --------------------------------------------------------------------------

    def resolve(self, conn: Connection, found: Classified, ts_us: int = 0) -> int | None:
        """The person's row id, creating a row when needed; None when nothing names a person."""
        return self.resolve_names(conn, found.user_name, found.external_id, found.scim_id, ts_us)

    def resolve_names(
        self, conn: Connection, user_name: str | None, external_id: str | None, scim_id: str | None,
        ts_us: int = 0,
    ) -> int | None:
        """As `resolve`, for the names themselves; `ts_us` is when the line says this."""
        key = name_key(user_name)
        if not (key or external_id or scim_id):
            return None
        uid: int | None = None
        keep_scim = True
        if external_id:
            uid = self.by_external.get(external_id)
            s_uid = self.by_scim.get(scim_id) if scim_id else None
            if s_uid is not None and self.rows[s_uid][R_EXTERNAL] not in (None, external_id):
                keep_scim, s_uid = False, None  # the id is another person's: never merge two people
            if uid is None:
                uid = s_uid if s_uid is not None else (self._provisional(key) if key else None)
                if uid is None:
                    uid = self._create(conn, user_name, key, external_id, scim_id if keep_scim else None, ts_us)
            elif s_uid is not None and s_uid != uid:
                self._merge(keep=uid, drop=s_uid)
            if key:
                spare = self._provisional(key)
                if spare is not None and spare != uid:
                    self._merge(keep=uid, drop=spare)
        elif scim_id:
            uid = self.by_scim.get(scim_id)
            if uid is None and key:
                uid = self._provisional(key) or self._holder(key, ts_us, without_scim=True) or self._holder(key, ts_us)
            if uid is None:
                uid = self._create(conn, user_name, key, None, scim_id, ts_us)
            elif key:
                spare = self._provisional(key)
                if spare is not None and spare != uid:
                    self._merge(keep=uid, drop=spare)
        else:
            uid = self._holder(key, ts_us) or self._provisional(key)  # type: ignore[arg-type]
            if uid is None:
                uid = self._create(conn, user_name, key, None, None, ts_us)
        if external_id:
            self._note(uid, EXTERNAL, external_id, external_id, ts_us)
        if scim_id and keep_scim:
            self._note(uid, SCIM, scim_id, scim_id, ts_us)
        if key:
            self._note(uid, NAME, key, user_name, ts_us)  # type: ignore[arg-type]
        return uid

    def _provisional(self, key: str) -> int | None:
        """The row known only by this name (no externalId, no SCIM id), if any."""
        found = [u for u in self.by_name.get(key, ()) if u in self.rows and self.rows[u][R_EXTERNAL] is None
                 and self.rows[u][R_SCIM] is None and self.rows[u][R_NAME_KEY] == key]
        return min(found) if found else None

    def _holder(self, key: str, ts_us: int, *, without_scim: bool = False) -> int | None:
        """The identified person holding this name now, or at `ts_us`; ties: by externalId.
        `without_scim`: only one whose SCIM id is not known yet (a new id is theirs to take)."""
        candidates = []
        for uid in self.by_name.get(key, ()):
            row = self.rows.get(uid)
            if row is None or (row[R_EXTERNAL] is None and row[R_SCIM] is None):
                continue
            if without_scim and row[R_SCIM] is not None:
                continue
            span = self.spans.get((uid, NAME, key))
            inside = span is not None and span[1] - NAME_SLACK_US <= ts_us <= span[2] + NAME_SLACK_US
            if row[R_NAME_KEY] != key and not inside:
                continue
            distance = 0 if span is None or span[1] <= ts_us <= span[2] else min(abs(ts_us - span[1]), abs(ts_us - span[2]))
            candidates.append((distance, row[R_EXTERNAL] is None, row[R_EXTERNAL] or "", row[R_SCIM] or "", uid))
        return min(candidates)[-1] if candidates else None

    def _note(self, uid: int, kind: str, key: str, value: str, ts_us: int) -> None:
        """Record that the person went by this name / had this id at `ts_us`."""
        span = self.spans.get((uid, kind, key))
        if span is None:
            self.spans[(uid, kind, key)] = [value[:512], ts_us, ts_us]
            self._dirty_aliases.add((uid, kind, key))
            self._index(uid, kind, key)
        elif ts_us < span[1] or ts_us > span[2]:
            span[1], span[2] = min(span[1], ts_us), max(span[2], ts_us)
            if ts_us >= span[2]:
                span[0] = value[:512]
            self._dirty_aliases.add((uid, kind, key))
        row = self.rows[uid]
        if kind == NAME:
            if row[R_NAME_KEY] is None or row[R_NAME_US] is None or ts_us >= row[R_NAME_US]:
                if (row[R_NAME_KEY], row[R_USER_NAME], row[R_NAME_US]) != (key, value, ts_us):
                    row[R_NAME_KEY], row[R_USER_NAME], row[R_NAME_US] = key, value[:512], ts_us
                    self._dirty_rows.add(uid)
        elif kind == SCIM:
            if row[R_SCIM] is None or row[R_SCIM_US] is None or ts_us >= row[R_SCIM_US]:
                if (row[R_SCIM], row[R_SCIM_US]) != (key, ts_us):
                    row[R_SCIM], row[R_SCIM_US] = key, ts_us
                    self.by_scim[key] = uid
                    self._dirty_rows.add(uid)
        elif row[R_EXTERNAL] is None:
            row[R_EXTERNAL] = key
            self._dirty_rows.add(uid)

    def _create(
        self, conn: Connection, user_name: str | None, key: str | None, external_id: str | None,
        scim_id: str | None, ts_us: int,
    ) -> int:
        name_us = ts_us if key else None
        scim_us = ts_us if scim_id else None
        user_name = user_name[:512] if user_name else None
        if conn.dialect.name == "sqlite":
            cursor = conn.connection.cursor()
            try:
                cursor.execute(_SQLITE_INSERT, (self.job_id, user_name, key, external_id, scim_id, name_us, scim_us,
                                                *_DEFAULTS.values()))
                user_id = int(cursor.lastrowid)  # type: ignore[arg-type]
            finally:
                cursor.close()
        else:
            user_id = int(conn.execute(_INSERT, {
                "job_id": self.job_id, "user_name": user_name, "name_key": key, "external_id": external_id,
                "scim_id": scim_id, "name_us": name_us, "scim_us": scim_us,
            }).inserted_primary_key[0])
        self._cache_row(user_id, [key, external_id, scim_id, user_name, name_us, scim_us])
        return user_id

    def _merge(self, *, keep: int, drop: int) -> None:
        """`drop` (provisional) is `keep`: from now on it resolves to `keep`; `finish_batch` moves
        its stored rows."""
        kept, dropped = self.rows[keep], self.rows.pop(drop)
        self.merges.append((keep, drop))
        self._dirty_rows.discard(drop)
        if dropped[R_NAME_KEY] and (kept[R_NAME_KEY] is None or (dropped[R_NAME_US] or 0) > (kept[R_NAME_US] or 0)):
            kept[R_NAME_KEY], kept[R_USER_NAME], kept[R_NAME_US] = dropped[R_NAME_KEY], dropped[R_USER_NAME], dropped[R_NAME_US]
        if dropped[R_SCIM] and (kept[R_SCIM] is None or (dropped[R_SCIM_US] or 0) > (kept[R_SCIM_US] or 0)):
            kept[R_SCIM], kept[R_SCIM_US] = dropped[R_SCIM], dropped[R_SCIM_US]
        if kept[R_EXTERNAL] is None:
            kept[R_EXTERNAL] = dropped[R_EXTERNAL]
        self._dirty_rows.add(keep)
        for mapping in (self.by_external, self.by_scim):
            for key in [k for k, v in mapping.items() if v == drop]:
                mapping[key] = keep
        for holders in self.by_name.values():
            if drop in holders:
                holders.discard(drop)
                holders.add(keep)
        for (uid, kind, key) in [k for k in self.spans if k[0] == drop]:
            value, first, last = self.spans.pop((uid, kind, key))
            self._dirty_aliases.discard((uid, kind, key))
            self._stored_aliases.discard((uid, kind, key))
            mine = self.spans.get((keep, kind, key))
            if mine is None:
                self.spans[(keep, kind, key)] = [value, first, last]
            else:
                if last > mine[2]:
                    mine[0] = value
                mine[1], mine[2] = min(mine[1], first), max(mine[2], last)
            self._dirty_aliases.add((keep, kind, key))

    # -- writing ----------------------------------------------------------------------------

    def finish_batch(self, conn: Connection) -> None:
        """Write what this batch learnt (merges, completed rows, aliases), in its transaction.

        Call it after the batch's rows (which may name a dropped row) are inserted and folded."""
        from ..incremental import merge_users

        for keep, drop in self.merges:
            merge_users(conn, keep=keep, drop=drop)
        self.merges = []
        if self._dirty_rows:
            conn.execute(_FILL, [
                {"uid": uid, "user_name": row[R_USER_NAME], "name_key": row[R_NAME_KEY], "external_id": row[R_EXTERNAL],
                 "scim_id": row[R_SCIM], "name_us": row[R_NAME_US], "scim_us": row[R_SCIM_US]}
                for uid in sorted(self._dirty_rows) if (row := self.rows.get(uid)) is not None
            ])
            self._dirty_rows = set()
        if self._dirty_aliases:
            self._write_aliases(conn)

    def _write_aliases(self, conn: Connection) -> None:
        inserts, updates = [], []
        for uid, kind, key in sorted(self._dirty_aliases):
            if uid not in self.rows:
                continue
            value, first, last = self.spans[(uid, kind, key)]
            if (uid, kind, key) in self._stored_aliases:
                updates.append({"u": uid, "k": kind, "y": key, "value": value, "first_us": first, "last_us": last})
            else:
                inserts.append({"job_id": self.job_id, "user_id": uid, "kind": kind, "key": key, "value": value,
                                "first_us": first, "last_us": last})
        if inserts:
            # A merge may have moved a stored alias of the dropped row onto the kept one already.
            dialect = conn.dialect.name
            if dialect in ("sqlite", "postgresql"):
                from sqlalchemy.dialects import postgresql, sqlite

                module = sqlite if dialect == "sqlite" else postgresql
                stmt = module.insert(_aliases)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["user_id", "kind", "key"],
                    set_={"value": stmt.excluded.value, "first_us": stmt.excluded.first_us,
                          "last_us": stmt.excluded.last_us},
                )
                conn.execute(stmt, inserts)
            else:  # pragma: no cover - only SQLite and PostgreSQL are supported
                conn.execute(_aliases.insert(), inserts)
        if updates:
            conn.execute(
                update(_aliases).where(_aliases.c.user_id == bindparam("u"), _aliases.c.kind == bindparam("k"),
                                       _aliases.c.key == bindparam("y"))
                .values(value=bindparam("value"), first_us=bindparam("first_us"), last_us=bindparam("last_us")),
                updates,
            )
        self._stored_aliases.update(self._dirty_aliases)
        self._dirty_aliases = set()


def users_named(job_id: int, text: str):  # type: ignore[no-untyped-def]
    """SELECT of the ids of people who ever went by this name (any case or Unicode variant), or
    had this externalId or SCIM id: a person is found by any of their past names or ids."""
    from sqlalchemy import and_, or_

    a = _aliases.c
    terms = [and_(a.kind == EXTERNAL, a.key == text), and_(a.kind == SCIM, a.key == text)]
    key = name_key(text)
    if key:
        terms.append(and_(a.kind == NAME, a.key == key))
    return select(a.user_id).where(a.job_id == job_id, or_(*terms))


def users_matching(job_id: int, text: str):  # type: ignore[no-untyped-def]
    """SELECT of the ids of people with a past or present name or externalId containing `text`,
    or the SCIM id `text` (the search box)."""
    from sqlalchemy import and_, or_

    a = _aliases.c
    key = name_key(text) or text.lower()
    escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    raw = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return select(a.user_id).where(a.job_id == job_id, or_(
        and_(a.kind == NAME, a.key.like(f"%{escaped}%", escape="\\")),
        and_(a.kind == EXTERNAL, a.key.like(f"%{raw}%", escape="\\")),
        and_(a.kind == SCIM, a.key == text),
    ))
