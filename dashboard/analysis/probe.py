"""The endpoint check's judgement (PURE): what Entra's "Test Connection" and each cycle's first
requests would make of what the target answered, in Entra's terms, with `now` passed in.

The network side (admin/endpoint_http.py) observes; this module judges. Each check gives an
outcome (pass, warn, fail), the result in a few words, and its consequence in Entra's terms.
"""
from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

UNIFLOW_EXTENSION = "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User"
UNIFLOW_ATTRIBUTES = ("cardNumber", "cardRegistrationCode", "localUsername", "pin")
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
WARN_AHEAD = timedelta(days=14)  # a certificate's or a secret token's expiry is told this early
ORDER = {"pass": 0, "warn": 1, "fail": 2}
QUARANTINE = "Entra quarantines the job (EncounteredQuarantineException)"


@dataclass(frozen=True)
class Answer:
    """One request of the check as the network side saw it."""

    status: int  # 0: no answer (refused, timed out, TLS failed)
    content_type: str = ""
    body: Any = None  # parsed JSON, or None
    error: str = ""  # why there was no answer


@dataclass(frozen=True)
class Observed:
    """Everything the check saw of one target."""

    url: str
    filter_guid: str
    lookup: Answer
    service_provider_config: Answer
    schemas: Answer
    tls_error: str = ""
    certificate_expires_at: datetime | None = None
    token_expires_at: datetime | None = None


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str  # pass, warn, fail
    result: str
    consequence: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    outcome: str
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "checks": [c.to_dict() for c in self.checks]}


def judge(observed: Observed, now: datetime) -> Verdict:
    checks = [
        _tls(observed, now),
        _lookup(observed),
        _content_type(observed.lookup),
        _service_provider_config(observed.service_provider_config),
        _schemas(observed.schemas),
    ]
    token = _token_expiry(observed.token_expires_at, now)
    if token is not None:
        checks.append(token)
    worst = max((c.outcome for c in checks), key=ORDER.__getitem__, default="pass")
    return Verdict(worst, checks)


def _tls(observed: Observed, now: datetime) -> Check:
    name = "TLS"
    if not observed.url.lower().startswith("https://"):
        return Check(name, "fail", "the tenant URL is not https://",
                     "Entra accepts only HTTPS tenant URLs: Test Connection fails and credentials cannot be saved.")
    if observed.tls_error:
        return Check(name, "fail", f"the certificate was not accepted: {observed.tls_error}",
                     "Entra cannot connect: Test Connection fails; during a cycle every request fails and "
                     + QUARANTINE + ".")
    expires = observed.certificate_expires_at
    if expires is not None and expires - now <= WARN_AHEAD:
        return Check(name, "warn", f"the certificate is valid but expires on {expires:%Y-%m-%d %H:%M} UTC",
                     "After that date Entra cannot connect and " + QUARANTINE + ": renew the certificate before.")
    until = f", valid until {expires:%Y-%m-%d}" if expires is not None else ""
    return Check(name, "pass", f"certificate valid{until}", "Entra can connect.")


def _lookup(observed: Observed) -> Check:
    name = "Filter on a random GUID"
    answer = observed.lookup
    query = f'GET /Users?filter=userName eq "{observed.filter_guid}"'
    if answer.status == 0:
        return Check(name, "fail", f"{query}: no answer ({answer.error or 'no response'})",
                     "Test Connection fails (Entra cannot reach the endpoint); during a cycle " + QUARANTINE + ".")
    if answer.status in (401, 403):
        return Check(name, "fail", f"{query} answered {answer.status}: the secret token was rejected",
                     "Test Connection fails and credentials cannot be saved; during a cycle " + QUARANTINE
                     + ". Enter a valid secret token in Admin Credentials.")
    if answer.status == 404:
        return Check(name, "fail", f"{query} answered 404 instead of an empty list",
                     "The documented SCIM-compliance failure: Test Connection fails; during a cycle "
                     + QUARANTINE + ". The target must answer 200 with an empty ListResponse.")
    if answer.status != 200:
        return Check(name, "fail", f"{query} answered {answer.status}",
                     "Test Connection fails: Entra expects 200 with an empty ListResponse.")
    body = answer.body if isinstance(answer.body, dict) else {}
    if LIST_RESPONSE not in (body.get("schemas") or []):
        return Check(name, "fail", f"{query} answered 200 but not with a SCIM ListResponse",
                     "Entra cannot read the answer: Test Connection fails and matching users cannot work.")
    total = body.get("totalResults")
    if total not in (0, None) or body.get("Resources"):
        return Check(name, "fail", f"{query} found {total} user(s) for a GUID no one has",
                     "The filter is ignored: Entra would match the wrong users (updates and deletes of "
                     "the wrong accounts). The target must apply the filter.")
    return Check(name, "pass", f"{query} answered 200 with an empty ListResponse",
                 "As Entra expects: Test Connection passes this step.")


def _content_type(answer: Answer) -> Check:
    name = "Content-Type"
    kind = answer.content_type.split(";", 1)[0].strip().lower()
    if answer.status == 0 or not kind:
        return Check(name, "warn", "no Content-Type to check", "Not judged: the lookup got no typed answer.")
    if kind == "application/scim+json":
        return Check(name, "pass", "application/scim+json", "As the SCIM standard (RFC 7644) and Entra expect.")
    if kind == "application/json":
        return Check(name, "warn", "application/json instead of application/scim+json",
                     "Entra reads it, but SCIM (RFC 7644 §8.1) requires application/scim+json: fix it in the target.")
    return Check(name, "fail", f"{kind} instead of application/scim+json",
                 "Entra cannot read SCIM answers of this type: requests fail and " + QUARANTINE + ".")


def _service_provider_config(answer: Answer) -> Check:
    name = "/ServiceProviderConfig"
    if answer.status == 0:
        return Check(name, "fail", f"no answer ({answer.error or 'no response'})", "Entra cannot discover the endpoint.")
    if answer.status != 200 or not isinstance(answer.body, dict):
        return Check(name, "warn", f"answered {answer.status}",
                     "Entra provisions without it, but cannot learn what the endpoint supports (PATCH, filter).")
    patch = (answer.body.get("patch") or {}).get("supported")
    filt = (answer.body.get("filter") or {}).get("supported")
    if patch is False or filt is False:
        missing = ", ".join(n for n, v in (("PATCH", patch), ("filter", filt)) if v is False)
        return Check(name, "fail", f"answered 200, but {missing} not supported",
                     "Entra matches users with filter and updates them with PATCH: lookups or updates fail.")
    return Check(name, "pass", "answered 200 (PATCH and filter supported)" if patch and filt else "answered 200",
                 "Entra can discover the endpoint.")


def _schemas(answer: Answer) -> Check:
    name = "/Schemas (uniFLOW extension)"
    if answer.status == 0:
        return Check(name, "fail", f"no answer ({answer.error or 'no response'})",
                     "The uniFLOW attributes cannot be checked.")
    if answer.status != 200:
        return Check(name, "fail", f"answered {answer.status}",
                     "Entra's attribute mappings to the uniFLOW extension cannot be verified: card and PIN "
                     "provisioning may fail with 400 invalidValue.")
    body = answer.body if isinstance(answer.body, dict) else {}
    resources = body.get("Resources") if "Resources" in body else [body] if body.get("id") else []
    extension = next((r for r in resources or [] if isinstance(r, dict) and r.get("id") == UNIFLOW_EXTENSION), None)
    if extension is None:
        return Check(name, "fail", f"{UNIFLOW_EXTENSION} is not published",
                     "Entra's mappings of cardNumber, cardRegistrationCode, localUsername and pin have nowhere "
                     "to go: those users fail with 400 (invalidValue / invalidPath).")
    have = {str(a.get("name", "")).lower() for a in extension.get("attributes") or [] if isinstance(a, dict)}
    missing = [a for a in UNIFLOW_ATTRIBUTES if a.lower() not in have]
    if missing:
        return Check(name, "fail", f"the uniFLOW extension lacks {', '.join(missing)}",
                     "Entra's mappings of those attributes fail with 400 (invalidPath): those users are "
                     "escrowed and count toward the quarantine thresholds.")
    return Check(name, "pass", "the uniFLOW extension has " + ", ".join(UNIFLOW_ATTRIBUTES),
                 "Entra's attribute mappings to the uniFLOW extension can be provisioned.")


def _token_expiry(expires: datetime | None, now: datetime) -> Check | None:
    if expires is None:
        return None
    name = "Secret token expiry"
    if expires <= now:
        return Check(name, "fail", f"the secret token expired on {expires:%Y-%m-%d %H:%M} UTC",
                     "Every request is answered 401 and " + QUARANTINE + ": enter a new secret token in Admin "
                     "Credentials, Test Connection, Save.")
    if expires - now <= WARN_AHEAD:
        return Check(name, "warn", f"the secret token expires on {expires:%Y-%m-%d %H:%M} UTC "
                     f"(in {(expires - now).days} days)",
                     "From then on every request is answered 401 and " + QUARANTINE + ": replace the token "
                     "in Admin Credentials before that date.")
    return Check(name, "pass", f"the secret token expires on {expires:%Y-%m-%d}", "Nothing to do yet.")


def token_expiry(token: str) -> datetime | None:
    """The expiry a token carries (a JWT's `exp`, read without verifying: the target verifies),
    or None for an opaque token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
        return datetime.fromtimestamp(int(exp), UTC) if isinstance(exp, int | float) else None
    except (ValueError, orjson.JSONDecodeError, OverflowError, OSError):
        return None


def token_warning(expires: datetime | None, now: datetime) -> str | None:
    """The job page's line about a stored token's expiry, when it is due within WARN_AHEAD."""
    check = _token_expiry(expires, now)
    if check is None or check.outcome == "pass":
        return None
    return f"{check.result}. {check.consequence}"
