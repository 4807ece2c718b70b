"""PURE: failures as people read them: one cause, one line, across operations.

A signature (analysis.signatures) groups failures for the machine: operation, status, scimType
and a template of the message. A person wants the cause: a 401 on lookups, deletes and the
"401 EncounteredQuarantineException" of a delete are one cause ("Credentials rejected (401)").
The template stays the grouping key; what a person reads is a real (redacted) message.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Cause:
    key: str
    label: str  # a line's start: "Credentials rejected (401)"
    words: str  # for a subject: "credentials rejected"


def cause_of(operation: str, status: int, scim_type: str | None) -> Cause:
    """The cause of a failure, whatever the operation that met it."""
    t = (scim_type or "").lower()
    if status in (401, 403) or "credential" in t or t in ("unauthorized", "insufficientrights"):
        code = f"{status}" if status in (401, 403) else "401/403"
        return Cause("credentials", f"Credentials rejected ({code})", "credentials rejected")
    if status == 409 or t.endswith("entryconflict") or t == "uniqueness":
        return Cause("conflict", "User already exists in uniFLOW Online (409)", "users already exist")
    if status == 404 and operation in ("lookup", "connection_test"):
        return Cause("lookup_404", "Lookup answered 404 instead of an empty list", "lookups answered 404")
    if status == 404 or t == "invalidanchor":
        return Cause("gone", "User no longer exists in uniFLOW Online (404)", "users missing in the target")
    if status == 400 and t in ("invalidvalue", "mutability", "invalidpath"):
        return Cause(f"bad_value_{t}", "Attribute value rejected (400 " + (scim_type or "") + ")", "attribute values rejected")
    if status == 400:
        return Cause("bad_request", "Request rejected (400)", "requests rejected")
    if status == 429 or t == "toomanyrequests":
        return Cause("throttled", "Throttled by uniFLOW Online (429)", "throttled")
    if status == 0 or t == "timeout":
        return Cause("no_response", "No response from uniFLOW Online (time-out)", "no response")
    if status >= 500:
        return Cause("target_error", f"uniFLOW Online failed internally ({status})", "target errors")
    return Cause(f"status_{status}", f"Unexpected answer ({status})", f"unexpected {status} answers")


def group_causes(signatures: Iterable[Mapping], users_by_sig: Mapping[int, set] | None = None) -> list[dict]:
    """Signatures (signature_json-like dicts: id, operation, status, scimType, users, exchanges,
    action, example) grouped by cause, most users first. `users_by_sig` (the user ids each
    signature met) counts a person once per cause; without it a cause counts the largest signature."""
    causes: dict[str, dict] = {}
    for sig in signatures:
        cause = cause_of(sig["operation"], int(sig["status"]), sig.get("scimType"))
        entry = causes.setdefault(cause.key, {
            "key": cause.key, "label": cause.label, "words": cause.words, "signatures": [], "operations": [],
            "requests": 0, "users": 0, "user_ids": set(), "action": sig.get("action"), "example": None,
        })
        entry["signatures"].append(sig["id"])
        if sig["operation"] not in entry["operations"]:
            entry["operations"].append(sig["operation"])
        entry["requests"] += int(sig.get("exchanges") or 0)
        if users_by_sig is not None and sig["id"] in users_by_sig:
            entry["user_ids"] |= set(users_by_sig[sig["id"]])
        else:
            entry["users"] = max(entry["users"], int(sig.get("users") or 0))
        entry["example"] = entry["example"] or example_message([sig.get("example")])
    out = []
    for entry in causes.values():
        entry["users"] = max(entry["users"], len(entry.pop("user_ids")))
        entry["line"] = cause_line(entry["label"], entry["users"])
        out.append(entry)
    return sorted(out, key=lambda c: (-c["users"], -c["requests"], c["key"]))


def cause_line(label: str, users: int) -> str:
    """"Credentials rejected (401), 17 users"."""
    return f"{label}, {users} user{'s' if users != 1 else ''}"


_PLACEHOLDER = re.compile(r"<(value|n|id|email)>")


def example_message(messages: Iterable[str | None], *, limit: int = 200) -> str | None:
    """The first real message (not a template with placeholders), on one line and cut to `limit`."""
    for message in messages:
        if not message or _PLACEHOLDER.search(message):
            continue
        text = re.sub(r"\s+", " ", message).strip()
        if text:
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return None


def plain_reason(operation: str, status: int, scim_type: str | None) -> str:
    """A user's failure in plain words: "Credentials rejected (401) on update"."""
    return f"{cause_of(operation, status, scim_type).label} on {operation}"


def users_words(users: int) -> str:
    return f"{users} user{'s' if users != 1 else ''}"


def processed_words(users: int, expected: int | None) -> str:
    """A cycle's size without a false ratio: "22 users (about 19 expected)", or "22 users"."""
    if expected:
        return f"{users_words(users)} (about {expected} expected)"
    return users_words(users)


def state_words(*, state: str, entra_confirmed: bool, reason_kind: str | None = None) -> str:
    """The state at the start of a subject and a headline."""
    if state in ("quarantined", "disabled") and entra_confirmed:
        return "Disabled by Entra" if state == "disabled" else "Quarantined by Entra"
    return {
        "quarantined": "Quarantined (inferred from the traffic)",
        "disabled": "Disabled (inferred from the traffic)",
        "stalled": "Provisioning stalled",
        "warning": "Failures",
        "healthy": "Healthy",
    }.get(state, state.capitalize())


def subject_line(job_title: str, headline: str, cause_words: str | None = None, users: int | None = None) -> str:
    """`[uniFLOW EMEA] Quarantined by Entra: credentials rejected (17 users)`: job first, then
    the state, then the cause. One line."""
    text = f"[{job_title}] {headline}"
    if cause_words:
        text += f": {cause_words}"
    if users:
        text += f" ({users_words(users)})"
    return re.sub(r"\s+", " ", text).strip()[:300]


def list_id(job_name: str, domain: str) -> str:
    """A List-Id (RFC 2919) value for a job: its name as a dot-atom under the sender's domain."""
    atom = re.sub(r"[^A-Za-z0-9-]+", "-", job_name).strip("-").lower() or "job"
    return f"<{atom}.{domain}>"
