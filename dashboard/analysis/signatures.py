"""Group failures by cause, and say what an admin should do about each cause."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_NORMALISERS = (
    (re.compile(r"'[^']*'"), "'<value>'"),
    (re.compile(r'"[^"]*"'), '"<value>"'),
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "<email>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b[0-9a-fA-F]{16,}\b"), "<id>"),
    (re.compile(r"\b(?=[\w-]*\d)[\w-]+\b"), "<n>"),  # numbers and ids such as id-4711 or u123
)


@dataclass(frozen=True)
class Action:
    """Entra's nearest error code, a title, and what to do (written for an admin)."""

    code: str
    title: str
    action: str
    quarantine: bool = False


@dataclass(frozen=True)
class Signature:
    operation: str
    status: int
    scim_type: str | None
    pattern: str

    @property
    def key(self) -> int:
        text = f"{self.operation}\0{self.status}\0{self.scim_type or ''}\0{self.pattern}"
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)

    @property
    def action(self) -> Action:
        return recommended_action(self.operation, self.status, self.scim_type)


def normalise_detail(detail: str | None) -> str:
    """The detail with the parts that differ per user (addresses, ids, names, numbers) replaced."""
    if not detail:
        return ""
    text = detail.strip()[:500]
    for pattern, replacement in _NORMALISERS:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+", " ", text)


def signature_of(operation: str, status: int, scim_type: str | None, detail: str | None) -> Signature:
    group = "lookup" if operation in ("lookup", "connection_test") else operation
    return Signature(group, status, scim_type or None, normalise_detail(detail))


def is_signature_worthy(status: int) -> bool:
    return status == 0 or status >= 400


_TOKEN = Action(
    "EncounteredQuarantineException",
    "Credentials rejected (401/403)",
    "The target rejected Entra's bearer token. Generate a new secret token in uniFLOW Online "
    "(Extensions > Identity Providers > your Entra provider > Provisioning; it is shown only once), "
    "enter it in Entra > Enterprise applications > the app > Provisioning > Admin Credentials > "
    "Secret Token, run Test Connection and save. Entra has quarantined the job until a cycle succeeds.",
    quarantine=True,
)
_LOOKUP_404 = Action(
    "EncounteredQuarantineException",
    "Lookup answered 404 (SCIM compliance)",
    "A GET /Users?filter=... answered 404 where SCIM (RFC 7644 section 3.4.2) requires 200 with an "
    "empty ListResponse. Check that the Tenant URL in Admin Credentials is right (it usually ends in "
    "/scim or /scim/v2); if it is, ask the application's vendor to fix the endpoint. Entra quarantines "
    "the job for this whatever the failure counts.",
    quarantine=True,
)
_ACTIONS: dict[tuple[str | None, int | None, str | None], Action] = {
    (None, 409, "uniqueness"): Action(
        "EntryConflict",
        "Uniqueness conflict (409)",
        "A user with this userName (or another unique value) already exists in the target. Check the "
        "matching attribute in Entra's attribute mappings (userName / externalId) so the existing account "
        "is matched instead of created, or remove or rename the duplicate account in the target.",
    ),
    (None, 409, None): Action(
        "EntryConflict",
        "Conflict (409)",
        "The target reports a conflicting value. Compare the source values with the existing account; fix "
        "the value or the matching attribute so the account is matched.",
    ),
    (None, 400, "invalidValue"): Action(
        "SystemForCrossDomainIdentityManagementBadRequest",
        "Invalid value (400)",
        "The target rejected an attribute value (see the detail for which). Fix the value in Entra or the "
        "attribute mapping (format, length, allowed values); Entra retries the user in the next cycle.",
    ),
    (None, 400, "mutability"): Action(
        "SystemForCrossDomainIdentityManagementBadRequest",
        "Read-only attribute (400 mutability)",
        "A mapping writes an attribute the target treats as read-only. Remove it from the attribute "
        "mappings or set it to apply on create only.",
    ),
    (None, 400, "invalidSyntax"): Action(
        "SystemForCrossDomainIdentityManagementServiceIncompatible",
        "Request not understood (400 invalidSyntax)",
        "The target could not parse Entra's request. If the PATCH uses string values such as "
        "\"False\" or capitalised ops, add ?aadOptscim062020 to the Tenant URL; else contact the vendor.",
    ),
    (None, 400, "invalidPath"): Action(
        "SchemaAttributeNotFound",
        "Unknown attribute path (400 invalidPath)",
        "A mapped attribute does not exist in the target's schema. Fix or remove the mapping.",
    ),
    (None, 400, None): Action(
        "SystemForCrossDomainIdentityManagementBadRequest",
        "Bad request (400)",
        "The target rejected the request. Read the detail and the sample request; fix the value or mapping.",
    ),
    ("lookup", 404, None): _LOOKUP_404,
    (None, 404, None): Action(
        "InvalidAnchor",
        "User no longer exists in the target (404)",
        "Entra updated an account id that the target does not know any more (deleted there). Restore the "
        "account in the target, or restart provisioning so Entra matches or creates it again.",
    ),
    (None, 401, None): _TOKEN,
    (None, 403, None): _TOKEN,
    (None, 429, None): Action(
        "TooManyRequests",
        "Throttled (429)",
        "The target is rate-limiting Entra. Nothing to do for a short burst: Entra retries. If it persists, "
        "ask the vendor about the tenant's rate limit; a long storm can lead to quarantine.",
    ),
    (None, 500, None): Action(
        "InternalServerError",
        "Target error (5xx)",
        "The target failed internally. Entra retries in about 40 minutes. If it persists, send the sample "
        "request (export it from this page) to the vendor's support.",
    ),
    (None, 501, None): Action(
        "NotImplemented",
        "Not implemented (501)",
        "The target does not support this operation. Check the app's provisioning guide; disable the "
        "operation in Entra's mapping settings if the target cannot do it.",
    ),
    (None, 0, None): Action(
        "Timeout",
        "No response (time-out or reset)",
        "The target did not answer. Entra retries in about 40 minutes. Check the target's availability and "
        "response times; a long outage quarantines the job.",
    ),
}
_GENERIC = Action(
    "UnprocessableEntity",
    "Unexpected response",
    "The target answered with an unexpected error. Read the detail and the sample exchange; check the "
    "app's configuration or contact the vendor.",
)


def _entra(code: str, title: str, action: str, quarantine: bool = False) -> tuple[str, Action]:
    return code.lower(), Action(code, title, action, quarantine)


# Entra's own error codes (reference 4.1, 4.2): an imported provisioning event's signature carries
# one where an exchange carries a scimType.
_ENTRA_CODES: dict[str, Action] = dict([
    _entra("EntryConflict", "Conflicting values (EntryConflict)",
           "A value conflicts with an existing account in Entra or the target. Fix the value, or the matching "
           "attribute if the existing account should have been matched."),
    _entra("TooManyRequests", "Throttled by the target", "Nothing to do for a short burst: Entra retries."),
    _entra("InternalServerError", "Target error", "Entra retries in about 40 minutes; if it persists, contact the vendor."),
    _entra("Unauthorized", "Not authorised by the target",
           "Entra authenticated but may not do this. Check the token's rights in the target and the app's tutorial."),
    _entra("InsufficientRights", "Not authorised by the target",
           "Entra authenticated but may not do this. Check the token's rights in the target and the app's tutorial."),
    _entra("InvalidAnchor", "User no longer exists in the target",
           "A user Entra created or matched is gone from the target. Restore it, or restart provisioning to match again."),
    _entra("MandatoryFieldsMissing", "Required values missing", "Fill the source values or fix the attribute mappings."),
    _entra("MissingValues", "Required values missing", "Fill the source values or fix the attribute mappings."),
    _entra("SchemaAttributeNotFound", "Mapped attribute unknown to the target", "Fix or remove the attribute mapping."),
    _entra("InvalidDomain", "Invalid domain in a value", "Fix the value or allow the domain in the target."),
    _entra("Timeout", "Target too slow", "Entra retries in about 40 minutes; check the target's response times."),
    _entra("LicenseLimitExceeded", "No licences left in the target", "Buy licences or narrow the assignments."),
    _entra("DuplicateTargetEntries", "Several target accounts match",
           "Remove the duplicate account in the target or change the matching attributes."),
    _entra("DuplicateSourceEntries", "Several source users match",
           "Remove the duplicate in Entra or change the matching attributes."),
    _entra("SystemForCrossDomainIdentityManagementServiceIncompatible", "Target's response not understood",
           "Make the SCIM endpoint compatible (or add ?aadOptscim062020 to the Tenant URL); contact the vendor."),
    _entra("SystemForCrossDomainIdentityManagementBadRequest", "Target rejected the request (400)",
           "Read the target's message in the reason; fix the value or mapping."),
    _entra("SystemForCrossDomainIdentityManagementCredentialValidationUnavailable", "Credentials could not be validated",
           "Check the Tenant URL and Secret Token in Admin Credentials, then Test Connection.", quarantine=True),
    _entra("SystemForCrossDomainIdentityManagementCredentialValidationFailure", "Credentials rejected",
           "Generate a new secret token in the target, enter it in Admin Credentials, Test Connection.", quarantine=True),
    _entra("UnableToResolveReferenceAttributeValue", "Reference not resolved (manager or member)",
           "The referenced user or group is not provisioned (yet). Provision it, or remove the reference mapping."),
])


def recommended_action(operation: str, status: int, scim_type: str | None) -> Action:
    entra = _ENTRA_CODES.get((scim_type or "").lower())
    if entra is None and scim_type and scim_type.lower().endswith("entryconflict"):
        entra = _ENTRA_CODES["entryconflict"]
    if entra is not None:
        return entra
    group = "lookup" if operation in ("lookup", "connection_test") else None
    family = 500 if 500 <= status < 600 and status != 501 else status
    for key in ((group, family, scim_type), (None, family, scim_type), (group, family, None), (None, family, None)):
        if key in _ACTIONS:
            return _ACTIONS[key]
    return _GENERIC


_DELETES = Action(
    "TooManyDeletes",
    "Deletion threshold crossed (TooManyDeletes)",
    "Entra holds the deletions above the accidental-deletion threshold. In Entra > Enterprise applications > "
    "the app > Provisioning > Provisioning logs, review the held deletes; if they are wanted, allow them there "
    "(or raise Settings > Prevent accidental deletions > deletion threshold), else fix the scoping filter or "
    "assignments that removed the users, then Restart provisioning.",
    quarantine=True,
)
_ESCROW = Action(
    "EncounteredEscrowProportionThreshold",
    "Too many failures (escrow thresholds)",
    "Most of Entra's calls failed. Fix the main cause below (the first error signature), then in Entra > "
    "Enterprise applications > the app > Provisioning choose Restart provisioning to lift the quarantine.",
    quarantine=True,
)


def quarantine_action(reason_kind: str | None) -> Action | None:
    """The action that lifts a quarantine of this kind (agreement.REASON_KINDS), when the kind
    names one by itself (credentials, deletes); None: the action of the main failure applies."""
    return {"credentials": _TOKEN, "deletes": _DELETES, "escrow": _ESCROW}.get(reason_kind or "")
