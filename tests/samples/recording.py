"""Record the traffic of real SCIM software as SCIM request log v1 lines.

scim2-server (a SCIM server from PyPI, in memory) is driven by scim2-client (its WSGI engine:
in-process, no network) through what Entra does to a target over three provisioning cycles,
including what real tenants do every week: a userName renamed under the same externalId, a
case-only rename, two people colliding on one userName (the second create answered 409
uniqueness by the server), a user deleted in the target behind Entra's back and re-created with
a new id, a disable and a re-enable, a delete, lookups that find nothing. A WSGI middleware
between the two writes each HTTP exchange as one v1 line.

The run is deterministic but for `duration_ms`: times come from a clock the driver moves (the
server's meta.created/lastModified too), the server's ids from a counter. Regenerate the
committed recording (tests/data/samples/scim2-server/recorded.jsonl) from the repository root:

    .venv/bin/python -m tests.samples.recording
"""
from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scim2_client.engines.wsgi import WSGISCIMClient
from scim2_models import (
    Error,
    PatchOp,
    PatchOperation,
    ScimProvider,
    SearchRequest,
    User,
)
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)

RECORDED = Path(__file__).resolve().parents[1] / "data" / "samples" / "scim2-server" / "recorded.jsonl"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CYCLE_EVERY = timedelta(minutes=40)  # Entra's interval; the dashboard splits cycles on 15-minute gaps
STEP = timedelta(seconds=1)
PREFIX = "/scim"
TOKEN = "recording-token-not-a-secret"  # the server's bearer token; the log says [redacted]
# Entra's connection test looks up a random GUID at a cycle's start
TEST_GUIDS = ("9c1f6b52-6f0e-4a43-9d8e-1e7c0c3f5a01", "4b7e2d90-3a5c-4f11-8b6e-7d2a9c0e4b02",
              "e2a84c17-95d3-4c6b-a0f4-52b1d7e9c303")


@dataclass
class Person:
    """Someone Entra provisions: their externalId (Entra's source object) and userName over time."""

    key: str
    external_id: str
    names: list[str]
    scim_ids: list[str] = field(default_factory=list)


PEOPLE = {
    "alice": Person("alice", "0b6a1a4e-3c1d-4a52-9e61-5f2a7c1d0a01", ["alice@contoso.com", "alice.smith@contoso.com"]),
    "bob": Person("bob", "1c7b2b5f-4d2e-4b63-8f72-6a3b8d2e1b02", ["bob@contoso.com", "Bob@Contoso.com"]),
    "carol": Person("carol", "2d8c3c60-5e3f-4c74-9083-7b4c9e3f2c03", ["carol@contoso.com"]),
    "dave": Person("dave", "3e9d4d71-6f40-4d85-a194-8c5daf403d04", ["dave@contoso.com"]),
    "erin": Person("erin", "4fae5e82-7051-4e96-b2a5-9d6eb0514e05", ["erin@contoso.com"]),
    "frank": Person("frank", "50bf6f93-8162-4fa7-83b6-ae7fc1625f06", ["frank@contoso.com"]),
    # another person whose mail collided with frank's: same userName, their own externalId
    "frank2": Person("frank2", "61c070a4-9273-40b8-94c7-bf80d2736007", ["frank@contoso.com"]),
}
GHOST = "ghost@contoso.com"  # looked up every cycle, never found, never created (e.g. out of scope)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


class CountingStorage(InMemoryStorage):
    """scim2-server's in-memory storage with ids from a counter, so that a run is reproducible."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__(clock=clock)
        self.issued = 0

    def generate_id(self, resource_type: Any, resource: Any) -> str:
        self.issued += 1
        return f"{self.issued:08x}{'0' * 20}{self.issued:04x}"


class Recorder:
    """WSGI middleware: serves the SCIM app under PREFIX and writes each exchange as a v1 line."""

    def __init__(self, app: Callable[..., Iterable[bytes]], clock: Clock) -> None:
        self.app, self.clock = app, clock
        self.lines: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = PREFIX, path.removeprefix(PREFIX)
        status: list[str] = []

        def recording_start(status_line: str, headers: list, exc_info: Any = None) -> Any:
            status[:] = [status_line]
            return start_response(status_line, headers, exc_info)

        started = time.perf_counter()
        chunks = list(self.app(environ, recording_start))
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        answer = b"".join(chunks)
        headers = {key[5:].lower().replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if "authorization" in headers:
            headers["authorization"] = "[redacted]"
        line: dict[str, Any] = {
            "ts": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "method": environ["REQUEST_METHOD"],
            "path": path,
        }
        if environ.get("QUERY_STRING"):
            line["query"] = environ["QUERY_STRING"]
        line.update(
            status=int(status[0].split(" ", 1)[0]),
            duration_ms=duration_ms,
            request_id=f"scim2-server-{len(self.lines) + 1:03d}",
            client=headers.get("user-agent"),
            request_headers=headers,
            request_body=json.loads(body) if body else None,
            response_body=json.loads(answer) if answer else None,
        )
        self.lines.append(line)
        self.clock.advance(STEP)
        return [answer]


@dataclass
class Step:
    """What the driver did and what the server answered: the ground truth of the recording."""

    cycle: int
    person: str  # a PEOPLE key, GHOST, or "" for the connection test
    action: str  # lookup, create, read, rename, update, disable, enable, delete, test
    status: int
    scim_type: str | None = None
    found: int | None = None  # a lookup's totalResults


@dataclass
class Recording:
    lines: list[dict[str, Any]]
    steps: list[Step]
    people: dict[str, Person]


def record() -> Recording:
    """Run the three cycles against a fresh scim2-server and return the lines and the truth."""
    clock = Clock(START)
    storage = CountingStorage(clock.now)
    provider = ScimProvider.from_discovery(load_default_schemas().values(), load_default_resource_types().values(),
                                           config=load_default_service_provider_config())
    server = BearerTokenApplication(storage, provider, service=ScimService(provider, secret="s" * 32),
                                    bearer_tokens=[TOKEN])
    recorder = Recorder(server, clock)
    scim = WSGISCIMClient(recorder, base_url=f"http://localhost{PREFIX}/v2", provider=provider,
                          headers={"Authorization": f"Bearer {TOKEN}",
                                   "User-Agent": f"scim2-client/{version('scim2-client')}"},
                          raise_scim_errors=False)
    people = {key: Person(p.key, p.external_id, list(p.names)) for key, p in PEOPLE.items()}
    steps: list[Step] = []
    cycle = 0

    def answer(result: Any) -> tuple[int, str | None]:
        line = recorder.lines[-1]
        return line["status"], result.scim_type if isinstance(result, Error) else None

    def lookup(key: str, name: str) -> Any:
        result = scim.query(User, query_parameters=SearchRequest(filter=f'userName eq "{name}"'),
                            expected_status_codes=None)
        found = getattr(result, "total_results", None)
        steps.append(Step(cycle, key, "lookup" if key else "test", *answer(result), found=found))
        return result

    def create(key: str) -> None:
        person = people[key]
        user = User(user_name=person.names[0], external_id=person.external_id, active=True,
                    display_name=key.capitalize(), emails=[{"value": person.names[0], "type": "work", "primary": True}])
        result = scim.create(user, expected_status_codes=None)
        if not isinstance(result, Error) and getattr(result, "id", None):
            person.scim_ids.append(result.id)
        steps.append(Step(cycle, key, "create", *answer(result)))

    def patch(key: str, action: str, path: str, value: Any) -> None:
        operation = PatchOperation[User](op=PatchOperation.Op.replace_, path=path, value=value)
        result = scim.modify(User, people[key].scim_ids[-1], PatchOp[User](operations=[operation]),
                             expected_status_codes=None)
        steps.append(Step(cycle, key, action, *answer(result)))

    def read(key: str) -> None:
        result = scim.query(User, people[key].scim_ids[-1], expected_status_codes=None)
        steps.append(Step(cycle, key, "read", *answer(result)))

    def connection_test() -> None:
        lookup("", TEST_GUIDS[cycle - 1])

    # -- cycle 1, initial: everyone is looked up, then created; frank's and frank2's lookups both
    # come before either create (Entra works on several users at once), so the second create collides
    cycle = 1
    connection_test()
    for key in ("alice", "bob", "carol", "dave", "erin"):
        lookup(key, people[key].names[0])
        create(key)
    lookup("frank", "frank@contoso.com")
    lookup("frank2", "frank@contoso.com")
    create("frank")
    create("frank2")  # 409 uniqueness: scim2-server keeps userName unique (case-insensitively)
    lookup(GHOST, GHOST)

    # between the cycles an admin deletes carol in the target itself: Entra does not see it
    carol_type = load_default_resource_types()["User"]
    storage.delete(carol_type, people["carol"].scim_ids[-1])

    # -- cycle 2, incremental
    cycle = 2
    clock.at = START + CYCLE_EVERY
    connection_test()
    read("alice")
    patch("alice", "rename", "userName", "alice.smith@contoso.com")  # same externalId, new UPN
    read("bob")
    patch("bob", "rename", "userName", "Bob@Contoso.com")  # a change of case only
    patch("carol", "update", "displayName", "Carol C.")  # 404: carol is gone from the target
    patch("dave", "disable", "active", False)
    create("frank2")  # the escrowed create is retried: 409 again
    lookup(GHOST, GHOST)

    # -- cycle 3, incremental
    cycle = 3
    clock.at = START + 2 * CYCLE_EVERY
    connection_test()
    lookup("alice", "alice.smith@contoso.com")  # found under the new name: nothing to change
    lookup("bob", "Bob@Contoso.com")
    lookup("carol", "carol@contoso.com")  # not found: Entra creates her again, with a new id
    create("carol")
    patch("dave", "enable", "active", True)
    scim.delete(User, people["erin"].scim_ids[-1], expected_status_codes=None)  # erin left the scope
    steps.append(Step(cycle, "erin", "delete", recorder.lines[-1]["status"]))
    create("frank2")  # still 409
    lookup(GHOST, GHOST)
    return Recording(recorder.lines, steps, people)


def render(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False, sort_keys=False) + "\n" for line in lines)


def comparable(line: dict[str, Any]) -> dict[str, Any]:
    """A line without what differs between two runs: the time taken and the client's version."""
    return {key: value for key, value in line.items() if key not in ("duration_ms", "client")} | {
        "request_headers": {k: v for k, v in (line.get("request_headers") or {}).items() if k != "user-agent"}}


def main() -> None:
    run = record()
    RECORDED.parent.mkdir(parents=True, exist_ok=True)
    RECORDED.write_text(render(run.lines), encoding="utf-8")
    host = urlsplit("http://localhost").hostname
    print(f"wrote {RECORDED} ({len(run.lines)} exchanges, scim2-server {version('scim2-server')}, "
          f"scim2-client {version('scim2-client')}, in-process WSGI on {host}: no network)")


if __name__ == "__main__":
    main()
