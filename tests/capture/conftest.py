"""The capture's end-to-end fixtures: scim2-server (PyPI) served for real on 127.0.0.1 as the
upstream, the recording proxy in front of it with its writer on a database that the test can
make unreachable, and scim2-client (httpx2) as the caller, logging what it did and got."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)
from scim2_models import ScimProvider
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Response

from dashboard.admin.jobs import get_job
from dashboard.capture.proxy import CaptureProxy
from dashboard.capture.writer import CaptureWriter
from dashboard.ingest.scim import options_for
from tests.db_faults import CuttableDatabase
from tests.local_http import serving_app

JOB = "uniflow-prod"
TOKEN = "capture-upstream-token-7f3c9a"  # the upstream's bearer token: must never be recorded


def _provider() -> ScimProvider:
    return ScimProvider.from_discovery(load_default_schemas().values(), load_default_resource_types().values(),
                                       config=load_default_service_provider_config())


@pytest.fixture
def upstream() -> Iterator[str]:
    """scim2-server, in memory, under /scim, served by werkzeug on a free port."""
    provider = _provider()
    server = BearerTokenApplication(InMemoryStorage(), provider, service=ScimService(provider, secret="s" * 32),
                                    bearer_tokens=[TOKEN])
    app = DispatcherMiddleware(Response("not here", status=404), {"/scim": server})
    with serving_app(app) as url:
        yield url


@dataclass
class Capture:
    proxy: CaptureProxy
    writer: CaptureWriter
    database: CuttableDatabase
    spool: Path
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # what the caller did: method, path, status
    clients: list[Any] = field(default_factory=list)

    def client(self, token: str = TOKEN) -> SyncSCIMClient:
        """scim2-client through the proxy; every answer it gets is logged in `calls`."""

        def log(response: Any) -> None:
            self.calls.append((response.request.method, response.request.url.path, response.status_code))

        http = httpx2.Client(base_url=f"{self.proxy.url}/scim/v2", headers={"Authorization": f"Bearer {token}"},
                             event_hooks={"response": [log]}, timeout=30)
        self.clients.append(http)
        return SyncSCIMClient(http, provider=_provider(), raise_scim_errors=False)


@pytest.fixture
def isolated() -> bool:
    """The writer's ingest in this process (False) or in a child process (True: `flask capture`'s way)."""
    return False


@pytest.fixture
def capture(app, settings, upstream, tmp_path, database_url, isolated) -> Iterator[Capture]:  # type: ignore[no-untyped-def]
    database = CuttableDatabase(database_url, tmp_path)
    engine = database.engine()
    spool = tmp_path / "spool"
    options = options_for(settings)
    writer = CaptureWriter(engine, get_job(JOB), options, spool, flush_seconds=0.05, retry_seconds=0.05,
                           isolated=isolated).start()
    proxy = CaptureProxy(("127.0.0.1", 0), upstream, writer.submit, options.rules).start()
    capture = Capture(proxy, writer, database, spool)
    try:
        yield capture
    finally:
        for http in capture.clients:
            http.close()
        proxy.close()
        writer.close()
        engine.dispose()
        database.close()
