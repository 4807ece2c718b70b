"""Find the user an exchange concerns: by userName, externalId, then the target's SCIM id."""
from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from ..models import Exchange, ScimUser
from .records import Classified

_users = ScimUser.__table__
_exchanges = Exchange.__table__


class UserResolver:
    """Keeps one job's user map in memory (bounded by the number of users, not of lines) and
    writes new or completed users through the connection of the batch being loaded, so they
    commit or roll back with the exchanges that revealed them."""

    def __init__(self, conn: Connection, job_id: int) -> None:
        self.job_id = job_id
        self.by_name: dict[str, int] = {}
        self.by_external: dict[str, int] = {}
        self.by_scim: dict[str, int] = {}
        self.rows: dict[int, list[str | None]] = {}  # id -> [name_key, external_id, scim_id]
        rows = conn.execute(
            select(_users.c.id, _users.c.name_key, _users.c.external_id, _users.c.scim_id).where(
                _users.c.job_id == job_id
            )
        )
        for user_id, name_key, external_id, scim_id in rows:
            self._remember(user_id, name_key, external_id, scim_id)

    def resolve(self, conn: Connection, found: Classified) -> int | None:
        """The user's row id, creating or completing the row; None when nothing names a user."""
        name_key = found.user_name.lower() if found.user_name else None
        candidates = [
            self.by_name.get(name_key) if name_key else None,
            self.by_external.get(found.external_id) if found.external_id else None,
            self.by_scim.get(found.scim_id) if found.scim_id else None,
        ]
        known = [c for c in candidates if c is not None]
        if not known:
            if not (name_key or found.external_id or found.scim_id):
                return None
            return self._create(conn, found, name_key)
        user_id = known[0]
        for other in known[1:]:
            if other != user_id:
                user_id = self._merge(conn, keep=user_id, drop=other)
        self._complete(conn, user_id, found, name_key)
        return user_id

    def _create(self, conn: Connection, found: Classified, name_key: str | None) -> int:
        result = conn.execute(
            insert(_users).values(
                job_id=self.job_id,
                user_name=found.user_name,
                name_key=name_key,
                external_id=found.external_id,
                scim_id=found.scim_id,
            )
        )
        user_id = int(result.inserted_primary_key[0])
        self._remember(user_id, name_key, found.external_id, found.scim_id)
        return user_id

    def _complete(self, conn: Connection, user_id: int, found: Classified, name_key: str | None) -> None:
        row = self.rows[user_id]
        changes: dict[str, str] = {}
        if name_key and row[0] is None and name_key not in self.by_name:
            changes.update(user_name=found.user_name or "", name_key=name_key)
        if found.external_id and row[1] is None and found.external_id not in self.by_external:
            changes["external_id"] = found.external_id
        if found.scim_id and row[2] != found.scim_id and found.scim_id not in self.by_scim:
            changes["scim_id"] = found.scim_id  # a re-created user gets a new id from the target
        if changes:
            conn.execute(update(_users).where(_users.c.id == user_id).values(**changes))
            self._remember(
                user_id,
                changes.get("name_key", row[0]),
                changes.get("external_id", row[1]),
                changes.get("scim_id", row[2]),
            )

    def _merge(self, conn: Connection, *, keep: int, drop: int) -> int:
        # Two rows turned out to be one user (e.g. a PATCH by id arrived before the create that
        # named that id): move the exchanges, fill the gaps, drop the placeholder.
        kept, dropped = self.rows[keep], self.rows.pop(drop)
        dropped_name = conn.execute(select(_users.c.user_name).where(_users.c.id == drop)).scalar()
        conn.execute(update(_exchanges).where(_exchanges.c.user_id == drop).values(user_id=keep))
        conn.execute(delete(_users).where(_users.c.id == drop))
        merged = [k if k is not None else d for k, d in zip(kept, dropped, strict=True)]
        values: dict[str, str | None] = dict(name_key=merged[0], external_id=merged[1], scim_id=merged[2])
        if kept[0] is None and dropped[0] is not None:
            values["user_name"] = dropped_name
        conn.execute(update(_users).where(_users.c.id == keep).values(**values))
        for index, mapping in enumerate((self.by_name, self.by_external, self.by_scim)):
            if dropped[index] is not None and mapping.get(dropped[index]) == drop:
                mapping[dropped[index]] = keep
        self.rows[keep] = merged
        return keep

    def _remember(self, user_id: int, name_key: str | None, external_id: str | None, scim_id: str | None) -> None:
        self.rows[user_id] = [name_key, external_id, scim_id]
        if name_key:
            self.by_name[name_key] = user_id
        if external_id:
            self.by_external[external_id] = user_id
        if scim_id:
            self.by_scim[scim_id] = user_id
