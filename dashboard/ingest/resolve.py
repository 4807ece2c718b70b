"""Find the person an exchange (or an Entra event) concerns, by the rules of analysis/identity.py.

An exchange names up to three things: a userName, an externalId and the target's SCIM id.
1. With an externalId: that person (durable). A new externalId adopts the provisional row the
   line links it to (the SCIM id's row if it has no externalId, else the row of a lookup that
   found nothing under this name), or starts a row; so does the person's earliest line known
   when later lines of theirs arrived first (in time order they are new there).
2. With a SCIM id only: the person who had that id (at any time), else the provisional row of
   the name, else the person holding the name whose SCIM id is not known yet, else the holder
   the new id re-creates in the target (none of their ids was alive while it was: the old one
   was deleted or answered 404 first, `identity.says_gone`), else a new row: an id alive at the
   same time as the holder's is another account, another person.
3. With a userName only (a lookup): the identified person who holds that name now, or held it
   at that time, or whose first name it is (a lookup before their earliest line); else the
   name's provisional row.
Provisional rows (no externalId) are merged into the person a later line links them to; two
rows with an externalId never are. The current userName and SCIM id are those of the latest
line (by time, not by arrival; for the id, the latest that saw it alive: an id a line says is
gone is never made current again), so the result does not depend on the order lines arrive in.
The current values live on the person's row (indexed); once a person's name or SCIM id changes,
every name (or id) they had is kept as an alias with its first and last sighting: a person
who never changed costs no alias row.

Writes: new rows are inserted at once (their id goes into the batch's rows); everything else
(completed rows, aliases, merges) is written by `finish_batch`, after the batch's rows are in,
in the batch's transaction. A merge moves the dropped row's exchanges, events, cycles,
signatures and aliases to the kept one before deleting it: nothing ever points at a deleted row.
After a rollback, call `forget`: the cache would describe rows that are not there.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from dashboard.analysis.identity import EXTERNAL, NAME, SCIM, name_key, says_gone
from dashboard.db import executemany
from dashboard.formats import codec
from dashboard.formats.scim.classify import split_path
from dashboard.formats.scim.records import Classified
from dashboard.models import ScimUser, ScimUserAlias
from dashboard.tracking.fold import give_lookups_to_the_writer, merge_users

_users = ScimUser.__table__
_aliases = ScimUserAlias.__table__
_INSERT = _users.insert()
_exchanges_name = "exchange"
_ROW = "name_key, external_id, scim_id, user_name, name_us, scim_us"  # the cache's row, in R_* order
_COLUMN = {NAME: "name_key", EXTERNAL: "external_id", SCIM: "scim_id"}
_CHUNK = 300
# A past name still finds its person this long before its first or after its last sighting: a
# lookup that arrives after a rename, for the name the person still had when it was sent.
NAME_SLACK_US = 60 * 60 * 1_000_000
CACHE_LIMIT = 10_000  # users kept between batches; more are fetched again when a batch names them
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

    def __init__(self, job_id: int, gap_us: int = 15 * 60 * 1_000_000, *, alive_ids: bool = True) -> None:
        self.job_id = job_id
        self.gap_us = gap_us  # a lookup and the write it prepares are closer than this (a cycle's gap)
        # A new SCIM id under a held name re-creates the holder only when theirs is gone (`_recreated`).
        # Off for Entra's events: their loader knows no gone ids, and a target id Entra reports for
        # a held name goes to the holder (as any new id did before this rule).
        self.alive_ids = alive_ids
        self.forget()

    def forget(self) -> None:
        """Drop everything cached (after a rollback, or to bound memory)."""
        self.rows: dict[int, list] = {}
        self.by_external: dict[str, int] = {}
        self.by_scim: dict[str, int] = {}
        self.by_name: dict[str, set[int]] = {}
        self.spans: dict[tuple[int, str, str], list] = {}  # (user, kind, key) -> [value, first_us, last_us]
        self._spans_of: dict[int, set[tuple[int, str, str]]] = {}  # user -> their keys in `spans`
        self._asked: set[tuple[str, str]] = set()
        self._dirty_rows: set[int] = set()
        self._dirty_aliases: set[tuple[int, str, str]] = set()
        self._stored_aliases: dict[tuple[int, str, str], tuple[int, int]] = {}  # as written: (first, last)
        self._history: set[tuple[int, str]] = set()  # (user, kind) whose values are kept as aliases
        self._aliases_seen = False  # the job has aliases (see _has_aliases)
        self._worked: dict[str, list[tuple[int, int]]] = {}  # name key -> (time, person) of this batch's identifying lines
        self._into: dict[int, int] = {}  # merged row -> the row it went into
        self._prov_span: dict[int, list[int]] = {}  # provisional row -> [first, last] time of its lines
        self._first_us: dict[int, int] = {}  # person -> time of their earliest line in this session
        self._shared: set[str] = set()  # names two identified people hold, named in this batch
        self._needs_seen: set[tuple[int, str, str]] = set()  # spans to widen by the person's stored exchanges
        # kind -> person -> [first, last] sighting of their current value in this session
        self._current: dict[str, dict[int, list[int]]] = {NAME: {}, SCIM: {}}
        self._gone: dict[str, int] = {}  # SCIM id -> earliest time a line said it is gone (this session)
        self.merges: list[tuple[int, int]] = []

    # -- fetching ---------------------------------------------------------------------------

    def prefetch(self, conn: Connection, found: Iterable[Classified]) -> None:
        """Load the stored people that any of `found` names and that are not cached yet."""
        self.prefetch_names(conn, ((item.user_name, item.external_id, item.scim_id) for item in found))

    def prefetch_names(self, conn: Connection, names: Iterable[tuple[str | None, str | None, str | None]]) -> None:
        """As `prefetch`, for (user_name, external_id, scim_id) triples: the people who hold these
        values now (scim_user's own indexed columns) and, for names and SCIM ids, who held them
        before (aliases, written only for people whose name or id changed)."""
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
        history = any(wanted.values()) and self._has_aliases(conn)
        for kind, keys in wanted.items():
            ordered = sorted(keys)
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                for uid, *row in self._select(
                    conn, f"SELECT id, {_ROW} FROM {_users.name} WHERE job_id = ? AND {_COLUMN[kind]} IN",
                    [self.job_id], chunk,
                ):
                    if uid not in self.rows:
                        self._cache_row(int(uid), list(row))
                if kind != EXTERNAL and history:
                    found.extend(self._select(
                        conn, f"SELECT user_id, kind, key, value, first_us, last_us FROM {_aliases.name} "
                        f"WHERE job_id = ? AND kind = ? AND key IN", [self.job_id, kind], chunk))
        self._load_rows(conn, {row[0] for row in found})
        self._cache_aliases(found)
        self._ensure_histories(conn, [(row[0], row[1]) for row in found])

    def _has_aliases(self, conn: Connection) -> bool:
        """Has anyone of this job ever changed name or id? Until then (most jobs, most of the
        time) there are no aliases to look in; asked once per batch until the answer is yes."""
        if not self._aliases_seen:
            self._aliases_seen = conn.execute(
                select(_aliases.c.id).where(_aliases.c.job_id == self.job_id).limit(1)).first() is not None
        return self._aliases_seen

    def _load_rows(self, conn: Connection, user_ids: set[int]) -> None:
        new_users = sorted(user_ids - set(self.rows))
        for start in range(0, len(new_users), _CHUNK):
            for uid, *row in self._select(
                conn, f"SELECT id, {_ROW} FROM {_users.name} WHERE id IN", [], new_users[start : start + _CHUNK],
            ):
                self._cache_row(int(uid), list(row))

    def _cache_aliases(self, found: list[tuple]) -> None:
        """Stored aliases into the cache. It does not mark their people as having a history:
        that needs all of a person's aliases of that kind (`_ensure_histories`), and `found` may
        hold only those matching the names a batch asked for."""
        for user_id, kind, key, value, first_us, last_us in found:
            if user_id not in self.rows:
                continue
            span = self.spans.get((user_id, kind, key))
            if span is None:
                self._put_span((user_id, kind, key), [value, first_us, last_us])
            else:  # seen in this session already: the stored sightings widen it
                span[1], span[2] = min(span[1], first_us), max(span[2], last_us)
            self._stored_aliases[(user_id, kind, key)] = (first_us, last_us)
            self._index(user_id, kind, key)

    def _ensure_history(self, conn: Connection, uid: int, kind: str) -> None:
        """The person's name (or SCIM id) is changing: from now on its values are kept as aliases,
        the current one included (with its sightings: this session's, else the stored ones)."""
        if (uid, kind) in self._history:
            return
        self._ensure_histories(conn, [(uid, kind)])
        self._dirty_aliases.update(k for k in self._spans_of.get(uid, ()) if k[1] == kind)

    def _ensure_histories(self, conn: Connection, pairs: Iterable[tuple[int, str]]) -> None:
        """Every stored alias of these (person, kind) pairs in the cache, and a span for each one's
        current value: what deciding whether a sighting is the current value relies on (a line
        with an old name, arriving after the rename was stored, must not make it current again)."""
        todo = sorted({pair for pair in pairs if pair not in self._history and pair[0] in self.rows})
        if not todo:
            return
        for kind in sorted({k for _u, k in todo}):
            uids = sorted({u for u, k in todo if k == kind})
            for start in range(0, len(uids), _CHUNK):
                self._cache_aliases(self._select(
                    conn, f"SELECT user_id, kind, key, value, first_us, last_us FROM {_aliases.name} "
                    f"WHERE kind = ? AND user_id IN", [kind], uids[start : start + _CHUNK]))
        for uid, kind in todo:
            self._history.add((uid, kind))
            row = self.rows[uid]
            current = row[R_NAME_KEY] if kind == NAME else row[R_SCIM]
            if current is None or (uid, kind, current) in self.spans:
                continue
            # its sightings: from the person's stored exchanges (the current value is the latest)
            since = self._since(row, kind)
            first, last = self._seen(conn, uid)
            here = self._current[kind].get(uid, [since, since])
            value = row[R_USER_NAME] if kind == NAME else current
            self._put_span((uid, kind, current), [value or current, min(first or since, since, here[0]),
                                                  max(last or since, since, here[1])])
            self._dirty_aliases.add((uid, kind, current))

    def _since(self, row: list, kind: str) -> int:
        """Since when the row's current name (SCIM id) is current; for an id only seen gone, when
        it was (this session), else 0."""
        since = row[R_NAME_US] if kind == NAME else row[R_SCIM_US]
        if since is None and kind == SCIM and row[R_SCIM] is not None:
            since = self._gone.get(row[R_SCIM])
        return since or 0

    def _put_span(self, key: tuple[int, str, str], span: list) -> list:
        self.spans[key] = span
        self._spans_of.setdefault(key[0], set()).add(key)
        return span

    def _widen_seen(self, conn: Connection) -> None:
        for uid, kind, key in sorted(self._needs_seen):
            uid = self._final(uid)
            span = self.spans.get((uid, kind, key))
            if span is not None:
                first, last = self._seen(conn, uid)
                span[1] = min(span[1], first) if first is not None else span[1]
                span[2] = max(span[2], last) if last is not None else span[2]
                self._dirty_aliases.add((uid, kind, key))
        self._needs_seen = set()

    def _seen(self, conn: Connection, uid: int) -> tuple[int | None, int | None]:
        """First and last time of the person's stored exchanges (the user/time index)."""
        rows = self._select(conn, f"SELECT MIN(ts_us), MAX(ts_us) FROM {_exchanges_name} WHERE user_id IN", [], [uid])
        return (rows[0][0], rows[0][1]) if rows else (None, None)

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

    def saw_gone(self, ids: Iterable[tuple[str, int]]) -> None:
        """These SCIM ids were said to be gone at these times (`identity.says_gone`): told for a
        whole batch before its lines are resolved, so that the order of the batch's lines does not
        matter (a re-creation is known as one even when the DELETE comes later in the batch)."""
        gone = self._gone
        for scim_id, ts_us in ids:
            if scim_id and (scim_id not in gone or ts_us < gone[scim_id]):
                gone[scim_id] = ts_us

    def resolve_names(
        self, conn: Connection, user_name: str | None, external_id: str | None, scim_id: str | None,
        ts_us: int = 0, *, gone: bool = False,
    ) -> int | None:
        """As `resolve`, for the names themselves; `ts_us` is when the line says this. `gone`: the
        line says the SCIM id no longer exists in the target (`identity.says_gone`): the id stays
        the person's, but is never made their current one again."""
        key = name_key(user_name)
        if not (key or external_id or scim_id):
            return None
        if gone and scim_id:
            self.saw_gone(((scim_id, ts_us),))
        uid: int | None = None
        keep_scim = True
        if external_id:
            uid = self.by_external.get(external_id)
            s_uid = self.by_scim.get(scim_id) if scim_id else None
            if s_uid is not None and self.rows[s_uid][R_EXTERNAL] not in (None, external_id):
                keep_scim, s_uid = False, None  # the id is another person's: never merge two people
            if uid is None:
                uid = s_uid if s_uid is not None else (self._provisional(key, before=ts_us) if key else None)
                if uid is None:
                    uid = self._create(conn, user_name, key, external_id, scim_id if keep_scim else None, ts_us)
            elif s_uid is not None and s_uid != uid:
                self._merge(keep=uid, drop=s_uid)
            if key and (named := self.by_name.get(key)) and (len(named) > 1 or uid not in named):
                spare = self._provisional(key)
                if spare is not None and spare != uid and self._joins(conn, spare, uid, key, ts_us):
                    self._merge(keep=uid, drop=spare)
                if self.rows[uid][R_SCIM] is None and not scim_id:
                    placeholder = self._placeholder(key)  # the account a lookup found under this name
                    if placeholder is not None and placeholder != uid:
                        self._merge(keep=uid, drop=placeholder)
        elif scim_id:
            uid = self.by_scim.get(scim_id)
            if uid is None and key:
                uid = (self._provisional(key, before=ts_us) or self._holder(key, ts_us, without_scim=True)
                       or (self._recreated(conn, key, ts_us, scim_id, ts_us) if self.alive_ids
                           else self._holder(key, ts_us)))
            if uid is None:
                uid = self._create(conn, user_name, key, None, scim_id, ts_us, gone=gone)
            elif key and (named := self.by_name.get(key)) and (len(named) > 1 or uid not in named):
                if self.rows[uid][R_EXTERNAL] is None:  # a placeholder by id: the person waiting for it
                    waiting = self._holder(key, ts_us, without_scim=True)
                    if (waiting is None and self.alive_ids and self.rows[uid][R_SCIM] == scim_id
                            and not self._spans_of.get(uid)):
                        # or the person whose account this one re-creates (its first line known)
                        earliest = self._earliest(conn, uid)
                        since = ts_us if earliest is None else min(ts_us, earliest)
                        waiting = self._recreated(conn, key, since, scim_id, since, other_than=uid)
                    if waiting is not None and waiting != uid:
                        self._merge(keep=waiting, drop=uid)
                        uid = waiting
                spare = self._provisional(key)
                if spare is not None and spare != uid and self._joins(conn, spare, uid, key, ts_us):
                    self._merge(keep=uid, drop=spare)
        else:
            uid = self._named_only(conn, key, ts_us)  # type: ignore[arg-type]
            if uid is None:
                uid = self._create(conn, user_name, key, None, None, ts_us)
        if self._needs_seen:
            self._widen_seen(conn)
        row = self.rows[uid]
        if external_id and row[R_EXTERNAL] is None:
            row[R_EXTERNAL] = external_id
            self.by_external.setdefault(external_id, uid)
            self._dirty_rows.add(uid)
        if scim_id and keep_scim:
            if gone:
                self._note_gone(conn, uid, scim_id, ts_us)
            else:
                self._note(conn, uid, SCIM, scim_id, scim_id, ts_us)
        if key:
            self._note(conn, uid, NAME, key, user_name, ts_us)  # type: ignore[arg-type]
            if row[R_EXTERNAL] is None and row[R_SCIM] is None:
                span = self._prov_span.setdefault(uid, [ts_us, ts_us])
                span[0], span[1] = min(span[0], ts_us), max(span[1], ts_us)
            else:  # who worked on this name when, in this batch (stored batches: their exchanges)
                worked = self._worked.get(key)
                if worked is None:
                    self._worked[key] = [(ts_us, uid)]
                else:
                    worked.append((ts_us, uid))
            if len(self.by_name.get(key, ())) > 1:  # a shared name (rare)
                self._shared.add(key)
        first = self._first_us.get(uid)
        if first is None or ts_us < first:
            self._first_us[uid] = ts_us
        return uid

    def _named_only(self, conn: Connection, key: str, ts_us: int) -> int | None:
        """The person a line that names only a userName (a lookup) is about. One identified
        holder of the name: them. Two (a collision): the one Entra worked on within a cycle's gap
        of the line (their lines here, else their stored exchanges), else nobody yet: the name's
        provisional row keeps it until a write for the name comes close enough."""
        holders = self._holders(key, ts_us, conn=conn)
        if len(holders) == 1:
            return holders[0]
        if holders:
            worked = self._worked_on(conn, key, ts_us, holders)
            if worked is not None:
                return worked
        return self._provisional(key)

    def _worked_on(self, conn: Connection, key: str, ts_us: int, holders: list[int]) -> int | None:
        gap = self.gap_us
        wanted = set(holders)
        near = [(abs(t - ts_us), 0 if t >= ts_us else 1, self._final(u)) for t, u in self._worked.get(key, ())
                if abs(t - ts_us) <= gap and self._final(u) in wanted]
        if not near:
            ids = sorted(wanted)
            rows = self._select(
                conn, f"SELECT user_id, ts_us FROM {_exchanges_name} WHERE ts_us BETWEEN ? AND ? AND user_id IN",
                [ts_us - gap, ts_us + gap], ids)
            near = [(abs(t - ts_us), 0 if t >= ts_us else 1, u) for u, t in rows]
        return min(near)[2] if near else None

    def _final(self, uid: int) -> int:
        while uid in self._into:
            uid = self._into[uid]
        return uid

    def _joins(self, conn: Connection, provisional: int, uid: int, key: str, ts_us: int) -> bool:
        """Does the name's provisional row join `uid`, the person of a line at `ts_us` naming it?
        When its lines are near (a lookup and its write), or when this is the person's earliest line
        known: in time order the person is new here, and a new person adopts the provisional row
        whose lines start before the line (`_provisional(key, before=...)`), however long before (a
        person looked up for cycles before being created). A later line of theirs that arrived
        first must not change that. Or when its lines all come after this line, which gives the
        person the name, and nobody else holds it: in time order they went to the holder (lookups
        that arrived before anything of the person)."""
        if self._near(provisional, ts_us):
            return True
        if self._span_of(provisional)[0] >= ts_us:
            return self.rows[uid][R_NAME_KEY] in (None, key) and not any(
                other != uid and (row := self.rows.get(other)) is not None and (row[R_EXTERNAL] or row[R_SCIM])
                for other in self.by_name.get(key, ()))
        earliest = self._earliest(conn, uid)
        return earliest is None or ts_us <= earliest

    def _earliest(self, conn: Connection, uid: int) -> int | None:
        """The time of the person's earliest line known (this session's and the stored exchanges)."""
        row = self.rows[uid]
        seen = [t for t in (self._first_us.get(uid), row[R_NAME_US], row[R_SCIM_US]) if t is not None]
        seen += [span[1] for k in self._spans_of.get(uid, ()) if (span := self.spans.get(k)) is not None]
        first, _last = self._seen(conn, uid)
        if first is not None:
            seen.append(first)
        return min(seen) if seen else None

    def _near(self, provisional: int, ts_us: int) -> bool:
        """Are the provisional row's lines within a cycle's gap of `ts_us` (a lookup and its write)?"""
        span = self._span_of(provisional)
        return span[0] - self.gap_us <= ts_us <= span[1] + self.gap_us

    def _placeholder(self, key: str) -> int | None:
        """The one row known by this name and a SCIM id but no externalId (an account a lookup
        found, or a PATCH placeholder named by its answer), if there is exactly one."""
        found = [u for u in self.by_name.get(key, ()) if (row := self.rows.get(u)) is not None
                 and row[R_EXTERNAL] is None and row[R_SCIM] is not None and row[R_NAME_KEY] == key]
        return found[0] if len(found) == 1 else None

    def _provisional(self, key: str, *, before: int | None = None) -> int | None:
        """The row known only by this name (no externalId, no SCIM id), if any. `before`: only
        one whose lines start no later than a cycle's gap after it (a lookup prepares the write
        that follows it, never one before it)."""
        holders = self.by_name.get(key)
        if not holders:
            return None
        rows = self.rows
        found = [u for u in holders if (row := rows.get(u)) is not None and row[R_EXTERNAL] is None
                 and row[R_SCIM] is None and row[R_NAME_KEY] == key]
        if before is not None:
            found = [u for u in found if self._span_of(u)[0] <= before + self.gap_us]
        return min(found) if found else None

    def _span_of(self, provisional: int) -> list[int]:
        span = self._prov_span.get(provisional)
        if span is None:  # stored before this session: its time is when it was named
            since = self.rows[provisional][R_NAME_US] or 0
            span = [since, since]
        return span

    def _holder(self, key: str, ts_us: int, *, without_scim: bool = False) -> int | None:
        """The identified person holding this name now, or at `ts_us`; ties: by externalId.
        `without_scim`: only one whose SCIM id is not known yet (a new id is theirs to take)."""
        holders = self._holders(key, ts_us, without_scim=without_scim)
        return holders[0] if holders else None

    def _recreated(self, conn: Connection, key: str, ts_us: int, scim_id: str, first_us: int, *,
                   other_than: int | None = None) -> int | None:
        """The identified person holding this name at `ts_us` whose account `scim_id` (first seen
        at `first_us`) re-creates: none of their SCIM ids was alive while it was. An id is alive
        from its first sighting until a line says it is gone (`says_gone`); one never seen gone is
        alive still. A second id alive at the same time is another account, so another person (two
        people who shared the name, one of them renamed since); an id created after the person's
        one was deleted (or answered 404) is the same person, created again in the target."""
        new_gone = self._gone.get(scim_id)
        for uid in self._holders(key, ts_us):
            if uid == other_than:
                continue
            if all(self._apart(conn, uid, old, first_us, new_gone) for old in self._scim_ids(uid)):
                return uid
        return None

    def _scim_ids(self, uid: int) -> set[str]:
        row = self.rows[uid]
        ids = {k for _u, kind, k in self._spans_of.get(uid, ()) if kind == SCIM}
        return ids | {row[R_SCIM]} if row[R_SCIM] else ids

    def _apart(self, conn: Connection, uid: int, old: str, first_us: int, new_gone: int | None) -> bool:
        """Were the person's id `old` and a new id (first seen at `first_us`, gone at `new_gone`)
        never alive at the same time?"""
        row = self.rows[uid]
        span = self.spans.get((uid, SCIM, old))
        old_first = span[1] if span is not None else row[R_SCIM_US] if row[R_SCIM] == old else None
        if old_first is None or (row[R_SCIM] == old and row[R_SCIM_US] is None):
            return True  # only ever seen gone
        if new_gone is not None and new_gone <= old_first:
            return True  # the new one was gone before the old one was first seen
        old_gone = self._gone_at(conn, uid, old)
        return old_gone is not None and old_gone <= first_us

    def _gone_at(self, conn: Connection, uid: int, scim_id: str) -> int | None:
        """When a line first said the person's id is gone: this session's lines, else their stored
        exchanges (a DELETE that succeeded, a request by id answered 404, whose path names it)."""
        if scim_id in self._gone:
            return self._gone[scim_id]
        found = None
        for ts_us, operation, status, blob in self._select(  # (the WHERE narrows; says_gone decides)
                conn, f"SELECT ts_us, operation, status, blob FROM {_exchanges_name} "
                      f"WHERE (status = 404 OR operation = 'delete') AND user_id IN", [], [uid]):
            if (says_gone(operation, status) and (found is None or ts_us < found)
                    and split_path(str(codec.unpack(blob).get("path") or ""))[1] == scim_id):
                found = ts_us
        if found is not None:
            self._gone[scim_id] = found
        return found

    def _holders(self, key: str, ts_us: int, *, without_scim: bool = False,
                 conn: Connection | None = None) -> list[int]:
        """The identified people holding this name now, or at `ts_us`, nearest first. With `conn`
        (a lookup), also a person whose first name it is, for a line before they had it: in time
        order the line went to the name's provisional row, which their first line adopted."""
        candidates = []
        for uid in self.by_name.get(key, ()):
            row = self.rows.get(uid)
            if row is None or (row[R_EXTERNAL] is None and row[R_SCIM] is None):
                continue
            if without_scim and row[R_SCIM] is not None:
                continue
            span = self.spans.get((uid, NAME, key))
            inside = span is not None and span[1] - NAME_SLACK_US <= ts_us <= span[2] + NAME_SLACK_US
            if row[R_NAME_KEY] != key and not inside and not (
                    conn is not None and span is not None and ts_us < span[1] and self._first_name(conn, uid, span)):
                continue
            distance = 0 if span is None or span[1] <= ts_us <= span[2] else min(abs(ts_us - span[1]), abs(ts_us - span[2]))
            candidates.append((distance, row[R_EXTERNAL] is None, row[R_EXTERNAL] or "", row[R_SCIM] or "", uid))
        return [c[-1] for c in sorted(candidates)]

    def _first_name(self, conn: Connection, uid: int, span: list) -> bool:
        """Is `span` (a past name's sightings) of the person's first name: no line of theirs
        before it? (Stored sightings may be late by up to TIME_GRAIN_US.)"""
        earliest = self._earliest(conn, uid)
        return earliest is None or span[1] <= earliest + TIME_GRAIN_US

    def _note_gone(self, conn: Connection, uid: int, scim_id: str, ts_us: int) -> None:
        """A line says the person's id `scim_id` is gone (the line resolved to them by that id, or
        made their row). It stays theirs (it finds them) but does not become their current id, nor
        widen its sightings: the current id is the one seen alive latest. An id only ever seen
        gone is current only while the person has no other (`scim_us` empty)."""
        row = self.rows[uid]
        if row[R_SCIM] is None:
            row[R_SCIM], row[R_SCIM_US] = scim_id, None
            self._index(uid, SCIM, scim_id)
            self._dirty_rows.add(uid)
        elif row[R_SCIM] != scim_id and (uid, SCIM, scim_id) not in self.spans:  # (not known as theirs yet)
            self._ensure_history(conn, uid, SCIM)
            self._sighting(uid, SCIM, scim_id, scim_id, ts_us)

    def _note(self, conn: Connection, uid: int, kind: str, key: str, value: str, ts_us: int) -> None:
        """Record that the person went by this name / had this SCIM id at `ts_us`.

        Sightings are tracked (as spans) only for people whose name (id) has changed: they are
        what the aliases keep. Everyone else's current value and its time are on the row."""
        row = self.rows[uid]
        name = kind == NAME
        current = row[R_NAME_KEY] if name else row[R_SCIM]
        if len(value) > 512:
            value = value[:512]
        if current == key and (not name or row[R_USER_NAME] == value) and (uid, kind) not in self._history:
            # the common case: the person seen again under their current value
            at = R_NAME_US if name else R_SCIM_US
            if row[at] is None or ts_us < row[at]:
                row[at] = ts_us  # an earlier sighting of the current value, arrived late (or its first alive)
                self._dirty_rows.add(uid)
            self._saw_current(uid, kind, ts_us, fresh=False)
            return
        if current is not None and current != key:
            self._ensure_history(conn, uid, kind)  # a second name (or id): keep them all from now on
        if (uid, kind) in self._history:
            self._sighting(uid, kind, key, value, ts_us)
        elif current is None:
            self._index(uid, kind, key)
        # The current value: the one of the latest line. `name_us` / `scim_us` say since when it is
        # current, and are written only when it changes (a person seen again rewrites nothing).
        at = R_NAME_US if name else R_SCIM_US
        if current is None:
            switch = True
        elif current != key:  # (the person has history now: the current value's span is known)
            span = self.spans.get((uid, kind, current))
            switch = span is None or ts_us >= span[2] or (not name and row[at] is None)  # (that id only seen gone)
        else:
            switch = name and row[R_USER_NAME] != value and (row[at] is None or ts_us >= row[at])  # a respelling
            if not switch and (row[at] is None or ts_us < row[at]) and (not name or row[R_USER_NAME] == value):
                # an earlier sighting of the current value, arrived late (an earlier sighting of
                # another spelling of it does not move `name_us`: a later one would then win)
                row[at] = ts_us
                self._dirty_rows.add(uid)
        if switch:
            if name:
                row[R_NAME_KEY], row[R_USER_NAME] = key, value
            else:
                row[R_SCIM] = key
                self.by_scim[key] = uid
            row[at] = ts_us
            self._dirty_rows.add(uid)
        if (row[R_NAME_KEY] if name else row[R_SCIM]) == key:  # a sighting of the current value
            self._saw_current(uid, kind, ts_us, fresh=current != key)

    def _saw_current(self, uid: int, kind: str, ts_us: int, *, fresh: bool) -> None:
        """A sighting of the person's current value (`fresh`: it has just become current)."""
        here = self._current[kind].get(uid)
        if here is None or fresh:
            self._current[kind][uid] = [ts_us, ts_us]
        elif ts_us < here[0]:
            here[0] = ts_us
        elif ts_us > here[1]:
            here[1] = ts_us

    def _sighting(self, uid: int, kind: str, key: str, value: str, ts_us: int) -> None:
        span = self.spans.get((uid, kind, key))
        if span is None:
            self._put_span((uid, kind, key), [value, ts_us, ts_us])
            self._index(uid, kind, key)
            self._dirty_aliases.add((uid, kind, key))
        elif ts_us < span[1] or ts_us > span[2]:
            if ts_us > span[2]:
                span[0] = value
            span[1], span[2] = min(span[1], ts_us), max(span[2], ts_us)
            stored = self._stored_aliases.get((uid, kind, key))
            if stored is None or span[1] < stored[0] - TIME_GRAIN_US or span[2] > stored[1] + TIME_GRAIN_US:
                self._dirty_aliases.add((uid, kind, key))

    def _create(
        self, conn: Connection, user_name: str | None, key: str | None, external_id: str | None,
        scim_id: str | None, ts_us: int, *, gone: bool = False,
    ) -> int:
        name_us = ts_us if key else None
        scim_us = ts_us if scim_id and not gone else None  # (an id only seen gone: not since any time)
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
        self._into[drop] = keep
        mine, theirs = self._first_us.get(keep), self._first_us.pop(drop, None)
        if theirs is not None and (mine is None or theirs < mine):
            self._first_us[keep] = theirs
        gone = self._prov_span.pop(drop, None)
        if gone is not None and kept[R_EXTERNAL] is None and kept[R_SCIM] is None:
            self._prov_span[keep] = gone
        self._dirty_rows.discard(drop)
        for kind, at, label in ((NAME, R_NAME_US, R_USER_NAME), (SCIM, R_SCIM_US, R_SCIM)):
            mine, theirs = kept[R_NAME_KEY if kind == NAME else R_SCIM], dropped[R_NAME_KEY if kind == NAME else R_SCIM]
            if mine and theirs and mine != theirs:  # the person had two names (ids): keep both
                if (keep, kind, mine) not in self.spans:  # all the kept row's lines so far bore its value
                    since = self._since(kept, kind)
                    first, last = self._current[kind].get(keep, [since, since])
                    self._put_span((keep, kind, mine), [kept[label] or mine, min(first, since), max(last, since)])
                    self._needs_seen.add((keep, kind, mine))
                if (keep, kind, theirs) not in self.spans and (drop, kind, theirs) not in self.spans:
                    since = self._since(dropped, kind)
                    first, last = self._prov_span.get(drop) or self._current[kind].get(drop) or [since, since]
                    self._put_span((keep, kind, theirs), [dropped[label] or theirs, first, last])
                self._history.add((keep, kind))
        if dropped[R_NAME_KEY] and (kept[R_NAME_KEY] is None or (dropped[R_NAME_US] or 0) > (kept[R_NAME_US] or 0)):
            kept[R_NAME_KEY], kept[R_USER_NAME], kept[R_NAME_US] = dropped[R_NAME_KEY], dropped[R_USER_NAME], dropped[R_NAME_US]
        if dropped[R_SCIM] and (kept[R_SCIM] is None or (dropped[R_SCIM_US] or 0) > (kept[R_SCIM_US] or 0)):
            kept[R_SCIM], kept[R_SCIM_US] = dropped[R_SCIM], dropped[R_SCIM_US]
        if kept[R_EXTERNAL] is None:
            kept[R_EXTERNAL] = dropped[R_EXTERNAL]
        self._dirty_rows.add(keep)
        # what points at the dropped row: its own values and those of its spans (nothing else does)
        known = self._spans_of.get(drop, set())
        if dropped[R_EXTERNAL] and self.by_external.get(dropped[R_EXTERNAL]) == drop:
            self.by_external[dropped[R_EXTERNAL]] = keep
        for key in {dropped[R_SCIM], *(k for _u, kind, k in known if kind == SCIM)} - {None}:
            if self.by_scim.get(key) == drop:
                self.by_scim[key] = keep
        for key in {dropped[R_NAME_KEY], *(k for _u, kind, k in known if kind == NAME)} - {None}:
            holders = self.by_name.get(key)
            if holders is not None and drop in holders:
                holders.discard(drop)
                holders.add(keep)
        for (uid, kind, key) in sorted(self._spans_of.pop(drop, ())):
            value, first, last = self.spans.pop((uid, kind, key))
            self._dirty_aliases.discard((uid, kind, key))
            self._stored_aliases.pop((uid, kind, key), None)
            mine = self.spans.get((keep, kind, key))
            if mine is None:
                self._put_span((keep, kind, key), [value, first, last])
            else:
                if last > mine[2]:
                    mine[0] = value
                mine[1], mine[2] = min(mine[1], first), max(mine[2], last)
            self._dirty_aliases.add((keep, kind, key))
        for kind in (NAME, SCIM):
            if (drop, kind) in self._history:
                self._history.add((keep, kind))
            keys = [k for k in self._spans_of.get(keep, ()) if k[1] == kind]
            if len(keys) > 1:
                self._history.add((keep, kind))
            if (keep, kind) in self._history:
                self._dirty_aliases.update(keys)
            else:
                self._dirty_aliases.difference_update(keys)

    # -- writing ----------------------------------------------------------------------------

    def finish_batch(self, conn: Connection) -> None:
        """Write what this batch learnt (merges, completed rows, aliases), in its transaction.

        Call it after the batch's rows (which may name a dropped row) are inserted and folded."""
        for keep, drop in self.merges:
            merge_users(conn, keep=keep, drop=drop)
        self.merges = []
        self._worked = {}  # the batch's lines are stored now: its exchanges answer from here on
        if self._shared:
            for key in sorted(self._shared):
                finals = {self._final(u) for u in self.by_name.get(key, ())}
                holders = sorted(u for u in finals if (row := self.rows.get(u)) and (row[R_EXTERNAL] or row[R_SCIM]))
                if len(holders) > 1:
                    give_lookups_to_the_writer(conn, holders, self.gap_us,
                                               {u for u in holders if self.rows[u][R_SCIM]})
            self._shared = set()
        if self._dirty_rows:
            params = [
                (row[R_USER_NAME], row[R_NAME_KEY], row[R_EXTERNAL], row[R_SCIM], row[R_NAME_US], row[R_SCIM_US], uid)
                for uid in sorted(self._dirty_rows) if (row := self.rows.get(uid)) is not None
            ]
            executemany(conn, _FILL_SQL, params)
            self._dirty_rows = set()
        if self._dirty_aliases:
            self._write_aliases(conn)

    def _write_aliases(self, conn: Connection) -> None:
        params = []
        for uid, kind, key in sorted(self._dirty_aliases):
            if uid not in self.rows:
                continue
            value, first, last = self.spans[(uid, kind, key)]
            params.append((self.job_id, uid, kind, key, value, first, last))
            self._stored_aliases[(uid, kind, key)] = (first, last)
        # One upsert for new and known aliases alike: a merge may have moved a stored alias of the
        # dropped row onto the kept one already, and the cache holds the whole span.
        executemany(conn, _ALIAS_UPSERT_SQL, params)
        self._dirty_aliases = set()
        self._aliases_seen = self._aliases_seen or bool(params)


_FILL_SQL = (f"UPDATE {_users.name} SET user_name = ?, name_key = ?, external_id = ?, scim_id = ?, name_us = ?, "
             f"scim_us = ? WHERE id = ?")
_ALIAS_UPSERT_SQL = (
    f"INSERT INTO {_aliases.name} (job_id, user_id, kind, key, value, first_us, last_us) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (user_id, kind, key) DO UPDATE SET value = excluded.value, first_us = excluded.first_us, "
    "last_us = excluded.last_us"
)
# An alias's sightings are rewritten when they move by more than this (a person seen again in
# the same cycle rewrites nothing); the cache keeps them exact, so resolving is not affected.
TIME_GRAIN_US = 5 * 60 * 1_000_000

