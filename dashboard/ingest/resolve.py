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
        wanted: tuple[set[str], set[str], set[str]] = (set(), set(), set())
        for item in found:
            for index, (key, cache) in enumerate(
                ((item.user_name.lower() if item.user_name else None, self.by_name),
                 (item.external_id, self.by_external),
                 (item.scim_id, self.by_scim))
            ):
                if key and key not in cache and (index, key) not in self._asked:
                    wanted[index].add(key)
                    self._asked.add((index, key))
        columns = (_users.c.name_key, _users.c.external_id, _users.c.scim_id)
        for column, keys in zip(columns, wanted, strict=True):
            ordered = sorted(keys)
            for start in range(0, len(ordered), _CHUNK):
                rows = conn.execute(
                    select(_users.c.id, *columns, _users.c.user_name).where(
                        _users.c.job_id == self.job_id, column.in_(ordered[start : start + _CHUNK])
                    )
                )
                for user_id, name_key, external_id, scim_id, user_name in rows:
                    self._remember(user_id, name_key, external_id, scim_id, user_name)

    def resolve(self, conn: Connection, found: Classified) -> int | None:
        """The user's row id, creating or completing the row; None when nothing names a user."""
        name_key = found.user_name.lower() if found.user_name else None
        candidates = (
            self.by_name.get(name_key) if name_key else None,
            self.by_external.get(found.external_id) if found.external_id else None,
            self.by_scim.get(found.scim_id) if found.scim_id else None,
        )
        known = [c for c in candidates if c is not None]
        if not known:
            if not (name_key or found.external_id or found.scim_id):
                return None
            return self._create(conn, found, name_key)
        user_id = known[0]
        for other in known[1:]:
            if other != user_id:
                self._merge(conn, keep=user_id, drop=other)
        self._complete(conn, user_id, found, name_key)
        return user_id

    def _create(self, conn: Connection, found: Classified, name_key: str | None) -> int:
        result = conn.execute(
            _INSERT,
            {
                "job_id": self.job_id,
                "user_name": found.user_name,
                "name_key": name_key,
                "external_id": found.external_id,
                "scim_id": found.scim_id,
            },
        )
        user_id = int(result.inserted_primary_key[0])
        self._remember(user_id, name_key, found.external_id, found.scim_id, found.user_name)
        return user_id

    def _complete(self, conn: Connection, user_id: int, found: Classified, name_key: str | None) -> None:
        old = self.rows[user_id]
        name, external_id, scim_id, user_name = old
        if name_key and name is None and name_key not in self.by_name:
            name, user_name = name_key, found.user_name
        if found.external_id and external_id is None and found.external_id not in self.by_external:
            external_id = found.external_id
        if found.scim_id and scim_id != found.scim_id and found.scim_id not in self.by_scim:
            scim_id = found.scim_id  # a re-created user gets a new id from the target
        if (name, external_id, scim_id, user_name) == old:
            return
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
