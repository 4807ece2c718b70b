"""PURE: what the simulator is told to write (SimConfig, its scripted SimEvents) and what it wrote
(GroundTruth: each cycle's counts, each person's outcomes and state), so the analysis can be
checked against it."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

_SOURCE_NS = uuid.UUID("6b1f3f7e-2a43-4f0e-9a2c-5d0c7e9b1a64")

# The realities of identity a run may turn on (SimConfig.realities); see the module's docstring.
REALITIES = ("rename", "variant", "collision", "recreate", "scope", "unmatched", "disorder")


# Kinds of a scripted SimEvent.
EVENT_KINDS = ("rename", "case", "unicode", "collide", "recreate", "update", "disable", "delete",
               "enable", "incomplete")


STATES = ("in_sync", "failing", "disabled", "deleted", "never_provisioned")


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DISABLE = "disable"
    ENABLE = "enable"
    DELETE = "delete"
    NONE = "none"


@dataclass(frozen=True)
class SimEvent:
    """One scripted identity event: what happens to person `person` (0 .. users-1) in `cycle`.

    rename   the userName changes (same externalId); a person failing on a collision gets a
             name of their own (the fix)
    case     the userName changes case only (the target's lookup ignores case: it finds them)
    unicode  a userName born with a no-break space, a decomposed (NFD) or a full-width character
             is corrected to its plain form (same name key; the target's lookup does not match)
    collide  `person` and `other` join in this cycle with one userName (`other`'s): both looked
             up, then created; `person`'s create answers 409 uniqueness
    recreate the target deleted the user; Entra finds nothing and creates it again (new id)
    update   an ordinary change of attributes (PATCH by id)
    disable  out of scope: PATCH active false
    delete   out of scope: DELETE (also of a disabled user)
    enable   back in scope: PATCH active true (disabled), or created again (deleted)
    incomplete  the person is not created before this cycle: in every cycle before it, Entra
             looks them up, finds nothing and writes nothing (a required attribute is empty);
             in this cycle they are complete and created
    `variant` for rename and unicode: "409" (the target refuses the create: the externalId exists;
    the retry matches by id) or "patch" (Entra matches by id and PATCHes userName). An event that
    does not fit (the person is not there yet, is failing, or has no such name) is ignored.
    """

    cycle: int
    kind: str
    person: int
    other: int | None = None
    variant: str = "409"

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")
        if self.variant not in ("409", "patch"):
            raise ValueError("variant must be '409' or 'patch'")
        if self.cycle < 0 or self.person < 0 or (self.other is not None and self.other < 0):
            raise ValueError("cycle and persons must not be negative")
        if self.kind == "collide" and self.other is None:
            raise ValueError("a collide event names the other person")


@dataclass(frozen=True)
class SimConfig:
    users: int = 200
    cycles: int = 6
    seed: int = 1
    job: str = "uniflow-demo"
    start: datetime = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    interval: timedelta = timedelta(minutes=40)
    base_path: str = "/scim/v2"
    with_cycle_ids: bool = False
    with_request_ids: bool = True
    failure_rate: float = 0.03
    change_rate: float = 0.05
    leave_rate: float = 0.005
    join_rate: float = 0.005
    delete_rate: float = 0.002
    auth_outage_cycles: tuple[int, ...] = ()
    lookup_404_cycles: tuple[int, ...] = ()
    deletion_storm_cycle: int | None = None
    deletion_storm_size: int = 600
    silent_after_cycle: int | None = None
    connection_test: bool = True
    requests_per_second: float = 20.0
    flag_scim062020: bool = False
    max_lines: int | None = None
    # Realities of identity (all off by default: the output above is unchanged). See REALITIES.
    realities: tuple[str, ...] = ()
    identity_rate: float = 0.03  # per active person and incremental cycle, per kind of event
    rename_conflict_share: float = 0.5  # renames answered 409 (else matched by id and PATCHed)
    duplicate_rate: float = 0.02  # "disorder": lines written twice
    events: tuple[SimEvent, ...] = ()  # scripted identity events (persons 0 .. users-1)
    record_events: bool = False  # keep each person's event per cycle (for Entra's logs)
    # A target that echoes a refused secret in its error message ("Attribute 'pin' value '1234' does
    # not satisfy the pin policy"), as real targets do: one refusal in two (on in `realistic`).
    echo_secret_values: bool = False

    @classmethod
    def realistic(cls, **overrides: Any) -> SimConfig:
        """Every reality of identity on, people leaving and joining often enough to go out of
        scope and back, the events kept for Entra's provisioning logs, and a target that echoes
        refused secrets in its error messages."""
        values: dict[str, Any] = {"realities": REALITIES, "record_events": True, "echo_secret_values": True,
                                  "leave_rate": 0.03, "join_rate": 0.02, "delete_rate": 0.01}
        values.update(overrides)
        return cls(**values)

    @property
    def identity(self) -> bool:
        """Whether any reality of identity is on (realities or scripted events)."""
        return bool(self.realities or self.events)

    def __post_init__(self) -> None:
        unknown = set(self.realities) - set(REALITIES)
        if unknown:
            raise ValueError(f"unknown realities: {sorted(unknown)}")
        for name in ("identity_rate", "rename_conflict_share", "duplicate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if any(not isinstance(e, SimEvent) or e.person >= self.users
               or (e.other is not None and e.other >= self.users) for e in self.events):
            raise ValueError("events must be SimEvents naming persons below `users`")
        if self.users < 1 or self.cycles < 1:
            raise ValueError("users and cycles must be at least 1")
        for name in ("failure_rate", "change_rate", "leave_rate", "join_rate", "delete_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.max_lines is not None and self.max_lines < 0:
            raise ValueError("max_lines must not be negative")
        if self.deletion_storm_size < 0:
            raise ValueError("deletion_storm_size must not be negative")


@dataclass(frozen=True, slots=True)
class UserOutcome:
    outcome: Outcome
    operation: Operation
    status: int
    attempts: int
    found: bool = True  # a skip: False when the lookup found nothing (and nothing was written)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": str(self.outcome), "operation": str(self.operation),
                               "status": self.status, "attempts": self.attempts}
        if not self.found:
            out["found"] = False
        return out


_BUCKET = {Operation.CREATE: "create", Operation.UPDATE: "update", Operation.DISABLE: "disable",
           Operation.DELETE: "delete", Operation.ENABLE: "other", Operation.NONE: "other"}


_COLUMN = {Outcome.SUCCEEDED: "success", Outcome.FAILED: "failure", Outcome.SKIPPED: "skipped"}


@dataclass(frozen=True)
class CycleTruth:
    index: int
    cycle_id: str
    kind: str
    started_at: datetime
    ended_at: datetime
    requests: int
    connection_test: bool
    connection_test_status: int | None
    users: dict[str, UserOutcome]  # by the userName of the cycle (two people may share one)
    truncated: bool = False
    people: dict[str, UserOutcome] = field(default_factory=dict)  # by externalId: per person

    def counts(self) -> dict[str, dict[str, int]]:
        """People per bucket (create, update, disable, delete, other) and success/failure/skipped."""
        out = {b: {"success": 0, "failure": 0, "skipped": 0}
               for b in ("create", "update", "disable", "delete", "other")}
        for user in (self.people or self.users).values():
            out[_BUCKET[user.operation]][_COLUMN[user.outcome]] += 1
        return out

    def to_dict(self, *, people: bool = False) -> dict[str, Any]:
        out = {"index": self.index, "cycle_id": self.cycle_id, "kind": self.kind,
               "started_at": format_ts(self.started_at), "ended_at": format_ts(self.ended_at),
               "requests": self.requests, "connection_test": self.connection_test,
               "connection_test_status": self.connection_test_status,
               "users": {name: u.to_dict() for name, u in self.users.items()},
               "counts": self.counts()}
        if people:
            out["people"] = {key: u.to_dict() for key, u in self.people.items()}
        if self.truncated:
            out["truncated"] = True
        return out


def name_key(user_name: str) -> str:
    """A userName as the product compares names: Unicode NFKC, then case-folded."""
    return unicodedata.normalize("NFKC", user_name).casefold()


def person_state(history: list[UserOutcome]) -> str:
    """A person's state after their outcomes (in cycle order): one of STATES.

    failing while the last outcome failed; otherwise deleted, disabled, in sync or never
    provisioned after the last successful write. A skip whose lookup found the account counts
    as provisioned; one whose lookup found nothing does not.
    """
    provisioned = disabled = deleted = failing = False
    for outcome in history:
        if outcome.outcome is Outcome.FAILED:
            failing = True
            continue
        failing = False
        if outcome.outcome is Outcome.SKIPPED:
            provisioned = provisioned or outcome.found
        elif outcome.operation in (Operation.CREATE, Operation.UPDATE, Operation.ENABLE):
            provisioned, disabled, deleted = True, False, False
        elif outcome.operation is Operation.DISABLE:
            provisioned, disabled = True, True
        elif outcome.operation is Operation.DELETE:
            deleted = True
    if failing:
        return "failing"
    if deleted:
        return "deleted"
    if disabled:
        return "disabled"
    return "in_sync" if provisioned else "never_provisioned"


@dataclass(slots=True)
class PersonTruth:
    """One person (Entra's source object), keyed by externalId, over the cycles emitted so far.

    `names`: (first cycle, userName as Entra sent it) in order - "A until cycle 5, B since";
    `scim_ids`: the target's ids as the lines showed them, in order (a re-created user gets a new
    one); `cycles`: the outcome per cycle index in which the person took part.
    """

    external_id: str
    job: str
    names: list[tuple[int, str]] = field(default_factory=list)
    scim_ids: list[str] = field(default_factory=list)
    cycles: dict[int, UserOutcome] = field(default_factory=dict)

    @property
    def source_id(self) -> str:
        """Entra's object id of the person (sourceIdentity.id in its logs)."""
        return source_id(self.job, self.external_id)

    @property
    def user_name(self) -> str:
        """The latest userName."""
        return self.names[-1][1]

    @property
    def scim_id(self) -> str | None:
        return self.scim_ids[-1] if self.scim_ids else None

    @property
    def state(self) -> str:
        return person_state([self.cycles[i] for i in sorted(self.cycles)])

    @property
    def failing(self) -> bool:
        return self.state == "failing"

    def name_keys(self) -> set[str]:
        return {name_key(name) for _, name in self.names}

    def name_at(self, cycle: int) -> str | None:
        """The userName the person had in cycle `cycle` (None before the first)."""
        found = None
        for since, name in self.names:
            if since > cycle:
                break
            found = name
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"external_id": self.external_id, "source_id": self.source_id,
                "names": [{"since_cycle": c, "user_name": n} for c, n in self.names],
                "scim_ids": list(self.scim_ids), "state": self.state,
                "cycles": {str(i): o.to_dict() for i, o in sorted(self.cycles.items())}}


@dataclass(frozen=True, slots=True)
class PersonEvent:
    """What one person's requests in one cycle came to, as Entra would log it (`record_events`).

    `intent` is what Entra set out to do (create, update, disable, enable, delete, none, or an
    identity op: rename, case, recreate, fix, collide); `previous_name` is set when the userName
    changed in this cycle; `scim_id` is the target's id after the cycle (None if none yet).
    """

    cycle: int
    cycle_id: str
    at: datetime  # the person's last request in the cycle
    external_id: str
    source_id: str
    user_name: str
    previous_name: str | None
    intent: str
    outcome: UserOutcome
    scim_type: str | None
    detail: str | None
    scim_id: str | None
    duration_ms: float


@dataclass(frozen=True)
class Scenario:
    kind: str  # auth_outage, lookup_404, deletion_storm, silent
    cycles: tuple[int, ...]
    from_at: datetime
    to_at: datetime | None  # None: still going (silent)
    size: int | None = None  # deletion_storm: users disabled

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "cycles": list(self.cycles),
                               "from": format_ts(self.from_at),
                               "to": None if self.to_at is None else format_ts(self.to_at)}
        if self.size is not None:
            out["size"] = self.size
        return out


@dataclass(frozen=True)
class GroundTruth:
    """What the simulation did. `cycles` fills in while the lines are consumed."""

    config: SimConfig
    cycles: list[CycleTruth] = field(default_factory=list)
    storm_sizes: dict[int, int] = field(default_factory=dict)
    # kept while the lines are made when the config has realities or events, or record_events
    recorded: dict[str, PersonTruth] = field(default_factory=dict, repr=False)
    events: list[PersonEvent] = field(default_factory=list)  # with `record_events`
    # the simulator's users: the people of a plain run are found from them when asked
    sim_users: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def people(self) -> dict[str, PersonTruth]:
        """Each person of the cycles emitted so far, by externalId."""
        if self.config.identity or self.config.record_events:
            return self.recorded
        # a plain run: one name and at most one id per person (cheaper than keeping them all)
        out: dict[str, PersonTruth] = {}
        for cycle in self.cycles:
            for key, outcome in cycle.people.items():
                person = out.get(key)
                if person is None:
                    person = out[key] = PersonTruth(key, self.config.job)
                person.cycles[cycle.index] = outcome
        for user in self.sim_users:
            person = out.get(user.external_id)
            if person is not None:
                person.names.append((min(person.cycles), user.user_name))
                if user.sid is not None:
                    person.scim_ids.append(user.sid)
        return out

    def states(self) -> dict[str, str]:
        """Each person's final state, by externalId."""
        return {key: person.state for key, person in self.people.items()}

    def failing(self) -> set[str]:
        """The externalIds of the people failing at the end."""
        return {key for key, person in self.people.items() if person.failing}

    def scenarios(self) -> list[Scenario]:
        """Scenarios of the cycles emitted so far; runs of consecutive cycles are merged."""
        cfg, by_index = self.config, {c.index: c for c in self.cycles}
        out = []
        for kind, indexes in (("auth_outage", cfg.auth_outage_cycles),
                              ("lookup_404", cfg.lookup_404_cycles)):
            for run in _runs(sorted(i for i in set(indexes) if i in by_index)):
                out.append(Scenario(kind, run, by_index[run[0]].started_at,
                                    by_index[run[-1]].ended_at))
        storm = by_index.get(cfg.deletion_storm_cycle)  # type: ignore[arg-type]
        if storm is not None:
            out.append(Scenario("deletion_storm", (storm.index,), storm.started_at,
                                storm.ended_at, self.storm_sizes.get(storm.index, 0)))
        last = by_index.get(cfg.silent_after_cycle)  # type: ignore[arg-type]
        if last is not None and not last.truncated:
            missing = tuple(range(last.index + 1, cfg.cycles))
            out.append(Scenario("silent", missing, last.ended_at, None))
        return out

    def to_dict(self) -> dict[str, Any]:
        identity = self.config.identity  # without realities the dict is as it always was
        out = {"job": self.config.job, "seed": self.config.seed,
               "users_in_scope_initial": self.config.users,
               "cycles": [c.to_dict(people=identity) for c in self.cycles],
               "scenarios": [s.to_dict() for s in self.scenarios()]}
        if identity:
            out["people"] = {key: p.to_dict() for key, p in self.people.items()}
        return out


def source_id(job: str, external_id: str) -> str:
    """Entra's object id of the person with this externalId (stable per job and person)."""
    return str(uuid.uuid5(_SOURCE_NS, f"{job}/{external_id}"))


def format_ts(at: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and "Z", as the simulated lines write it."""
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _runs(indexes: list[int]) -> Iterator[tuple[int, ...]]:
    run: list[int] = []
    for i in indexes:
        if run and i != run[-1] + 1:
            yield tuple(run)
            run = []
        run.append(i)
    if run:
        yield tuple(run)
