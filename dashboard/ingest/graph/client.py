"""Pull provisioning events and a job's status from Microsoft Graph, with urllib only.

Client-credentials token (`POST {login_base}/{tenant}/oauth2/v2.0/token`), then
`GET {graph_base}/auditLogs/provisioning?$filter=activityDateTime gt <t>` following
`@odata.nextLink`, and `GET {graph_base}/servicePrincipals/{sp}/synchronization/jobs/{job}`.
Throttling (429, 503, 504) waits for Retry-After (bounded), a 401 fetches a new token once and
repeats the request. The clock (`now`) and `sleep` are injected, so tests need not wait.

Graph documents `eq`, `gt`, `lt` and `contains` on activityDateTime, not `ge`: the pull asks
for `gt` (watermark - overlap) and drops the ids it has already seen, so records at the
boundary are neither lost nor repeated (the loader's dedupe key catches anything else).
"""
from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from dashboard.formats.entra.jobstatus import parse_job_status
from dashboard.formats.entra.parse import convert_record
from dashboard.formats.entra.records import JobStatus, ProvisioningEvent, RawFormat
from dashboard.formats.entra.values import optional_time
from dashboard.formats.scim.records import ParseProblem
from dashboard.formats.scim.redact import DEFAULT_RULES, RedactionRules

log = logging.getLogger(__name__)
RETRYABLE = frozenset({429, 503, 504})
MAX_PAGES = 100_000  # a nextLink loop ends here


@dataclass(frozen=True)
class GraphConfig:
    tenant: str
    client_id: str
    client_secret: str = field(repr=False)
    login_base: str = "https://login.microsoftonline.com"
    graph_base: str = "https://graph.microsoft.com/v1.0"
    scope: str = "https://graph.microsoft.com/.default"
    page_size: int | None = None  # $top; None: Graph's default
    timeout_s: float = 30.0
    max_attempts: int = 5  # per request, throttling and network errors included
    max_wait_s: float = 300.0  # a longer Retry-After is cut to this
    overlap: timedelta = timedelta(minutes=30)  # re-read: records can arrive late (latency not documented)
    initial_lookback: timedelta = timedelta(days=30)  # first pull: the premium retention [ANALYZE]


@dataclass(frozen=True)
class Watermark:
    """Where the last complete pull ended: the latest activity time, and the ids at its end."""

    activity_at: datetime
    seen_ids: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {"activity_at": self.activity_at.isoformat(), "seen_ids": sorted(self.seen_ids)}

    @classmethod
    def from_json(cls, data: Any) -> Watermark | None:
        """None for anything that is not a stored watermark (the next pull starts afresh)."""
        if not isinstance(data, dict):
            return None
        at = optional_time(data.get("activity_at"))
        ids = data.get("seen_ids")
        if at is None or not isinstance(ids, list):
            return None
        return cls(at, frozenset(i for i in ids if isinstance(i, str)))


class GraphError(ValueError):
    """Graph or the token endpoint refused, or could not be reached after the allowed attempts."""

    def __init__(self, what: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status, self.code = status, code
        details = ", ".join(p for p in (f"HTTP {status}" if status else "", code or "") if p)
        super().__init__(f"{what} ({details})" if details else what)


class GraphClient:
    def __init__(
        self,
        config: GraphConfig,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        opener: urllib.request.OpenerDirector | None = None,
    ) -> None:
        self.config = config
        self.now = now
        self.sleep = sleep
        self._opener = opener or urllib.request.build_opener()
        self._token: str | None = None
        self._token_expires_at: datetime | None = None
        self._origin = _origin(config.graph_base)

    # -- public -------------------------------------------------------------------------------------

    def pull(
        self, watermark: Watermark | None, *, rules: RedactionRules = DEFAULT_RULES, since: datetime | None = None
    ) -> ProvisioningPull:
        """The provisioning events since `watermark`, to iterate once.

        Without a watermark: since `since`, else `initial_lookback` before now.
        """
        return ProvisioningPull(self, watermark, rules, since=since)

    def get_job_json(self, service_principal_id: str, job_id: str) -> dict[str, Any]:
        url = (
            f"{self.config.graph_base.rstrip('/')}/servicePrincipals/{quote(service_principal_id, safe='')}"
            f"/synchronization/jobs/{quote(job_id, safe='')}"
        )
        return self.get_json(url)

    def get_job(self, service_principal_id: str, job_id: str) -> JobStatus:
        return parse_job_status(self.get_job_json(service_principal_id, job_id))

    def get_json(self, url: str) -> dict[str, Any]:
        """GET a Graph URL with the bearer token; one new token on a 401; waits when throttled."""
        if _origin(url) != self._origin:
            # never send the token elsewhere, whatever a nextLink says
            raise GraphError(f"refusing to follow a link outside {self._origin}: {url[:200]}")
        refreshed = False
        while True:
            request = urllib.request.Request(
                url, headers={"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
            )
            status, headers, body = self._send(request, what="Graph")
            if status == 401 and not refreshed:
                log.info("Graph answered 401; fetching a new token and repeating the request once")
                self._token = None
                refreshed = True
                continue
            if status != 200:
                raise GraphError(f"GET {urlsplit(url).path} failed", status=status, code=_error_code(body))
            return _json(body, "Graph")

    def token(self) -> str:
        """A cached client-credentials token, fetched again 5 minutes before it expires."""
        now = self.now()
        if self._token and self._token_expires_at and now < self._token_expires_at:
            return self._token
        config = self.config
        url = f"{config.login_base.rstrip('/')}/{quote(config.tenant, safe='')}/oauth2/v2.0/token"
        form = urlencode({
            "client_id": config.client_id, "client_secret": config.client_secret,
            "scope": config.scope, "grant_type": "client_credentials",
        }).encode()
        request = urllib.request.Request(
            url, data=form, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        status, _, body = self._send(request, what="the token endpoint")
        if status != 200:
            raise GraphError("no access token", status=status, code=_error_code(body))
        answer = _json(body, "the token endpoint")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise GraphError("the token endpoint answered without an access_token")
        try:
            lifetime = float(answer.get("expires_in", 3599))
        except (TypeError, ValueError):
            lifetime = 3599.0
        self._token = token
        self._token_expires_at = now + timedelta(seconds=max(0.0, lifetime - 300))
        return token

    # -- HTTP ---------------------------------------------------------------------------------------

    def _send(self, request: urllib.request.Request, *, what: str) -> tuple[int, Any, bytes]:
        """(status, headers, body), repeating throttled and failed attempts up to max_attempts."""
        attempts = self.config.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                with self._opener.open(request, timeout=self.config.timeout_s) as response:
                    status, headers, body = response.status, response.headers, response.read()
            except urllib.error.HTTPError as exc:
                with exc:
                    status, headers, body = exc.code, exc.headers, exc.read()
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == attempts:
                    raise GraphError(f"{what} could not be reached after {attempts} attempts: {exc}") from None
                self._wait(2.0 ** attempt, what, f"unreachable ({exc})")
                continue
            if status in RETRYABLE and attempt < attempts:
                self._wait(self._retry_after(headers, attempt), what, f"HTTP {status}")
                continue
            if status in RETRYABLE:
                raise GraphError(f"{what} still throttled after {attempts} attempts", status=status,
                                 code=_error_code(body))
            return status, headers, body
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_after(self, headers: Any, attempt: int) -> float:
        value = headers.get("Retry-After") if headers is not None else None
        if value:
            value = value.strip()
            if value.isdigit():
                return float(value)
            try:
                return max(0.0, (parsedate_to_datetime(value) - self.now()).total_seconds())
            except (TypeError, ValueError):
                pass
        return 2.0 ** attempt  # no (readable) Retry-After: back off exponentially

    def _wait(self, seconds: float, what: str, why: str) -> None:
        seconds = min(seconds, self.config.max_wait_s)
        log.warning("%s: %s; waiting %.1f s before the next attempt", what, why, seconds)
        self.sleep(seconds)


class ProvisioningPull:
    """One pull: iterate it for events and problems; `watermark` moves only when it completes.

    A pull that raises (GraphError) part-way keeps the old watermark, so the next pull reads the
    same span again; what was already stored is recognised by its dedupe key.
    """

    def __init__(
        self, client: GraphClient, watermark: Watermark | None, rules: RedactionRules, *, since: datetime | None = None
    ) -> None:
        self.client = client
        self.previous = watermark
        self.watermark = watermark
        self.rules = rules
        self.complete = False
        self.pages = 0
        self.records = 0
        self.skipped = 0  # already seen by the previous pull
        self.since = self._since(since)

    def _since(self, since: datetime | None) -> datetime:
        config = self.client.config
        if self.previous is None:
            return since if since is not None else _minus(self.client.now(), config.initial_lookback)
        return _minus(self.previous.activity_at, config.overlap)

    def first_url(self) -> str:
        config = self.client.config
        stamp = self.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = "$filter=" + quote(f"activityDateTime gt {stamp}", safe=":")
        if config.page_size:
            query += f"&$top={int(config.page_size)}"
        return f"{config.graph_base.rstrip('/')}/auditLogs/provisioning?{query}"

    def __iter__(self) -> Iterator[ProvisioningEvent | ParseProblem]:
        seen_before = self.previous.seen_ids if self.previous else frozenset()
        latest = self.previous.activity_at if self.previous else None
        horizon = self.client.now() + WATERMARK_AHEAD
        times: dict[str, datetime] = {}
        url: str | None = self.first_url()
        while url:
            if self.pages >= MAX_PAGES:
                raise GraphError(f"more than {MAX_PAGES} pages: is the nextLink looping?")
            page = self.client.get_json(url)
            self.pages += 1
            items = page.get("value")
            if not isinstance(items, list):
                raise GraphError(f"page {self.pages} has no 'value' array")
            for number, item in enumerate(items, 1):
                self.records += 1
                result = convert_record(
                    item, self.records, fmt=RawFormat.GRAPH, rules=self.rules, where=f"page {self.pages} record {number}"
                )
                if isinstance(result, ProvisioningEvent):
                    # an event dated ahead of now (a clock gone wrong) never moves the watermark:
                    # every later pull would ask for events after it and find none, for ever
                    if (latest is None or result.activity_at > latest) and result.activity_at <= horizon:
                        latest = result.activity_at
                    if result.id:
                        times[result.id] = result.activity_at
                        if result.id in seen_before:
                            self.skipped += 1
                            continue
                yield result
            next_link = page.get("@odata.nextLink")
            url = next_link if isinstance(next_link, str) and next_link else None
        if latest is not None:
            keep_from = _minus(latest, self.client.config.overlap)
            self.watermark = Watermark(latest, frozenset(i for i, at in times.items() if at >= keep_from))
        self.complete = True


WATERMARK_AHEAD = timedelta(hours=1)  # as ingest.future_tolerance_minutes' default


def _minus(at: datetime, span: timedelta) -> datetime:
    """`at` - `span`, or the first representable instant (an event dated 0001-01-01 is read)."""
    try:
        return at - span
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise GraphError(f"{what} answered with something that is not JSON: {body[:80]!r}") from None
    if not isinstance(data, dict):
        raise GraphError(f"{what} answered with JSON that is not an object")
    return data


def _error_code(body: bytes) -> str | None:
    """Graph's error.code, or the token endpoint's `error` (e.g. invalid_client)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("code") or "") or None
    return str(error) if isinstance(error, str) else None
