"""Find the user an exchange concerns: by userName, externalId, then the target's SCIM id."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.engine import Connection

from ..models import Exchange, ScimUser
from .records import Classified

_users = ScimUser.__table__
_exchanges = Exchange.__table__
# Built once: these run once per user, so their compiled form is cached and reused.
_INSERT = _users.insert()
_FILL = (
    update(_users)
    .where(_users.c.id == bindparam("uid"))
    .values(
        user_name=bindparam("user_name"),
        name_key=bindparam("name_key"),
        external_id=bindparam("external_id"),
        scim_id=bindparam("scim_id"),
    )
)
_CHUNK = 300
CACHE_LIMIT = 20_000  # users kept between batches; more are fetched again when a batch names them
# On SQLite, users are inserted and completed through the driver's cursor: these statements run
# once per user, where SQLAlchemy's per-statement work costs more than SQLite's. The columns
# with a Python-side default are given it, as an insert through SQLAlchemy would.
_DEFAULTS = {
    column.name: column.default.arg
    for column in _users.columns
    if column.default is not None and column.default.is_scalar
}
_NAMES = ("job_id", "user_name", "name_key", "external_id", "scim_id")
_SQLITE_INSERT = (
    f"INSERT INTO {_users.name} ({', '.join(_NAMES + tuple(_DEFAULTS))}) "
    f"VALUES ({', '.join('?' * (len(_NAMES) + len(_DEFAULTS)))})"
)
_SQLITE_FILL = f"UPDATE {_users.name} SET user_name = ?, name_key = ?, external_id = ?, scim_id = ? WHERE id = ?"


def pad(values: list) -> list:
    """`values` (not empty) lengthened to 10, 100 or a multiple of 100 by repeating the last.

    For `IN (...)` lists sent as SQL text: a few lengths, a few statements in the driver's
    statement cache (each length is a statement of its own); the repeats change no result.
    """
    size = 10 if len(values) <= 10 else 100 if len(values) <= 100 else -(-len(values) // 100) * 100
    return values + [values[-1]] * (size - len(values))


class UserResolver:
    """One job's users as far as ingestion has needed them.

    Users are fetched per batch (only those the batch names), so the cost of an ingest follows
    its own size, not the size of the database. New and completed users are written through the
    batch's connection and commit or roll back with the exchanges that revealed them.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.by_name: dict[str, int] = {}
        self.by_external: dict[str, int] = {}
        self.by_scim: dict[str, int] = {}
        self.rows: dict[int, tuple[str | None, str | None, str | None, str | None]] = {}
        self._asked: set[tuple[int, str]] = set()

    def prefetch(self, conn: Connection, found: Iterable[Classified]) -> None:
        """Load the stored users that any of `found` names and that are not cached yet."""
        self.prefetch_names(conn, ((item.user_name, item.external_id, item.scim_id) for item in found))

    def prefetch_names(self, conn: Connection, names: Iterable[tuple[str | None, str | None, str | None]]) -> None:
        """As `prefetch`, for (user_name, external_id, scim_id) triples."""
        if len(self.rows) > CACHE_LIMIT:  # bounded memory on any number of users: start afresh
            for cache in (self.rows, self.by_name, self.by_external, self.by_scim, self._asked):
                cache.clear()
        wanted: tuple[set[str], set[str], set[str]] = (set(), set(), set())
        caches = (self.by_name, self.by_external, self.by_scim)
        asked = self._asked
        for user_name, external_id, scim_id in names:
            for index, key in enumerate((user_name.lower() if user_name else None, external_id, scim_id)):
                if key and key not in caches[index] and (index, key) not in asked:
                    wanted[index].add(key)
                    asked.add((index, key))
        columns = (_users.c.name_key, _users.c.external_id, _users.c.scim_id)
        sqlite = conn.dialect.name == "sqlite"
        for column, keys in zip(columns, wanted, strict=True):
            ordered = sorted(keys)
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                if sqlite:
                    padded = pad(chunk)
                    cursor = conn.connection.cursor()
                    try:
                        cursor.execute(
                            f"SELECT id, name_key, external_id, scim_id, user_name FROM {_users.name} "
                            f"WHERE job_id = ? AND {column.name} IN ({', '.join('?' * len(padded))})",
                            [self.job_id, *padded],
                        )
                        rows = cursor.fetchall()
                    finally:
                        cursor.close()
                else:
                    rows = conn.execute(
                        select(_users.c.id, *columns, _users.c.user_name).where(
                            _users.c.job_id == self.job_id, column.in_(chunk)
                        )
                    ).all()
                for user_id, name_key, external_id, scim_id, user_name in rows:
                    self._remember(user_id, name_key, external_id, scim_id, user_name)

    def resolve(self, conn: Connection, found: Classified) -> int | None:
        """The user's row id, creating or completing the row; None when nothing names a user."""
        return self.resolve_names(conn, found.user_name, found.external_id, found.scim_id)

    def resolve_names(
        self, conn: Connection, user_name: str | None, external_id: str | None, scim_id: str | None
    ) -> int | None:
        """As `resolve`, for the names themselves."""
        name_key = user_name.lower() if user_name else None
        candidates = (
            self.by_name.get(name_key) if name_key else None,
            self.by_external.get(external_id) if external_id else None,
            self.by_scim.get(scim_id) if scim_id else None,
        )
        known = [c for c in candidates if c is not None]
        if not known:
            if not (name_key or external_id or scim_id):
                return None
            return self._create(conn, user_name, name_key, external_id, scim_id)
        user_id = known[0]
        for other in known[1:]:
            if other != user_id:
                self._merge(conn, keep=user_id, drop=other)
        self._complete(conn, user_id, user_name, name_key, external_id, scim_id)
        return user_id

    def _create(
        self, conn: Connection, user_name: str | None, name_key: str | None, external_id: str | None, scim_id: str | None
    ) -> int:
        if conn.dialect.name == "sqlite":
            cursor = conn.connection.cursor()
            try:
                cursor.execute(_SQLITE_INSERT, (self.job_id, user_name, name_key, external_id, scim_id, *_DEFAULTS.values()))
                user_id = int(cursor.lastrowid)  # type: ignore[arg-type]
            finally:
                cursor.close()
        else:
            result = conn.execute(
                _INSERT,
                {
                    "job_id": self.job_id,
                    "user_name": user_name,
                    "name_key": name_key,
                    "external_id": external_id,
                    "scim_id": scim_id,
                },
            )
            user_id = int(result.inserted_primary_key[0])
        self._remember(user_id, name_key, external_id, scim_id, user_name)
        return user_id

    def _complete(
        self, conn: Connection, user_id: int, found_user_name: str | None, name_key: str | None,
        found_external_id: str | None, found_scim_id: str | None,
    ) -> None:
        old = self.rows[user_id]
        name, external_id, scim_id, user_name = old
        if name_key and name is None and name_key not in self.by_name:
            name, user_name = name_key, found_user_name
        if found_external_id and external_id is None and found_external_id not in self.by_external:
            external_id = found_external_id
        if found_scim_id and scim_id != found_scim_id and found_scim_id not in self.by_scim:
            scim_id = found_scim_id  # a re-created user gets a new id from the target
        if (name, external_id, scim_id, user_name) == old:
            return
        if conn.dialect.name == "sqlite":
            cursor = conn.connection.cursor()
            try:
                cursor.execute(_SQLITE_FILL, (user_name, name, external_id, scim_id, user_id))
            finally:
                cursor.close()
        else:
            conn.execute(
                _FILL,
                {"uid": user_id, "user_name": user_name, "name_key": name, "external_id": external_id, "scim_id": scim_id},
            )
        self._remember(user_id, name, external_id, scim_id, user_name)

    def _merge(self, conn: Connection, *, keep: int, drop: int) -> None:
        # Two rows turned out to be one user (e.g. a PATCH by id arrived before the create that
        # named that id): move the exchanges, fill the gaps, drop the placeholder.
        kept, dropped = self.rows[keep], self.rows.pop(drop)
        conn.execute(update(_exchanges).where(_exchanges.c.user_id == drop).values(user_id=keep))
        conn.execute(delete(_users).where(_users.c.id == drop))
        merged = tuple(k if k is not None else d for k, d in zip(kept, dropped, strict=True))
        conn.execute(
            _FILL,
            {"uid": keep, "name_key": merged[0], "external_id": merged[1], "scim_id": merged[2], "user_name": merged[3]},
        )
        for mapping, key in zip((self.by_name, self.by_external, self.by_scim), dropped, strict=False):
            if key is not None and mapping.get(key) == drop:
                mapping[key] = keep
        self._remember(keep, *merged)

    def _remember(
        self, user_id: int, name_key: str | None, external_id: str | None, scim_id: str | None, user_name: str | None
    ) -> None:
        self.rows[user_id] = (name_key, external_id, scim_id, user_name)
        if name_key:
            self.by_name[name_key] = user_id
        if external_id:
            self.by_external[external_id] = user_id
        if scim_id:
            self.by_scim[scim_id] = user_id
