"""The endpoint check against real targets on 127.0.0.1: scim2-server over HTTP, and a
uniFLOW-like target over HTTPS with a certificate made here; from the CLI and the job page."""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import g
from sqlalchemy import select

from dashboard.admin import accounts
from dashboard.admin.endpoint import KEY_VARIABLE
from dashboard.analysis.probe import UNIFLOW_EXTENSION
from dashboard.db import db
from dashboard.models import AuditEntry, EndpointCheck, EndpointCredential
from tests.capture.conftest import JOB, TOKEN
from tests.web.signin import csrf_token, signed_in

EMPTY = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "Resources": []}
SPC = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"], "patch": {"supported": True},
       "filter": {"supported": True, "maxResults": 100}}
SCHEMAS = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 1, "Resources": [
    {"id": UNIFLOW_EXTENSION, "attributes": [{"name": n} for n in
                                             ("cardNumber", "cardRegistrationCode", "localUsername", "pin")]}]}
UNIFLOW_TOKEN = "uniflow-secret-token-b61d0e"


@pytest.fixture(autouse=True)
def _key(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(KEY_VARIABLE, Fernet.generate_key().decode())


def _certificate(directory: Path, days: int) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"cert-{days}.pem", directory / f"key-{days}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Target:
    """A uniFLOW-like SCIM target over HTTPS; `lookup_status` 404 makes it non-compliant."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.lookup_status = 200
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {UNIFLOW_TOKEN}":
                    return self._send(401, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "401"})
                path = self.path.split("?", 1)[0]
                if path.endswith("/Users"):
                    return self._send(target.lookup_status, EMPTY if target.lookup_status == 200 else None)
                if path.endswith("/ServiceProviderConfig"):
                    return self._send(200, SPC)
                if path.endswith("/Schemas"):
                    return self._send(200, SCHEMAS)
                return self._send(404, None)

            def _send(self, status: int, body: object) -> None:
                data = orjson.dumps(body) if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/scim+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/scim/v2"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def https_target(tmp_path) -> Iterator[tuple[Target, Path]]:  # type: ignore[no-untyped-def]
    cert, key = _certificate(tmp_path, days=90)
    target = Target(cert, key)
    yield target, cert
    target.close()


def _probe(runner, *args: str, token: str | None = None):  # type: ignore[no-untyped-def]
    extra = ["--token-stdin"] if token is not None else []
    return runner.invoke(args=["probe", "--job", JOB, *args, *extra], input=(token + "\n") if token else None)


def _stored_text() -> str:
    db.session.rollback()
    rows = list(db.session.scalars(select(EndpointCredential))) + list(db.session.scalars(select(EndpointCheck)))
    return json.dumps([{c.name: str(getattr(r, c.name)) for c in r.__table__.columns} for r in rows])


def test_scim2_server_over_http_passes_the_filter_and_fails_tls_and_the_uniflow_schema(runner, upstream):
    result = _probe(runner, "--tenant-url", f"{upstream}/scim/v2", token=TOKEN)

    assert result.exit_code == 1, result.output
    assert "[pass] Filter on a random GUID" in result.output
    assert "200 with an empty ListResponse" in result.output
    assert "[fail] TLS: the tenant URL is not https://" in result.output
    assert "[fail] /Schemas (uniFLOW extension)" in result.output
    assert "[pass] Content-Type: application/scim+json" in result.output
    assert TOKEN not in result.output and TOKEN not in _stored_text()
    assert db.session.scalar(select(EndpointCredential.token_encrypted)) != TOKEN


def test_a_wrong_token_is_told_in_entras_terms(runner, upstream):
    result = _probe(runner, "--tenant-url", f"{upstream}/scim/v2", token="not-the-token")

    assert result.exit_code == 1
    assert "answered 401: the secret token was rejected" in result.output
    assert "EncounteredQuarantineException" in result.output


def test_a_compliant_https_target_passes_and_a_404_on_the_filter_fails(runner, https_target):
    target, cert = https_target
    good = _probe(runner, "--tenant-url", target.url, "--ca-file", str(cert), token=UNIFLOW_TOKEN)
    target.lookup_status = 404
    bad = _probe(runner, "--ca-file", str(cert))  # the stored credential, used again
    untrusted = _probe(runner)  # the system's CAs do not know this certificate

    assert good.exit_code == 0, good.output
    assert "[pass] TLS: certificate valid, valid until" in good.output
    assert "[pass] /Schemas (uniFLOW extension): the uniFLOW extension has cardNumber, cardRegistrationCode, localUsername, pin" in good.output
    assert bad.exit_code == 1 and "404 instead of an empty list" in bad.output and "SCIM-compliance" in bad.output
    assert untrusted.exit_code == 1 and "[fail] TLS: the certificate was not accepted" in untrusted.output
    db.session.rollback()
    assert [c.outcome for c in db.session.scalars(select(EndpointCheck).order_by(EndpointCheck.id))] == [
        "pass", "fail", "fail"]


def test_a_certificate_expiring_within_14_days_is_warned(runner, tmp_path):
    cert, key = _certificate(tmp_path, days=10)
    target = Target(cert, key)
    try:
        result = _probe(runner, "--tenant-url", target.url, "--ca-file", str(cert), token=UNIFLOW_TOKEN)
    finally:
        target.close()

    assert result.exit_code == 0, result.output
    assert "[warn] TLS: the certificate is valid but expires on" in result.output


def test_without_the_encryption_key_nothing_is_stored_and_the_error_says_why(runner, upstream, monkeypatch):
    monkeypatch.delenv(KEY_VARIABLE)
    result = _probe(runner, "--tenant-url", f"{upstream}/scim/v2", token=TOKEN)

    assert result.exit_code == 2
    assert f"{KEY_VARIABLE} is not set" in result.output
    assert db.session.scalar(select(EndpointCredential)) is None


def test_the_job_page_stores_the_token_once_never_shows_it_and_keeps_the_history(client, app, https_target,
                                                                                 monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    target, cert = https_target
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the page uses the system's CAs: this one, here
    signed_in(client, "admin")
    page = "/jobs/uniflow-prod"
    saved = client.post("/admin/jobs/uniflow-prod/endpoint",
                        data={"tenant_url": target.url, "token": UNIFLOW_TOKEN, "csrf_token": csrf_token(client, page)})
    assert saved.status_code == 302
    g.pop("csrf_token", None)
    shown = client.get(page).get_data(as_text=True)
    checked = client.post("/admin/jobs/uniflow-prod/endpoint/check", data={"csrf_token": csrf_token(client, page)})
    assert checked.status_code == 302
    after = client.get(page).get_data(as_text=True)

    assert "A token is stored, set" in shown and UNIFLOW_TOKEN not in shown
    assert 'name="token" autocomplete="off" value=""' in shown
    assert "Filter on a random GUID" in after and "200 with an empty ListResponse" in after
    assert "passed" in after and UNIFLOW_TOKEN not in after
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "endpoint.credential")).all()
    assert [e.detail for e in entries] == ["tenant URL and a new secret token set"]
    assert UNIFLOW_TOKEN not in _stored_text()


def test_viewers_and_support_do_not_see_the_endpoint_card(client, app, monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    signed_in(client, "support")
    assert "Endpoint check" not in client.get("/jobs/uniflow-prod").get_data(as_text=True)
