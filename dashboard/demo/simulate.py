"""Simulate Entra provisioning uniFLOW Online: a v1 SCIM request log plus its ground truth.

The lines follow `scim-request-log-v1.md`; the ground truth says what each cycle did, so the
analysis code can be checked against it. Same `SimConfig` -> byte-identical output (one
`random.Random(seed)` drives everything). Keys of a line, in order: ts, method, path, query (GET
only), status, duration_ms, request_id (`with_request_ids`), client, job, cycle_id
(`with_cycle_ids`), request_headers (authorization, accept, content-type on POST/PATCH),
request_body (POST/PATCH), response_body (absent on a 204, null on status 0).

Cycles
    Index 0 is "initial", every later index "incremental". A cycle starts with Entra's connection
    test when `connection_test` is on: `GET {base}/Users?filter=externalId eq "<random guid>"` ->
    200 empty ListResponse. Within a cycle timestamps strictly increase (about
    `requests_per_second`). The gap between a cycle's last line and the next cycle's first line is
    `interval` +- 3 min, except after an auth-outage or lookup-404 cycle (Entra quarantines the job
    on both): then 6 h, 12 h after a second such cycle in a row, 24 h after a third and later.
    `started_at` / `ended_at` are the timestamps of a cycle's first and last line.

Per-user request sequences (`{base}` = `base_path`; lookups are
`GET {base}/Users?filter=userName eq "<userName>"`, percent-encoded in about half the lines)
    create   lookup -> 200 empty ListResponse -> POST {base}/Users -> 201 with the resource and `id`
    update   lookup -> 200 ListResponse with the resource -> PATCH {base}/Users/{id} -> 200 resource
    disable  lookup (found) -> PATCH Replace `active` "False" (boolean false with the flag) -> 200
    enable   lookup (found, active false) -> PATCH Replace `active` "True" / true -> 200
    delete   DELETE {base}/Users/{id} -> 204, no lookup (Entra uses the cached id)
    none     lookup (found) and nothing else: the change touched no mapped attribute (skipped)
    A user whose create failed with 409 may later be matched instead: the lookup finds a target
    account without `externalId` and a PATCH `Add externalId` follows (operation "update").
    Without `flag_scim062020` ops are "Replace"/"Add" and `active` is the string "True"/"False";
    with it ops are lowercase, `active` boolean, and several attributes go into one path-less
    `replace` whose value has dotted/URN keys. Secrets are in the output on purpose: the bearer
    token, `pin` and `cardRegistrationCode` in POST bodies, resources, PATCH path forms
    (`urn:...:uniFLOWOnline:2.0:User:pin`) and path-less value objects (card re-registration).

Incremental cycles touch, in this order: every user with a failed operation from an earlier
cycle (retried: lookup + that operation), then shuffled: changed users (`change_rate` per active
user; 30 % are redundant -> "none"), leavers (`leave_rate` per active user -> disable), the
deletion storm (clamped to the active users left), hard deletes (`delete_rate` x initial users,
taken from disabled users), joiners (`join_rate` x initial users; one in five re-enables a
disabled user when there is one, the rest are new users).

Failures (`failure_rate` per touched user and cycle) answer SCIM Errors with user-specific details
(with `echo_secret_values`, a refused pin or card value is quoted in one refusal in two, as real
targets do: "Attribute 'pin' value '1234' does not satisfy the pin policy"):
create 409 uniqueness / 400 invalidValue / 500 / 429 / 0; update 400 / 404 / 500 / 429 / 0;
disable and enable 404 / 500 / 429 / 0; delete 500 / 429 / 0. 429, 500 and 0 hit the lookup in
about 30 % of cases (then nothing else is sent). Status 0 has a null response body. 409 and 400
persist for a few cycles, the others usually clear on the next retry. In an auth-outage cycle every
request (the connection test, lookups, DELETEs) answers 401; in a lookup-404 cycle every lookup
(the connection test too) answers 404 "Resource not found" (a DELETE by id is no lookup and goes
through). The write after a failed lookup is not sent; the user fails and is retried next cycle.

Ground truth, per cycle and user (a user appears at most once per cycle)
    operation  the write that was sent in the cycle: create (POST), update (PATCH of attributes,
               including the 409 match), disable / enable (PATCH of `active` only), delete (DELETE),
               or none (only a lookup was sent: a skip, or a lookup that failed)
    outcome    succeeded (the write answered 2xx), failed (the last request answered >= 400 or 0),
               skipped (lookup found the user, nothing to write)
    status     the status of the user's last request in the cycle
    attempts   consecutive cycles in which this user's pending operation has been tried (1 = first)
    counts     per bucket create / update / disable / delete / other (enable and none), the
               number of success / failure / skipped users
`requests` counts lines including the connection test. With `max_lines` the output stops exactly
after that many lines (a prefix of the unlimited output); the cut cycle has `"truncated": true`
and leaves out the user whose requests were cut.

Realities of identity (`SimConfig.realities`, all off by default, all on in `SimConfig.realistic()`;
or scripted per person and cycle with `SimConfig(events=(SimEvent(...), ...))`). A person is
Entra's source object: their externalId never changes, their userName may; the target's SCIM id
changes when the user is created again. Nothing here draws from the random stream unless a
reality or an event is on, so the output of a config without them is unchanged.
    rename     the userName changes between cycles (same externalId). Entra looks the new name
               up and finds nothing; then either it POSTs it and the target answers 409
               uniqueness ("A user with externalId ... already exists"; operation create,
               failed; one or two cycles), and the retry matches by id, or at once (the share
               `1 - rename_conflict_share`): PATCH /Users/{id} Replace userName -> 200 (update)
    variant    some people are born with a userName holding a no-break space (U+00A0), a
               full-width @ (U+FF20) or decomposed accents (NFD); it is corrected later to the
               plain form (the same name after NFKC and casefold) like a rename; and case-only
               changes: the target's filter ignores case, so the lookup finds the user and a
               PATCH Replace userName follows
    collision  two joiners (different externalId) with one userName in one cycle: both looked
               up (nothing), both POSTed; the second answers 409 uniqueness ("User '...' already
               exists"). Entra retries that create (a POST, no lookup; 409 while the name is
               held) until the person's name is fixed (a rename: lookup, POST -> 201). No line
               names only a shared name without telling whose it is: while the name's holder is
               at work in a cycle the failing person waits, the holder's lookups do not fail (a
               failure falls on the write), holders sit out outage cycles, and no collision
               starts in an outage cycle
    recreate   the target deleted the user (not in the log); Entra finds nothing and POSTs ->
               201 with a new id
    scope      half the leavers go out of scope by DELETE (not a disable); deleted people come
               back in scope and are created again (new id); disabled ones are enabled (as before)
    unmatched  a few new people are incomplete for a cycle or two: looked up, nothing found,
               nothing written (a skip whose lookup did not find them: not provisioned)
    disorder   the lines as a shipper delivers them: some creates held back until after a later
               PATCH or DELETE of their id, some lines a little late, `duplicate_rate` of them
               twice (same request_id). Only the order changes; `requests` counts lines once
Ground truth of identity: `GroundTruth.people` (PersonTruth by externalId: names over time,
SCIM ids, outcome per cycle, final state: in_sync, failing, disabled, deleted,
never_provisioned), `CycleTruth.people` (outcome per externalId; `users` stays keyed by userName,
which two people may share), and with `record_events` one PersonEvent per person and cycle, from
which dashboard/entra/generate.py writes Entra's provisioning logs of the same run.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import math
import random
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import IO, Any
from urllib.parse import quote_plus

import orjson

from dashboard.demo.truth import (
    CycleTruth,
    GroundTruth,
    Operation,
    Outcome,
    PersonEvent,
    PersonTruth,
    SimConfig,
    SimEvent,
    UserOutcome,
    format_ts,
    name_key,
)

CLIENT = "Microsoft Entra SCIM Client"  # Entra's User-Agent is not documented; a stand-in


DOMAIN = "contoso.com"


CORE = "urn:ietf:params:scim:schemas:core:2.0:User"


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


UNIFLOW = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"


LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


QUARANTINE_GAPS = (timedelta(hours=6), timedelta(hours=12), timedelta(hours=24))


TIMEOUT_MS = 30000.0  # Entra's HTTP time-out is not documented


AUTH_DETAIL = "Bearer token is invalid or expired"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)




def simulate(config: SimConfig) -> tuple[Iterator[dict[str, Any]], GroundTruth]:
    """Lines as dicts; the ground truth is complete once the iterator is exhausted."""
    lines, truth = simulate_lines(config)
    return (orjson.loads(line) for line in lines), truth


def simulate_lines(config: SimConfig) -> tuple[Iterator[bytes], GroundTruth]:
    """Lines as JSON bytes ending in b"\\n"; the ground truth fills in as they are consumed."""
    truth = GroundTruth(config)
    lines = _Simulator(config, truth).run()
    if "disorder" in config.realities:
        lines = _disorder(lines, config)
    return lines, truth


def write_log(config: SimConfig, out: IO[bytes]) -> GroundTruth:
    """Write the JSON lines to `out` in chunks; return the complete ground truth."""
    lines, truth = simulate_lines(config)
    chunk: list[bytes] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= 8192:
            out.write(b"".join(chunk))
            chunk.clear()
    out.write(b"".join(chunk))
    return truth


def _disorder(lines: Iterator[bytes], config: SimConfig) -> Iterator[bytes]:
    """The lines as a log shipper may deliver them: a create held back until after a later
    request that names its id (a PATCH or DELETE before the create), some lines a little late,
    some twice (same bytes, same request_id). Its own random stream: the lines themselves are
    those of the run without disorder."""
    rng = random.Random(f"disorder/{config.job}/{config.seed}")
    later: list[tuple[int, int, bytes, str | None]] = []  # (due, order, line, id it names)
    held: dict[str, tuple[int, bytes]] = {}  # created id -> (due, the POST line)
    order = 0

    def emit(line: bytes, names: str | None) -> list[bytes]:
        out = [line]
        if names is not None and names in held:
            out.append(held.pop(names)[1])
        return out

    for position, line in enumerate(lines):
        while later and later[0][0] <= position:
            _, _, due_line, names = heapq.heappop(later)
            yield from emit(due_line, names)
        for key in [k for k, (due, _) in held.items() if due <= position]:
            yield held.pop(key)[1]
        data = orjson.loads(line)
        names = data["path"].partition("/Users/")[2] or None  # the id a PATCH or DELETE names
        if rng.random() < config.duplicate_rate:
            heapq.heappush(later, (position + rng.randint(1, 50), order, line, names))
            order += 1
        if data["method"] == "POST" and data["status"] == 201 and rng.random() < 0.5:
            held[data["response_body"]["id"]] = (position + 400, line)
        elif rng.random() < 0.03:
            heapq.heappush(later, (position + rng.randint(1, 30), order, line, names))
            order += 1
        else:
            yield from emit(line, names)
    while later:
        _, _, due_line, names = heapq.heappop(later)
        yield from emit(due_line, names)
    for _, line in sorted(held.values()):
        yield line


def _at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status)}
    if scim_type:
        body["scimType"] = scim_type
    body["detail"] = detail
    return body


_EMPTY_LIST = orjson.Fragment(orjson.dumps(
    {"schemas": [LIST_RESPONSE], "totalResults": 0, "Resources": [], "startIndex": 1,
     "itemsPerPage": 20}))


_FOUND_HEAD = b'{"schemas":["' + LIST_RESPONSE.encode() + b'"],"totalResults":1,"Resources":['


_FOUND_TAIL = b'],"startIndex":1,"itemsPerPage":20}'


_RESOURCE_HEAD = orjson.dumps({"schemas": [CORE, ENTERPRISE, UNIFLOW]})[:-1] + b","


_POST_TAIL = b',"active":true,"meta":{"resourceType":"User"}}'


_AUTH_ERROR = _error(401, AUTH_DETAIL)


_LOOKUP_404 = _error(404, "Resource not found")


# (kind, weight) of a failure per intended operation; "adopt" is the PATCH after a 409 match
_FAILURES = {
    "create": (("409", 30), ("400", 25), ("500", 15), ("429", 20), ("0", 10)),
    "update": (("400", 30), ("404", 20), ("500", 15), ("429", 25), ("0", 10)),
    "disable": (("404", 30), ("500", 25), ("429", 30), ("0", 15)),
    "delete": (("500", 35), ("429", 45), ("0", 20)),
    "none": (("500", 35), ("429", 45), ("0", 20)),
}


_FAILURES["adopt"] = _FAILURES["update"]


_FAILURES["enable"] = _FAILURES["disable"]


_OMIT = object()  # no response_body field at all (a 204), unlike None (no response: status 0)


_TRANSIENT = frozenset({"500", "429", "0"})


_IDENTITY_OPS = frozenset({"rename", "case", "recreate", "fix", "collide", "unmatched"})


_OPERATION = {"create": Operation.CREATE, "update": Operation.UPDATE, "adopt": Operation.UPDATE,
              "disable": Operation.DISABLE, "enable": Operation.ENABLE,
              "delete": Operation.DELETE, "none": Operation.NONE}


_FIRST = (("Ryan", "ryan"), ("Emma", "emma"), ("Liam", "liam"), ("Olivia", "olivia"),
          ("Noah", "noah"), ("Ava", "ava"), ("Lucas", "lucas"), ("Mia", "mia"), ("Ethan", "ethan"),
          ("Sofia", "sofia"), ("Mateo", "mateo"), ("Zoë", "zoe"), ("José", "jose"),
          ("Łukasz", "lukasz"), ("Aiko", "aiko"), ("Priya", "priya"), ("Omar", "omar"),
          ("Fatima", "fatima"), ("Chen", "chen"), ("Hannah", "hannah"), ("Jonas", "jonas"),
          ("Léa", "lea"), ("Marta", "marta"), ("Kwame", "kwame"), ("Ingrid", "ingrid"),
          ("Diego", "diego"), ("Yuki", "yuki"), ("Anna", "anna"), ("Ben", "ben"),
          ("Clara", "clara"))


_LAST = (("Kim", "kim"), ("Smith", "smith"), ("Müller", "mueller"), ("O'Brien", "obrien"),
         ("Nguyễn", "nguyen"), ("Garcia", "garcia"), ("Rossi", "rossi"), ("Jansen", "jansen"),
         ("Kowalski", "kowalski"), ("Tanaka", "tanaka"), ("Patel", "patel"), ("Haddad", "haddad"),
         ("Wang", "wang"), ("Schmidt", "schmidt"), ("Dubois", "dubois"), ("Silva", "silva"),
         ("Andersson", "andersson"), ("Mensah", "mensah"), ("Novak", "novak"), ("Lopez", "lopez"),
         ("Fischer", "fischer"), ("Brown", "brown"), ("Ivanova", "ivanova"), ("Costa", "costa"))


_TITLES = ("Accountant", "Sales Manager", "Engineer", "Senior Engineer", "Designer", "Analyst",
           "Office Manager", "HR Partner", "Support Specialist", "Team Lead", "Architect")


_DEPARTMENTS = ("Finance", "Sales", "Engineering", "Marketing", "Operations", "HR", "Legal",
                "Support", "Facilities", "Research")


_STREETS = ("Main Street", "Harbour Road", "Lindenallee", "Rue de la Paix", "Elm Avenue",
            "Station Road", "Kungsgatan", "Via Roma")


_UPDATE_KINDS = (("rename", 10), ("title", 15), ("department", 10), ("reorg", 10), ("phone", 10),
                 ("address", 5), ("email", 5), ("pin", 15), ("card", 20))


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


_PHONE_PATH = 'phoneNumbers[type eq "work"].value'


_EMAIL_PATH = 'emails[type eq "work"].value'


_SECRET_ATTRS = ("pin", "cardNumber", "cardRegistrationCode")


class _User:
    __slots__ = ("index", "user_name", "external_id", "given", "family", "email", "title",
                 "department", "street", "phone", "card_number", "card_code", "local_username",
                 "pin", "id", "state", "target", "target_active", "created_ts", "pending",
                 "op", "changes", "pathless", "fail_kind", "fail_left", "attempts", "adopt",
                 "query_plain", "query_encoded", "attrs", "sid", "clean_name", "prev_name",
                 "conflicts", "complete_from")

    def __init__(self, index: int, user_name: str) -> None:
        self.index, self.user_name = index, user_name
        self.external_id = user_name.split("@", 1)[0]  # mailNickname-like, not a GUID
        self.query_plain = f'filter=userName eq "{user_name}"'
        self.query_encoded = "filter=userName+eq+%22" + user_name.replace("@", "%40") + "%22"
        self.id: str | None = None
        self.state = "new"  # new, active, disabled, deleted: as the target knows it
        self.target = b""  # the target's resource, serialised
        self.target_active = True
        self.created_ts = ""
        self.pending: str | None = None  # the intended operation of a failed attempt
        self.op = "create"  # what this cycle does to the user
        self.changes: tuple[tuple[str, Any, bool], ...] = ()  # (path, value, added) of an update
        self.pathless = False  # send the changes as one path-less value object
        self.fail_kind: str | None = None
        self.fail_left = 0
        self.attempts = 0
        self.adopt = False
        self.attrs = b""  # cached _attributes()
        self.sid: str | None = None  # the target's id as the lines last showed it
        self.clean_name: str | None = None  # a name born with a Unicode variant: its plain form
        self.prev_name: str | None = None  # the userName before a rename still under way
        self.conflicts = 0  # 409s still to come for a rename answered "externalId exists"
        self.complete_from = 0  # the cycle from which Entra has what it needs to create them


class _Simulator:
    def __init__(self, config: SimConfig, truth: GroundTruth) -> None:
        self.cfg, self.truth = config, truth
        self.rng = random.Random(config.seed)
        self.flag = config.flag_scim062020
        self.users_path = config.base_path.rstrip("/") + "/Users"
        self.span = max(0.0, 2000.0 / config.requests_per_second - 2.0)
        self.next_ms = (config.start - EPOCH) // timedelta(milliseconds=1)
        self.last_ms = self.next_ms
        self.minute, self.prefix = -1, ""
        self.seconds = _seconds()
        self.line_no = 0
        digest = hashlib.blake2s(f"{config.job}\0{config.seed}".encode(), digest_size=4)
        self.rid_prefix = digest.hexdigest() + "-"
        self.cycle_id = ""
        self.cycle_index = 0
        self.outage: int | None = None  # 401 or 404 while a scenario cycle runs
        read = {"authorization": "Bearer " + self._token(), "accept": "application/scim+json"}
        write = {**read, "content-type": "application/scim+json"}
        self.read_headers = orjson.Fragment(orjson.dumps(read))
        self.write_headers = orjson.Fragment(orjson.dumps(write))
        self.taken: dict[str, int] = {}
        self.user_count = 0
        self.generated = 0  # lines built; lines are emitted in the same order
        self.users: list[_User] = truth.sim_users  # the truth finds a plain run's people there
        self.users.extend(self._new_user() for _ in range(config.users))
        self.active: dict[int, _User] = {}
        self.disabled: dict[int, _User] = {}
        self.pending: dict[int, _User] = {}
        self.outcomes: dict[tuple[Outcome, Operation, int, int], UserOutcome] = {}
        self.foreign_created = format_ts(config.start - timedelta(days=30))
        # realities of identity: nothing below draws from `rng` unless config.identity
        self.identity = config.identity
        self.held: dict[str, _User] = {}  # the target's userNames (case-insensitive) -> holder
        self.removed: dict[int, _User] = {}  # deleted users without a pending operation
        self.pair_of: dict[int, tuple[_User, _User]] = {}  # this cycle's colliding joiners
        self.script: dict[int, list[SimEvent]] = {}
        self.scripted_pairs: dict[int, list[tuple[_User, _User]]] = {}
        self.join_cycle: dict[int, int] = {}  # scripted persons who join after cycle 0
        self.shared_keys: set[str] = set()  # name keys a person failing on a collision holds
        if self.identity:
            self._setup_identity()

    # --- the cycle loop -------------------------------------------------------------------

    def run(self) -> Iterator[bytes]:
        cfg = self.cfg
        last = cfg.cycles if cfg.silent_after_cycle is None else min(
            cfg.cycles, cfg.silent_after_cycle + 1)
        budget = math.inf if cfg.max_lines is None else cfg.max_lines
        quarantined = 0
        for index in range(last):
            if self.line_no >= budget:
                return
            if index:
                self.next_ms = self.last_ms + self._gap(quarantined)
            scenario = index in cfg.auth_outage_cycles or index in cfg.lookup_404_cycles
            quarantined = quarantined + 1 if scenario else 0
            truncated = yield from self._emit_cycle(index, budget)
            if truncated:
                return

    def _emit_cycle(self, index: int, budget: float) -> Iterator[bytes]:
        self.cycle_id = self._guid()
        self.cycle_index = index
        self.outage = (401 if index in self.cfg.auth_outage_cycles
                       else 404 if index in self.cfg.lookup_404_cycles else None)
        started_ms, first_line = self.next_ms, self.line_no
        users: dict[str, UserOutcome] = {}
        people: dict[str, UserOutcome] = {}
        record = self.identity or self.cfg.record_events
        test_status: int | None = None
        truncated, last_line = False, b""
        for lines, user, outcome in self._units(index):
            for line in lines:
                if self.line_no >= budget:
                    truncated = True
                    break
                self.line_no += 1
                last_line = line
                yield line
            if truncated:
                break
            if user is not None:
                users[user.user_name] = outcome
                people[user.external_id] = outcome
                if record:
                    self._record(index, user, outcome, lines[-1])
            elif outcome.__class__ is int:
                test_status = outcome
            else:  # a unit of several people: (user, outcome, the user's last line) each
                for one, result, last in outcome:
                    users[one.user_name] = result
                    people[one.external_id] = result
                    self._record(index, one, result, last)
        ended_ms = self.last_ms
        if truncated:
            ended_ms = _ms_of(last_line)
        elif self.line_no == first_line:  # nothing to do and no connection test: no lines at all
            ended_ms = self.last_ms = started_ms
        self.truth.cycles.append(CycleTruth(
            index, self.cycle_id, "initial" if index == 0 else "incremental", _at(started_ms),
            _at(ended_ms), self.line_no - first_line, self.cfg.connection_test, test_status,
            users, truncated, people))
        return truncated

    def _record(self, index: int, user: _User, outcome: UserOutcome, last: bytes) -> None:
        """The person's truth after their unit of a cycle: names, ids, outcome (and event)."""
        people, sid = self.truth.recorded, user.sid
        person = people.get(user.external_id)
        if person is None:
            people[user.external_id] = PersonTruth(
                user.external_id, self.cfg.job, [(index, user.user_name)],
                [] if sid is None else [sid], {index: outcome})
        else:
            names = person.names
            if names[-1][1] != user.user_name:
                names.append((index, user.user_name))
            if sid is not None and (not person.scim_ids or person.scim_ids[-1] != sid):
                person.scim_ids.append(sid)
            person.cycles[index] = outcome
        if self.cfg.record_events:
            self.truth.events.append(self._event(index, people[user.external_id], user, outcome,
                                                 last))
        if user.prev_name is not None and outcome.outcome is not Outcome.FAILED:
            user.prev_name = None

    def _event(self, index: int, person: PersonTruth, user: _User, outcome: UserOutcome,
               last: bytes) -> PersonEvent:
        data = orjson.loads(last)
        body = data.get("response_body")
        scim_type = detail = None
        if isinstance(body, dict) and body.get("schemas") == [ERROR]:
            scim_type, detail = body.get("scimType"), body.get("detail")
        at = datetime.strptime(data["ts"], "%Y-%m-%dT%H:%M:%S.%f%z")
        return PersonEvent(index, self.cycle_id, at, user.external_id, person.source_id,
                           user.user_name, user.prev_name, user.op, outcome, scim_type, detail,
                           user.sid, data["duration_ms"])

    def _units(self, index: int) -> Iterator[tuple[list[bytes], _User | None, Any]]:
        """The cycle's units: (lines, user, outcome), (lines, None, connection test status) or
        (lines, None, ((user, outcome, the user's last line), ...)); a unit's lines are emitted
        whole or, when cut, not recorded."""
        if self.cfg.connection_test:
            lines, status = self._connection_test()
            yield lines, None, status
        order = self._initial() if index == 0 else self._plan_incremental(index)
        if not self.identity:
            for user in order:
                lines, outcome = self._attempt(user, user.op)
                yield lines, user, outcome
            return
        done: set[int] = set()
        for user in order:
            if user.index in done:
                continue
            pair = self.pair_of.get(user.index)
            if pair is not None:
                done.update((pair[0].index, pair[1].index))
                lines, both = self._pair(*pair)
                yield lines, None, both
                continue
            lines, outcome = self._attempt(user, user.op)
            yield lines, user, outcome

    def _initial(self) -> list[_User]:
        if not self.join_cycle:
            return self.users
        return [u for u in self.users if self.join_cycle.get(u.index, 0) == 0]

    def _gap(self, quarantined: int) -> int:
        minute = 60000
        if quarantined:
            base = QUARANTINE_GAPS[min(quarantined, len(QUARANTINE_GAPS)) - 1]
            return base // timedelta(milliseconds=1) + self.rng.randrange(3 * minute)
        base = self.cfg.interval // timedelta(milliseconds=1)
        return max(1000, base + self.rng.randrange(-3 * minute, 3 * minute + 1))

    def _plan_incremental(self, index: int) -> list[_User]:
        cfg, rng = self.cfg, self.rng
        retries = list(self.pending.values())
        for user in retries:
            user.op = user.pending or "none"
        candidates = list(self.active.values())
        n_change = _binomial(rng, len(candidates), cfg.change_rate)
        n_leave = _binomial(rng, len(candidates), cfg.leave_rate)
        n_storm = cfg.deletion_storm_size if index == cfg.deletion_storm_cycle else 0
        picks = rng.sample(candidates, min(len(candidates), n_change + n_leave + n_storm))
        for user in picks[:n_change]:
            user.op = self._plan_change(user)
        for user in picks[n_change:]:  # leavers, then the deletion storm
            user.op = "disable"
        if "scope" in cfg.realities:  # half the leavers go out of scope by a DELETE
            for user in picks[n_change:n_change + n_leave]:
                if rng.random() < 0.5:
                    user.op = "delete"
        if index == cfg.deletion_storm_cycle:
            self.truth.storm_sizes[index] = len(picks) - min(len(picks), n_change + n_leave)
        n_delete = _binomial(rng, cfg.users, cfg.delete_rate)
        n_join = _binomial(rng, cfg.users, cfg.join_rate)
        disabled = list(self.disabled.values())
        gone = rng.sample(disabled, min(len(disabled), n_delete + n_join))
        for user in gone[:n_delete]:
            user.op = "delete"
        work = picks + gone[:n_delete]
        returning = gone[n_delete:]
        for _ in range(n_join):
            if returning and rng.random() < 0.2:
                user = returning.pop()
                user.op = "enable"
            else:
                user = self._new_user()
                self.users.append(user)
                if self.identity:
                    self._born(user)
            work.append(user)
        if self.identity:
            self.pair_of.clear()
            work.extend(self._plan_identity(index, retries, work))
            retries, work = self._sort_out_shared_names(index, retries, work)
        rng.shuffle(work)
        return retries + work

    # --- realities of identity ----------------------------------------------------------------

    def _setup_identity(self) -> None:
        cfg = self.cfg
        for event in cfg.events:
            self.script.setdefault(event.cycle, []).append(event)
        taken: set[int] = set()
        outages = set(cfg.auth_outage_cycles) | set(cfg.lookup_404_cycles)
        for event in cfg.events:  # a collision makes both persons join in its cycle
            if event.kind != "collide" or event.person == event.other or event.cycle in outages:
                continue  # (in an outage two failed lookups of one name could be anyone's)
            other = event.other if event.other is not None else event.person
            if event.person in taken or other in taken:
                continue
            taken.update((event.person, other))
            first, second = self.users[other], self.users[event.person]
            self.scripted_pairs.setdefault(event.cycle, []).append((first, second))
            if event.cycle:
                self.join_cycle[first.index] = self.join_cycle[second.index] = event.cycle
        paired = {u.index for pairs in self.scripted_pairs.values() for pair in pairs for u in pair}
        for event in cfg.events:
            if event.kind == "incomplete" and event.person not in paired and event.cycle:
                user = self.users[event.person]
                user.complete_from = max(user.complete_from, event.cycle)
                user.op = "unmatched"
        corrected = {e.person for e in cfg.events if e.kind == "unicode"}
        scripted = {e.person for e in cfg.events} | {e.other for e in cfg.events}
        for user in self.users:
            self._born(user, True if user.index in corrected else
                       False if user.index in scripted else None)
        for first, second in self.scripted_pairs.get(0, ()):
            self._plan_pair(first, second)
        if "collision" in cfg.realities and cfg.users >= 2 and 0 not in outages:
            free = [u for u in self.users if u.index not in scripted]
            n = min(len(free) // 2, _binomial(self.rng, cfg.users, cfg.identity_rate / 4))
            chosen = self.rng.sample(free, 2 * n)
            for first, second in zip(chosen[::2], chosen[1::2], strict=True):
                self._plan_pair(first, second)

    def _born(self, user: _User, dirty: bool | None = None) -> None:
        """Maybe make a new person incomplete for a cycle or two ("unmatched"), and maybe give
        them a userName with a Unicode variant, corrected later ("variant")."""
        if dirty is None and "unmatched" in self.cfg.realities and self.rng.random() < 0.05:
            user.complete_from = self.cycle_index + self.rng.randint(1, 2)
            user.op = "unmatched"
        if dirty is None:
            dirty = "variant" in self.cfg.realities and self.rng.random() < 0.15
        if not dirty:
            return
        local = user.external_id
        suffix = local[len(local.rstrip("0123456789")):]
        spelled = f"{user.given}.{user.family}".lower().replace(" ", "") + suffix + "@" + DOMAIN
        decomposed = unicodedata.normalize("NFD", spelled)
        if decomposed != spelled:  # an accent: Entra sent the decomposed form (NFD)
            name, clean = decomposed, unicodedata.normalize("NFC", spelled)
        elif user.index % 2:  # a no-break space, U+00A0
            name = local.replace(".", "\u00a0", 1) + "@" + DOMAIN
            clean = local.replace(".", " ", 1) + "@" + DOMAIN
        else:  # a full-width commercial at, U+FF20
            name, clean = local + "\uff20" + DOMAIN, user.user_name
        self._set_name(user, name)
        user.clean_name = clean

    def _set_name(self, user: _User, name: str) -> None:
        user.user_name = name
        user.query_plain = f'filter=userName eq "{name}"'
        user.query_encoded = "filter=userName+eq+%22" + quote_plus(name, safe="") + "%22"
        user.attrs = b""

    def _fresh_name(self, user: _User) -> str:
        given = user.external_id.split(".", 1)[0]
        base = f"{given}.{self._pick(_LAST)[1]}"
        seen = self.taken.get(base, 0)
        self.taken[base] = seen + 1
        return f"{base}{seen + 1 if seen else ''}@{DOMAIN}"

    def _plan_identity(self, index: int, retries: list[_User], work: list[_User]) -> list[_User]:
        """This cycle's identity events, scripted then drawn: the users they add to the work."""
        cfg, rng = self.cfg, self.rng
        busy = {u.index for u in retries}
        busy.update(u.index for u in work)
        extra: list[_User] = []
        for first, second in self.scripted_pairs.get(index, ()) if index else ():
            self._plan_pair(first, second)
            extra += (first, second)
        for event in self.script.get(index, ()):
            if event.kind not in ("collide", "incomplete"):  # (those two are set up beforehand)
                self._apply(event.kind, self.users[event.person], event.variant, busy, extra)
        realities = cfg.realities
        if not realities or index in cfg.auth_outage_cycles or index in cfg.lookup_404_cycles:
            return extra
        rate = cfg.identity_rate
        if "collision" in realities:
            for user in retries:  # a colliding person's name is fixed after a cycle or two
                if user.pending == "collide" and user.attempts >= 2 and rng.random() < 0.5:
                    self._apply("rename", user, "409", busy, extra)
        if "variant" in realities:
            for user in list(self.active.values()):
                if user.clean_name and user.index not in busy and rng.random() < 0.3:
                    self._apply("unicode", user, self._variant(), busy, extra)
        idle = [u for u in self.active.values() if u.index not in busy]
        kinds = [("rename", _binomial(rng, len(idle), rate) if "rename" in realities else 0),
                 ("case", _binomial(rng, len(idle), rate / 2) if "variant" in realities else 0),
                 ("recreate", _binomial(rng, len(idle), rate / 2)
                  if "recreate" in realities else 0)]
        picks = rng.sample(idle, min(len(idle), sum(n for _, n in kinds)))
        start = 0
        for kind, n in kinds:  # as many of each kind as there are people left
            for user in picks[start:start + n]:
                self._apply(kind, user, self._variant(), busy, extra)
            start += n
        if "scope" in realities:  # back in scope after a DELETE: created again
            for user in list(self.removed.values()):
                if user.index not in busy and rng.random() < 0.25:
                    self._apply("enable", user, "409", busy, extra)
        if "collision" in realities:
            for _ in range(_binomial(rng, cfg.users, rate / 4)):
                first, second = self._new_user(), self._new_user()
                self.users += (first, second)
                self._plan_pair(first, second)
                extra += (first, second)
        return extra

    def _sort_out_shared_names(self, index: int, retries: list[_User], work: list[_User]
                               ) -> tuple[list[_User], list[_User]]:
        """While a person fails on a collision, their name (by key) is shared: the simulator never
        writes a line that names only that name and belongs to nobody the lines can tell. So the
        waiting person sits out a cycle in which another holder of the name is at work; a holder's
        lookups do not fail (a failure falls on its write, see _attempt); and in an outage cycle,
        where every lookup fails, the holders sit out."""
        waiting = [u for u in retries if u.op == "collide"]
        self.shared_keys = {name_key(u.user_name) for u in waiting}
        if not waiting:
            return retries, work
        holders = {u.index for u in (*retries, *work)
                   if u.op != "collide" and name_key(u.user_name) in self.shared_keys}
        if index in self.cfg.auth_outage_cycles or index in self.cfg.lookup_404_cycles:
            return ([u for u in retries if u.index not in holders],
                    [u for u in work if u.index not in holders])
        busy = {name_key(u.user_name) for u in (*retries, *work) if u.index in holders}
        return [u for u in retries if u.op != "collide" or name_key(u.user_name) not in busy], work

    def _variant(self) -> str:
        return "409" if self.rng.random() < self.cfg.rename_conflict_share else "patch"

    def _apply(self, kind: str, user: _User, variant: str, busy: set[int],
               extra: list[_User]) -> None:
        """Plan one identity event for `user`, when it fits (see SimEvent)."""
        if user.index in busy:
            if kind == "rename" and user.pending == "collide":  # the fix: a name of their own
                user.prev_name = user.user_name
                self._set_name(user, self._fresh_name(user))
                user.op = "fix"
            return
        state = user.state
        if state == "new" or (state != "active" and kind not in ("delete", "enable")):
            return
        if kind in ("recreate", "enable") and state != "disabled" and self._claimed(user):
            return  # someone else has taken the name meanwhile: not modelled
        if kind in ("rename", "unicode"):
            if kind == "unicode" and not user.clean_name:
                return
            new_name = self._fresh_name(user) if kind == "rename" else user.clean_name
            user.clean_name = None
            self._plan_rename(user, new_name, variant)  # type: ignore[arg-type]
        elif kind == "case":
            self._plan_rename(user, user.user_name[0].swapcase() + user.user_name[1:], "case")
        elif kind == "recreate":
            self._plan_recreate(user)
        elif kind == "update":
            user.op = self._plan_update(user)
        elif kind == "disable":
            user.op = "disable"
        elif kind == "delete":
            if state == "deleted":
                return
            user.op = "delete"
        elif kind == "enable":
            if state == "disabled":
                user.op = "enable"
            elif state == "deleted":
                self._plan_recreate(user)
            else:
                return
        else:
            return
        busy.add(user.index)
        extra.append(user)

    def _claimed(self, user: _User) -> bool:
        """Whether another person holds or waits for the user's name at the target."""
        key = user.user_name.lower()
        if self.held.get(key, user) is not user:
            return True
        return any(other is not user and other.pending == "collide"
                   and other.user_name.lower() == key for other in self.pending.values())

    def _plan_rename(self, user: _User, new_name: str, mode: str) -> None:
        user.prev_name = user.user_name
        self._set_name(user, new_name)
        user.changes, user.pathless = (("userName", new_name, False),), False
        user.op = "case" if mode == "case" else "rename"
        user.conflicts = 0
        if mode == "409":  # the target refuses the create once (scripted) or once or twice
            user.conflicts = 1 if self.cfg.events or self.rng.random() < 0.7 else 2

    def _plan_recreate(self, user: _User) -> None:
        self.held[user.user_name.lower()] = user  # nobody else takes the name meanwhile
        user.id, user.target, user.op = None, b"", "recreate"

    def _plan_pair(self, first: _User, second: _User) -> None:
        self._set_name(second, first.user_name)
        second.clean_name = None
        first.op = second.op = "create"
        first.complete_from = second.complete_from = 0
        self.pair_of[first.index] = self.pair_of[second.index] = (first, second)

    def _hold(self, user: _User) -> None:
        self.held[user.user_name.lower()] = user

    def _release(self, user: _User, name: str) -> None:
        if self.held.get(name.lower()) is user:
            del self.held[name.lower()]

    def _pair(self, first: _User, second: _User) -> tuple[list[bytes], Any]:
        """Two joiners with one userName: both looked up (nothing), both created; the second
        create answers 409 uniqueness."""
        first.attempts += 1
        second.attempts += 1
        look1, status1 = self._lookup(first, "create", None)
        look2, status2 = self._lookup(second, "create", None)
        if status1 != 200:  # an outage: neither lookup went through
            return [look1, look2], (
                (first, self._failed(first, "create", Operation.NONE, status1), look1),
                (second, self._failed(second, "collide", Operation.NONE, status2), look2))
        post1, status1 = self._post(first, None)
        post2, status2 = self._post(second, "409")
        return [look1, look2, post1, post2], (
            (first, self._done(first, Outcome.SUCCEEDED, Operation.CREATE, status1), post1),
            (second, self._failed(second, "collide", Operation.CREATE, status2), post2))

    def _identity_attempt(self, user: _User, op: str) -> tuple[list[bytes], UserOutcome]:
        if op == "unmatched" and user.complete_from <= self.cycle_index:
            user.op = "create"  # complete now: created as anyone else
            return self._attempt(user, "create")
        user.attempts += 1
        if op == "collide":  # Entra retries the escrowed create
            kind = "401" if self.outage == 401 else None
            holder = self.held.get(user.user_name.lower())
            if kind is None and holder is not None and holder is not user:
                kind = "409"
            line, status = self._post(user, kind)
            if kind is None:
                return [line], self._done(user, Outcome.SUCCEEDED, Operation.CREATE, status)
            return [line], self._failed(user, op, Operation.CREATE, status)
        # a case change is found (the target's filter ignores case); any other new name is not
        lookup, status = self._lookup(user, "update" if op == "case" else "create", None)
        if status != 200:
            return [lookup], self._failed(user, op, Operation.NONE, status)
        if op == "unmatched":
            # found nothing, and Entra writes nothing: looked up again next cycle
            user.pending, user.attempts = "unmatched", 0
            self.pending[user.index] = user
            self._file(user)
            return [lookup], self._outcome(Outcome.SKIPPED, Operation.NONE, 200, 1, found=False)
        if op in ("recreate", "fix"):
            write, status = self._post(user, None)
            return [lookup, write], self._done(user, Outcome.SUCCEEDED, Operation.CREATE, status)
        if op == "rename" and user.conflicts > 0:
            user.conflicts -= 1
            write, status = self._post(user, "409-externalId")
            return [lookup, write], self._failed(user, op, Operation.CREATE, status)
        write, status = self._patch(user, "update", None)
        if user.prev_name is not None:
            self._release(user, user.prev_name)
        self._hold(user)
        return [lookup, write], self._done(user, Outcome.SUCCEEDED, Operation.UPDATE, status)

    # --- one user's requests in one cycle --------------------------------------------------

    def _attempt(self, user: _User, op: str) -> tuple[list[bytes], UserOutcome]:
        if op in _IDENTITY_OPS:
            return self._identity_attempt(user, op)
        user.attempts += 1
        if op == "create" and user.fail_kind == "409" and user.fail_left == 0 and user.adopt:
            op = "adopt"  # the conflicting account is matched this time
            self._prepare_adopt(user)
        blocked = self.outage == 401 or (self.outage == 404 and op != "delete")
        kind = None if blocked else self._draw_failure(user, op)
        if op == "delete":
            return self._delete(user, kind)
        on_lookup = kind is not None and kind in _TRANSIENT and (
            op == "none" or self.rng.random() < 0.3)
        if on_lookup and self.shared_keys and name_key(user.user_name) in self.shared_keys:
            on_lookup = False  # a shared name: the failure falls on the write (or there is none)
            if op == "none":
                kind, user.fail_kind, user.fail_left = None, None, 0
        lookup, status = self._lookup(user, op, kind if on_lookup else None)
        if status != 200:
            return [lookup], self._failed(user, op, Operation.NONE, status)
        if op == "none":
            return [lookup], self._done(user, Outcome.SKIPPED, Operation.NONE, 200)
        if op == "create":
            write, status = self._post(user, kind)
        else:
            write, status = self._patch(user, op, kind)
        if status in (200, 201):
            return [lookup, write], self._done(user, Outcome.SUCCEEDED, _OPERATION[op], status)
        return [lookup, write], self._failed(user, op, _OPERATION[op], status)

    def _draw_failure(self, user: _User, op: str) -> str | None:
        if user.fail_kind is not None:
            if user.fail_left > 0:
                user.fail_left -= 1
                return user.fail_kind
            user.fail_kind = None
        rng = self.rng
        if rng.random() >= self.cfg.failure_rate:
            return None
        kind = self._weighted(_FAILURES[op])
        user.fail_kind = kind
        if kind == "409":
            user.fail_left, user.adopt = rng.randint(0, 2), rng.random() < 0.5
        elif kind == "400":
            user.fail_left = rng.randint(1, 3)
        else:
            user.fail_left = 0 if kind == "404" or rng.random() < 0.8 else 1
        return kind

    def _outcome(self, outcome: Outcome, operation: Operation, status: int, attempts: int,
                 found: bool = True) -> UserOutcome:
        # a handful of distinct values: share them (fewer objects for the garbage collector)
        key = (outcome, operation, status, attempts, found)
        shared = self.outcomes.get(key)
        if shared is None:
            shared = self.outcomes[key] = UserOutcome(outcome, operation, status, attempts, found)
        return shared

    def _done(self, user: _User, outcome: Outcome, operation: Operation, status: int
              ) -> UserOutcome:
        result = self._outcome(outcome, operation, status, user.attempts)
        user.pending, user.attempts, user.fail_kind, user.fail_left = None, 0, None, 0
        self.pending.pop(user.index, None)
        self._file(user)
        return result

    def _failed(self, user: _User, op: str, sent: Operation, status: int) -> UserOutcome:
        user.pending = op
        self.pending[user.index] = user
        self._file(user)
        return self._outcome(Outcome.FAILED, sent, status, user.attempts)

    def _file(self, user: _User) -> None:
        # active / disabled hold the users without a pending operation: the ones to sample from
        index, idle = user.index, user.pending is None
        if idle and user.state == "active":
            self.disabled.pop(index, None)
            self.active[index] = user
        elif idle and user.state == "disabled":
            self.active.pop(index, None)
            self.disabled[index] = user
        else:
            self.active.pop(index, None)
            self.disabled.pop(index, None)
        if self.identity:
            if idle and user.state == "deleted":
                self.removed[index] = user
            else:
                self.removed.pop(index, None)

    # --- requests ---------------------------------------------------------------------------

    def _connection_test(self) -> tuple[list[bytes], int]:
        guid = self._guid()
        query = (f'filter=externalId eq "{guid}"' if self.rng.random() < 0.5
                 else f"filter=externalId+eq+%22{guid}%22")
        status = self.outage or 200
        body = {401: _AUTH_ERROR, 404: _LOOKUP_404}.get(status, _EMPTY_LIST)
        ts = self._tick()
        line = self._dump(ts, "GET", self.users_path, status, self._duration(5, 30), query=query,
                          response_body=body)
        return [line], status

    def _lookup(self, user: _User, op: str, kind: str | None) -> tuple[bytes, int]:
        query = user.query_plain if self.rng.random() < 0.5 else user.query_encoded
        ts = self._tick()
        if self.outage:
            status = self.outage
            body: Any = _AUTH_ERROR if status == 401 else _LOOKUP_404
        elif kind is not None:
            status, body = int(kind), self._transient_error(kind)
        else:
            status = 200
            if op == "create":
                body = _EMPTY_LIST
            else:
                body = orjson.Fragment(_FOUND_HEAD + user.target + _FOUND_TAIL)
                user.sid = user.id
        duration = TIMEOUT_MS if status == 0 else self._duration(8, 40)
        line = self._dump(ts, "GET", self.users_path, status, duration, query=query,
                          response_body=body)
        return line, status

    def _post(self, user: _User, kind: str | None) -> tuple[bytes, int]:
        ts = self._tick()
        attrs = self._attributes(user)
        body = orjson.Fragment(_RESOURCE_HEAD + attrs + _POST_TAIL)
        if kind is None:
            user.id = user.id or self._guid()
            user.sid = user.id
            user.created_ts, user.target_active, user.state = ts, True, "active"
            user.target = self._target(user, attrs, ts, ts)
            if self.identity:
                self._hold(user)
            status, response, duration = 201, orjson.Fragment(user.target), self._duration(25, 150)
        else:
            status, response, duration = self._write_error(user, kind, "create")
        line = self._dump(ts, "POST", self.users_path, status, duration, request_body=body,
                          response_body=response)
        return line, status

    def _patch(self, user: _User, op: str, kind: str | None) -> tuple[bytes, int]:
        ts = self._tick()
        body = (self._state_patch(op == "enable") if op in ("disable", "enable")
                else self._patch_body(user.changes, user.pathless))
        user.sid = user.id
        if kind is None:
            if op in ("disable", "enable"):
                user.target_active = op == "enable"
            user.target = self._target(user, self._attributes(user), user.created_ts, ts)
            user.state = "disabled" if op == "disable" else "active"
            status, response, duration = 200, orjson.Fragment(user.target), self._duration(20, 120)
        else:
            status, response, duration = self._write_error(user, kind, op)
        line = self._dump(ts, "PATCH", f"{self.users_path}/{user.id}", status, duration,
                          request_body=body, response_body=response)
        return line, status

    def _delete(self, user: _User, kind: str | None) -> tuple[list[bytes], UserOutcome]:
        ts = self._tick()
        path = f"{self.users_path}/{user.id}"
        user.sid = user.id
        if self.outage == 401:
            status, response, duration = 401, _AUTH_ERROR, self._duration(3, 15)
        elif kind is not None:
            status, response, duration = self._write_error(user, kind, "delete")
        else:
            line = self._dump(ts, "DELETE", path, 204, self._duration(15, 60))
            user.state = "deleted"
            if self.identity:
                self._release(user, user.user_name)
            return [line], self._done(user, Outcome.SUCCEEDED, Operation.DELETE, 204)
        line = self._dump(ts, "DELETE", path, status, duration, response_body=response)
        return [line], self._failed(user, "delete", Operation.DELETE, status)

    def _write_error(self, user: _User, kind: str, op: str) -> tuple[int, Any, float]:
        if kind in _TRANSIENT:
            duration = TIMEOUT_MS if kind == "0" else self._duration(50, 1500)
            return int(kind), self._transient_error(kind), duration
        if kind == "409":
            body = _error(409, f"User '{user.user_name}' already exists", "uniqueness")
        elif kind == "409-externalId":  # a rename sent as a create: the person is there already
            body = _error(409, f"A user with externalId '{user.external_id}' already exists",
                          "uniqueness")
            kind = "409"
        elif kind == "401":
            return 401, _AUTH_ERROR, self._duration(3, 15)
        elif kind == "404":
            body = _error(404, f"Resource {user.id} not found")
        else:
            body = _error(400, self._invalid_detail(user, op), "invalidValue")
        return int(kind), body, self._duration(10, 60)

    def _transient_error(self, kind: str) -> Any:
        if kind == "0":
            return None
        if kind == "429":
            seconds = self.rng.randint(1, 60)
            return _error(429, f"Too many requests. Retry after {seconds} seconds.")
        return _error(500, f"An unexpected error occurred. Reference: {self._guid()}")

    def _invalid_detail(self, user: _User, op: str) -> str:
        if op in ("update", "adopt") and user.changes:
            path, value, _ = user.changes[0]
            name = path.rsplit(":", 1)[-1]
            if name in _SECRET_ATTRS:
                if self.cfg.echo_secret_values and user.index % 2 == 0:
                    return f"Attribute '{name}' value '{value}' does not satisfy the {name} policy"
                return f"Attribute '{name}' does not satisfy the {name} policy"
            return f"Attribute '{path}' has an invalid value '{value}'"
        if user.phone and user.index % 3 == 0:
            return f"Attribute '{_PHONE_PATH}' has an invalid value '{user.phone}'"
        if user.index % 3 == 1:
            return f"Attribute 'localUsername' value '{user.local_username}' is already in use"
        return f"Attribute '{ENTERPRISE}:department' value '{user.department}' is not a cost center"

    def _dump(self, ts: str, method: str, path: str, status: int, duration: float, *,
              query: str | None = None, request_body: Any = None,
              response_body: Any = _OMIT) -> bytes:
        line: dict[str, Any] = {"ts": ts, "method": method, "path": path}
        if query is not None:
            line["query"] = query
        line["status"] = status
        line["duration_ms"] = duration
        if self.cfg.with_request_ids:
            line["request_id"] = self.rid_prefix + str(self.generated)
        line["client"] = CLIENT
        line["job"] = self.cfg.job
        if self.cfg.with_cycle_ids:
            line["cycle_id"] = self.cycle_id
        line["request_headers"] = (self.read_headers if request_body is None
                                   else self.write_headers)
        if request_body is not None:
            line["request_body"] = request_body
        if response_body is not _OMIT:
            line["response_body"] = response_body
        self.generated += 1
        return orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)

    # --- users, resources and patches -----------------------------------------------------

    def _new_user(self) -> _User:
        rng = self.rng
        given, given_ascii = self._pick(_FIRST)
        family, family_ascii = self._pick(_LAST)
        base = f"{given_ascii}.{family_ascii}"
        seen = self.taken.get(base, 0)
        self.taken[base] = seen + 1
        suffix = str(seen + 1) if seen else ""
        self.user_count += 1
        user = _User(self.user_count - 1, f"{base}{suffix}@{DOMAIN}")
        user.given, user.family = given, family
        user.email = user.user_name
        user.title = self._pick(_TITLES) if rng.random() < 0.9 else None
        user.department = self._pick(_DEPARTMENTS)
        user.street = self._street()
        user.phone = self._phone() if rng.random() < 0.85 else None
        user.card_number, user.card_code = self._card()
        user.local_username = f"{given_ascii[0]}{family_ascii}{suffix}"[:20]
        user.pin = self._digits(6 if rng.random() < 0.3 else 4)
        return user

    def _attributes(self, user: _User, *, linked: bool = True) -> bytes:
        """The user's attributes as JSON object members, shared by POST bodies and resources."""
        if linked and user.attrs:
            return user.attrs
        display = f"{user.given} {user.family}"
        res: dict[str, Any] = {"externalId": user.external_id} if linked else {}
        res["userName"] = user.user_name
        res["displayName"] = display
        res["name"] = {"formatted": display, "familyName": user.family, "givenName": user.given}
        res["emails"] = [{"primary": True, "type": "work", "value": user.email}]
        if user.title:
            res["title"] = user.title
        res["addresses"] = [{"type": "work", "streetAddress": user.street, "primary": True}]
        if user.phone:
            res["phoneNumbers"] = [{"type": "work", "value": user.phone}]
        res[ENTERPRISE] = {"department": user.department}
        res[UNIFLOW] = {"cardNumber": user.card_number, "cardRegistrationCode": user.card_code,
                        "localUsername": user.local_username, "pin": user.pin}
        attrs = orjson.dumps(res)[1:-1]
        if linked:
            user.attrs = attrs
        return attrs

    def _target(self, user: _User, attrs: bytes, created: str, modified: str) -> bytes:
        """The resource as the target stores it: serialised once, reused by every answer."""
        active = "true" if user.target_active else "false"
        tail = f'"id":"{user.id}",'
        meta = f'"resourceType":"User","created":"{created}","lastModified":"{modified}"'
        return (_RESOURCE_HEAD + tail.encode() + attrs
                + f',"active":{active},"meta":{{{meta}}}}}'.encode())

    def _prepare_adopt(self, user: _User) -> None:
        # a target account with this userName exists but was never linked: no externalId
        user.id = user.id or self._guid()
        user.created_ts, user.target_active = self.foreign_created, True
        attrs = self._attributes(user, linked=False)
        user.target = self._target(user, attrs, self.foreign_created, self.foreign_created)
        user.changes, user.pathless = (("externalId", user.external_id, True),), False

    def _plan_change(self, user: _User) -> str:
        if self.rng.random() < 0.3:
            return "none"  # a change of an attribute that is not mapped: Entra skips it
        return self._plan_update(user)

    def _plan_update(self, user: _User) -> str:
        user.attrs = b""
        kind = self._weighted(_UPDATE_KINDS)
        if kind == "card":  # a re-registered card: the secrets arrive in a path-less value object
            user.card_number, user.card_code = self._card()
            user.changes = ((f"{UNIFLOW}:cardNumber", user.card_number, False),
                            (f"{UNIFLOW}:cardRegistrationCode", user.card_code, False))
            user.pathless = True
        else:
            user.changes, user.pathless = self._change(user, kind), False
        return "update"

    def _change(self, user: _User, kind: str) -> tuple[tuple[str, Any, bool], ...]:
        if kind == "rename":
            user.family = self._pick(_LAST)[0]
            return (("displayName", f"{user.given} {user.family}", False),
                    ("name.familyName", user.family, False))
        if kind in ("title", "reorg"):
            added, user.title = user.title is None, self._pick(_TITLES)
            if kind == "title":
                return (("title", user.title, added),)
            user.department = self._pick(_DEPARTMENTS)
            return (("title", user.title, added),
                    (f"{ENTERPRISE}:department", user.department, False))
        if kind == "department":
            user.department = self._pick(_DEPARTMENTS)
            return ((f"{ENTERPRISE}:department", user.department, False),)
        if kind == "phone":
            added, user.phone = user.phone is None, self._phone()
            return ((_PHONE_PATH, user.phone, added),)
        if kind == "address":
            user.street = self._street()
            return (('addresses[type eq "work"].streetAddress', user.street, False),)
        if kind == "email":
            user.email = f"{user.local_username}@{DOMAIN}"
            return ((_EMAIL_PATH, user.email, False),)
        user.pin = self._digits(4)
        return ((f"{UNIFLOW}:pin", user.pin, False),)

    def _patch_body(self, changes: tuple[tuple[str, Any, bool], ...], pathless: bool
                    ) -> dict[str, Any]:
        if pathless and not self.flag:  # the extension as a nested object
            prefix = UNIFLOW + ":"
            value = {UNIFLOW: {p.removeprefix(prefix): v for p, v, _ in changes}}
            ops: list[dict[str, Any]] = [{"op": "Replace", "value": value}]
        elif not self.flag:
            ops = [{"op": "Add" if added else "Replace", "path": path, "value": value}
                   for path, value, added in changes]
        elif len(changes) == 1 and not pathless:
            path, value, added = changes[0]
            ops = [{"op": "add" if added else "replace", "path": path, "value": value}]
        else:  # aadOptscim062020: emails keep a path op, the rest go in one path-less replace
            ops = [{"op": "replace", "path": p, "value": v} for p, v, _ in changes
                   if p == _EMAIL_PATH]
            ops.append({"op": "replace",
                        "value": {p: v for p, v, _ in changes if p != _EMAIL_PATH}})
        return {"schemas": [PATCH_OP], "Operations": ops}

    def _state_patch(self, active: bool) -> dict[str, Any]:
        if self.flag:
            op: dict[str, Any] = {"op": "replace", "path": "active", "value": active}
        else:
            op = {"op": "Replace", "path": "active", "value": "True" if active else "False"}
        return {"schemas": [PATCH_OP], "Operations": [op]}

    # --- clock and random values ----------------------------------------------------------

    def _tick(self) -> str:
        ms = self.next_ms
        self.last_ms = ms
        self.next_ms = ms + 1 + int(self.rng.random() * self.span)
        minute, rest = divmod(ms, 60000)
        if minute != self.minute:
            self.minute = minute
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return self.prefix + self.seconds[rest]

    def _pick(self, options: tuple[Any, ...]) -> Any:
        return options[int(self.rng.random() * len(options))]

    def _weighted(self, table: tuple[tuple[str, int], ...]) -> str:
        point = self.rng.random() * 100  # every table's weights add up to 100
        for kind, weight in table:
            point -= weight
            if point < 0:
                return kind
        return table[-1][0]

    def _digits(self, n: int) -> str:
        return f"{int(self.rng.random() * 10**n):0{n}d}"

    def _street(self) -> str:
        return f"{1 + int(self.rng.random() * 299)} {self._pick(_STREETS)}"

    def _phone(self) -> str:
        return f"+1 425 555 {self._digits(4)}"

    def _card(self) -> tuple[str, str]:
        bits, chars = self.rng.getrandbits(40), _BASE32
        code = "".join(chars[(bits >> shift) & 31] for shift in range(0, 40, 5))
        return "1" + self._digits(9), code

    def _duration(self, low: int, high: int) -> float:
        return (low * 10 + int(self.rng.random() * (high - low) * 10)) / 10

    def _guid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _token(self) -> str:
        # an opaque secret token like the one uniFLOW shows once; the ingester must redact it
        return base64.urlsafe_b64encode(self.rng.randbytes(48)).decode()


@cache
def _seconds() -> tuple[str, ...]:
    """Every "SS.mmmZ" of a minute, by millisecond: formatting a timestamp is then a lookup."""
    return tuple(f"{ms // 1000:02d}.{ms % 1000:03d}Z" for ms in range(60000))


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Draw from Binomial(n, p); a normal approximation once n * p is large."""
    if n <= 0 or p <= 0.0:
        return 0
    mean = n * p
    if mean < 30 or n < 1000:
        return sum(1 for _ in range(n) if rng.random() < p)
    sd = math.sqrt(mean * (1.0 - p))
    return max(0, min(n, round(rng.gauss(mean, sd))))


def _ms_of(line: bytes) -> int:
    at = datetime.strptime(orjson.loads(line)["ts"], "%Y-%m-%dT%H:%M:%S.%f%z")
    return (at - EPOCH) // timedelta(milliseconds=1)
