"""Traffic and a real SMTP server for the notification tests."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import orjson
from aiosmtpd.controller import Controller

from dashboard.admin.jobs import get_job
from dashboard.db import db
from dashboard.demo.simulate import simulate_lines
from dashboard.demo.truth import SimConfig
from dashboard.ingest.scim import ingest_lines, options_from
from dashboard.settings import Settings, SmtpSettings

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
CYCLE = timedelta(minutes=40)
PIN = "PIN-4711-SECRET"
URN = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"
BAD_DEPARTMENT = (400, "invalidValue", "Attribute 'department' value 'Sales{n}' is not a cost center")


# -- traffic -------------------------------------------------------------------------------------------


def ingest(settings: Settings, lines: Iterable[bytes], *, job: str = "uniflow-prod") -> None:
    ingest_lines(db.engine, get_job(job), enumerate(lines, start=1), source="test", via="cli",
                 options=options_from(settings.ingest, cycles=settings.cycles))


def simulate(settings: Settings, config: SimConfig) -> dict:
    lines, truth = simulate_lines(config)
    ingest(settings, lines, job=config.job)
    return truth.to_dict()


def cycle_lines(index: int, *, users: int = 5, failing: dict[int, tuple[int, str | None, str]] | None = None,
                job: str = "uniflow-prod", status_all: int | None = None) -> list[bytes]:
    """Cycle `index` (starting at T0 + index x 40 min): each user looked up and updated, with a pin
    in the body. `failing` maps a user number to the (status, scimType, detail) of its PATCH;
    `status_all` answers every request with that status (401: credentials rejected)."""
    failing = failing or {}
    start = T0 + index * CYCLE
    lines = []
    for n in range(users):
        at = start + timedelta(seconds=2 * n)
        name = f"user{n}@contoso.com"
        found = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1,
                 "Resources": [{"id": f"id-{n}", "userName": name}]}
        lines.append(_line(at, "GET", "/scim/v2/Users", status_all or 200, f"{job}-{index}-{n}-get", job,
                           query=f'filter=userName eq "{name}"', response_body=found if not status_all else None))
        if status_all:
            continue
        status, scim_type, detail = failing.get(n, (200, None, ""))
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": f"{URN}:pin", "value": PIN},
                               {"op": "replace", "path": "title", "value": f"Engineer {index}"}]}
        response = ({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": str(status),
                     "scimType": scim_type, "detail": detail.format(n=n)} if status >= 400 else {"id": f"id-{n}", "userName": name})
        lines.append(_line(at + timedelta(seconds=1), "PATCH", f"/scim/v2/Users/id-{n}", status, f"{job}-{index}-{n}-patch",
                           job, request_body=body, response_body=response))
    return lines


def cycle_end(index: int, *, users: int = 5) -> datetime:
    return T0 + index * CYCLE + timedelta(seconds=2 * (users - 1) + 1)


def after_cycle(index: int, *, users: int = 5) -> datetime:
    """A moment when cycle `index` has completed (the quiet gap has passed) and the next has not begun."""
    return cycle_end(index, users=users) + timedelta(minutes=16)


def _line(at: datetime, method: str, path: str, status: int, request_id: str, job: str, **extra: object) -> bytes:
    record = {"ts": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "method": method, "path": path, "status": status,
              "duration_ms": 20.0, "request_id": request_id, "job": job,
              "request_headers": {"authorization": "Bearer SECRET-TOKEN-abc"}}
    record.update({k: v for k, v in extra.items() if v is not None})
    return orjson.dumps(record) + b"\n"


# -- a real SMTP server on loopback ------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes = b""  # as the server got it: headers can be checked unparsed

    @property
    def subject(self) -> str:
        return str(self.message["Subject"]).strip()  # a folded header may start on the next line

    @property
    def text(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]

    @property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


@dataclass
class Sink:
    """aiosmtpd handler: keeps each message it accepts."""

    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message,  # type: ignore[arg-type]
                                          bytes(envelope.original_content or envelope.content)))
        return "250 2.0.0 Ok: queued as TEST"


class SmtpServer:
    """An SMTP server on 127.0.0.1 and an ephemeral port, which a test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sink = Sink()
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        with self.sink.lock:
            return list(self.sink.messages)

    def settings(self) -> SmtpSettings:
        return SmtpSettings(host="127.0.0.1", port=self.port, security="none", from_address="monitor@example.com",
                            timeout_seconds=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    """Poll until `predicate` holds or the deadline passes (a bounded wait, no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
