"""The endpoint check's network side: ask the target what Entra asks it, record what it answered.

What the answers mean is analysis/probe.py's (PURE). The token goes in the Authorization header
only; nothing here logs or returns it.
"""
from __future__ import annotations

import socket
import ssl
import uuid
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import orjson
import urllib3

from dashboard.analysis.probe import Answer, Observed

USER_AGENT = "provisioning-dashboard endpoint check"


def observe(tenant_url: str, token: str, *, token_expires_at: datetime | None = None, ca_file: str | None = None,
            timeout: float = 15.0) -> Observed:
    base = tenant_url.rstrip("/")
    guid = str(uuid.uuid4())
    tls_error, expires = "", None
    if base.lower().startswith("https://"):
        tls_error, expires = _certificate(base, ca_file, timeout)
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout),
                               cert_reqs="CERT_REQUIRED", ca_certs=ca_file)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/scim+json",
               "User-Agent": USER_AGENT}
    try:
        query = quote('userName eq "' + guid + '"')
        lookup = _get(pool, f"{base}/Users?filter={query}", headers)
        spc = _get(pool, f"{base}/ServiceProviderConfig", headers)
        schemas = _get(pool, f"{base}/Schemas", headers)
    finally:
        pool.clear()
    return Observed(url=tenant_url, filter_guid=guid, lookup=lookup, service_provider_config=spc, schemas=schemas,
                    tls_error=tls_error, certificate_expires_at=expires, token_expires_at=token_expires_at)


def _get(pool: urllib3.PoolManager, url: str, headers: dict[str, str]) -> Answer:
    try:
        response = pool.request("GET", url, headers=headers, redirect=False)
    except urllib3.exceptions.HTTPError as error:
        return Answer(0, error=_reason(error))
    try:
        body = orjson.loads(response.data) if response.data else None
    except orjson.JSONDecodeError:
        body = None
    return Answer(response.status, response.headers.get("Content-Type", ""), body)


def _reason(error: BaseException) -> str:
    """An error's kind in a few words, without the URL (which could carry a query)."""
    inner = getattr(error, "reason", None) or error
    words = str(inner).split(": ", 1)[-1] if str(inner) else ""
    return f"{type(inner).__name__}{': ' + words[:200] if words else ''}"


def _certificate(url: str, ca_file: str | None, timeout: float) -> tuple[str, datetime | None]:
    """('', expiry) when the server's certificate verifies for its host name; else (why, None)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as error:
        return (error.verify_message or "certificate verification failed"), None
    except (ssl.SSLError, OSError) as error:
        return f"{type(error).__name__}: {error}"[:200], None
    not_after = cert.get("notAfter") if cert else None
    if not not_after:
        return "", None
    return "", datetime.fromtimestamp(ssl.cert_time_to_seconds(str(not_after)), UTC)
