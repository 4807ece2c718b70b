"""Remove secrets from exchanges (and from rejected raw lines) before anything is written."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .records import Exchange

REDACTED = "[REDACTED]"
_HEADER_WORDS = ("token", "cookie", "secret", "password", "api-key", "apikey", "signature")


@dataclass(frozen=True)
class RedactionRules:
    """Which attributes are replaced, which are masked, which headers and query keys are secret.

    Attribute names match case-insensitively, also as the last segment of a URN-qualified or
    dotted name (`urn:...:uniFLOWOnline:2.0:User:pin`, `...User.pin`).
    """

    attributes: frozenset[str] = frozenset({"password", "pin", "cardregistrationcode"})
    masked: frozenset[str] = frozenset({"cardnumber"})
    headers: frozenset[str] = frozenset(
        {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
    )
    query_keys: frozenset[str] = frozenset(
        {"access_token", "token", "code", "client_secret", "password", "sig", "signature"}
    )
    mask_keep: int = 4
    _kinds: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False, repr=False)
    _headers: dict[str, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def build(
        cls, *, attributes: list[str], masked: list[str], headers: list[str], mask_keep: int = 4
    ) -> RedactionRules:
        return cls(
            attributes=frozenset(a.lower() for a in attributes),
            masked=frozenset(a.lower() for a in masked),
            headers=frozenset(h.lower() for h in headers),
            mask_keep=mask_keep,
        )


DEFAULT_RULES = RedactionRules()


def redact(exchange: Exchange, rules: RedactionRules = DEFAULT_RULES, *, hint: bytes | str | None = None) -> Exchange:
    """The exchange with every secret header, query parameter and attribute value replaced.

    `hint`, the raw line, lets bodies that cannot hold a secret skip the walk: when no secret
    attribute name occurs anywhere in the line, no body value can be one. Parts without a secret
    are shared with `exchange`, not copied; the exchange itself is returned when nothing changed.
    """
    bodies = hint is None or _may_hold_secret(hint, rules)
    query = redact_query(exchange.query, rules)
    headers = redact_headers(exchange.request_headers, rules)
    request_body = exchange.request_body
    response_body = exchange.response_body
    if bodies:
        request_body = redact_body(request_body, rules)
        response_body = redact_body(response_body, rules)
    extra = redact_body(exchange.extra, rules) if exchange.extra else exchange.extra
    if (
        query is exchange.query and headers is exchange.request_headers and extra is exchange.extra
        and request_body is exchange.request_body and response_body is exchange.response_body
    ):
        return exchange
    return Exchange(
        exchange.ts, exchange.method, exchange.path, exchange.status, query, exchange.duration_ms,
        exchange.request_id, exchange.client, exchange.job, exchange.cycle_id, headers, request_body,
        response_body, extra,
    )


def _may_hold_secret(raw: bytes | str, rules: RedactionRules) -> bool:
    """False only when no value in the JSON text `raw` can be a secret attribute's.

    A key or PatchOp path matches by its leaf (see `_leaf`), which holds the secret name as a
    substring of the lower-cased text, unless an escape spells part of it (`\\u0069`), or a
    `[...]` filter removed from its middle joins the pieces ("pi[x]n" -> "pin"), which shows as a
    ']' followed by a character that can continue a name.
    """
    names = _names_of(rules)
    if isinstance(raw, bytes) and names.ascii and b"\xc4\xb0" not in raw and b"\xe2\x84\xaa" not in raw:
        # Lower-casing the bytes changes only ASCII letters; of the other characters only
        # U+0130 and U+212A (excluded above) lower-case to an ASCII letter, so for ASCII names
        # this finds every occurrence that lower-casing the decoded text would.
        data = raw.lower()
        if b"\\u" in data or (names.escapable and b"\\" in data):
            return True
        if any(name in data for name in names.as_bytes):
            return True
        return b"]" in data and names.joined_bytes.search(data) is not None
    text = raw.lower() if isinstance(raw, str) else raw.decode("utf-8", "replace").lower()
    if "\\u" in text or (names.escapable and "\\" in text):
        return True  # an escaped character could spell a name; walk the bodies
    if any(name in text for name in names.as_text):
        return True
    return "]" in text and names.joined.search(text) is not None


@dataclass(frozen=True)
class _Names:
    as_text: tuple[str, ...]
    as_bytes: tuple[bytes, ...]
    ascii: bool
    joined: re.Pattern[str]  # a ']' followed by a character that can continue a name
    joined_bytes: re.Pattern[bytes]
    escapable: bool  # an escape other than \\u can spell a character of a name
    query_words: tuple[str, ...]  # a secret query key holds one of these


_NAME_SETS: dict[tuple[frozenset[str], ...], _Names] = {}


def _names_of(rules: RedactionRules) -> _Names:
    key = (rules.attributes, rules.masked, rules.query_keys)
    found = _NAME_SETS.get(key)
    if found is None:
        names = tuple(sorted(rules.attributes | rules.masked))
        held = set("".join(names))
        # after ']', a character that no name holds cannot continue one
        stops = "".join(sorted(set('"\\],}[:. \t\r\n') - held))
        joined = "\\][^" + re.escape(stops) + "]" if stops else "\\]"
        words = {"token", "secret"} | set(rules.query_keys)
        found = _NAME_SETS[key] = _Names(
            as_text=names,
            as_bytes=tuple(n.encode() for n in names),
            ascii=all(n.isascii() for n in names),
            joined=re.compile(joined),
            joined_bytes=re.compile(joined.encode()),
            escapable=bool(held & set('/"\\\b\f\n\r\t')),
            query_words=tuple(sorted(w for w in words if not any(o != w and o in w for o in words))),
        )
    return found


def redact_headers(headers: dict[str, Any] | None, rules: RedactionRules) -> dict[str, Any] | None:
    """`headers` with secret values replaced; the same dict when none is secret."""
    if not headers:
        return headers
    cache = rules._headers
    secret = False
    for name in headers:
        known = cache.get(name)
        if known is None:
            known = _is_secret_header(name, rules)
            if len(cache) < 10_000:
                cache[name] = known
        if known:
            secret = True
            break
    if not secret:
        return headers
    return {
        name: (REDACTED if _is_secret_header(name, rules) else value)
        for name, value in headers.items()
    }


def redact_query(query: str | None, rules: RedactionRules) -> str | None:
    if not query or "=" not in query:
        return query
    if "%" not in query and "+" not in query and query.isascii():
        # Nothing to decode: a key is secret only if its text occurs in the query as it is.
        lowered = query.lower()
        if not any(word in lowered for word in _names_of(rules).query_words):
            return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_is_secret_query_key(k, rules) for k, _ in pairs):
        return query  # keep the original encoding when nothing is secret
    return urlencode([(k, REDACTED if _is_secret_query_key(k, rules) else v) for k, v in pairs])


def redact_body(body: Any, rules: RedactionRules) -> Any:
    """A JSON value with secret attributes replaced, including PatchOp forms.

    Containers without a secret are returned as they are (shared, not copied); the others are
    copied along the way down to each secret.
    """
    if isinstance(body, dict):
        return _redact_object(body, rules, rules._kinds)
    if isinstance(body, list):
        return _redact_list(body, rules, rules._kinds)
    return body


_MISSING = object()


def _redact_list(items: list[Any], rules: RedactionRules, kinds: dict[str, str | None]) -> list[Any]:
    out = None
    for index, item in enumerate(items):
        if isinstance(item, dict):
            new = _redact_object(item, rules, kinds)
        elif isinstance(item, list):
            new = _redact_list(item, rules, kinds)
        else:
            continue
        if new is not item:
            if out is None:
                out = list(items)
            out[index] = new
    return items if out is None else out


def _redact_object(obj: dict[str, Any], rules: RedactionRules, kinds: dict[str, str | None]) -> dict[str, Any]:
    out = None
    path = obj.get("path")
    path_kind = _secret_kind(path, rules) if isinstance(path, str) else None
    for key, value in obj.items():
        kind = kinds.get(key, _MISSING)
        if kind is _MISSING:
            kind = _secret_kind(key, rules)
        if kind is None and key == "value" and path_kind is not None:
            kind = path_kind  # a PatchOp whose path names a secret: {"path": "...:pin", "value": ...}
        if kind is None:
            if isinstance(value, dict):
                new = _redact_object(value, rules, kinds)
            elif isinstance(value, list):
                new = _redact_list(value, rules, kinds)
            else:
                continue
        elif kind == "redact":
            new = REDACTED if value is not None else None
        else:
            new = _mask(value, rules)
        if new is not value:
            if out is None:
                out = dict(obj)
            out[key] = new
    return obj if out is None else out


def _secret_kind(name: str, rules: RedactionRules) -> str | None:
    kinds = rules._kinds
    try:
        return kinds[name]
    except KeyError:
        kind = _secret_kind_uncached(name, rules)
        if len(kinds) < 100_000:  # names are attribute names; a flood of distinct keys is not cached
            kinds[name] = kind
        return kind


def _secret_kind_uncached(name: str, rules: RedactionRules) -> str | None:
    leaf = _leaf(name)
    if leaf in rules.attributes:
        return "redact"
    if leaf in rules.masked:
        return "mask"
    return None


def _leaf(name: str) -> str:
    # "urn:...:uniFLOWOnline:2.0:User:pin" -> "pin"; "name.givenName" -> "givenname";
    # 'emails[type eq "work"].value' -> "value"
    name = re.sub(r"\[[^\]]*\]", "", name)
    for sep in (":", "."):
        if sep in name:
            name = name.rsplit(sep, 1)[-1]
    return name.strip().lower()


def _mask(value: Any, rules: RedactionRules) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_mask(v, rules) for v in value]
    if isinstance(value, dict):
        return {k: _mask(v, rules) if k == "value" else v for k, v in value.items()}
    text = str(value)
    keep = rules.mask_keep if len(text) > rules.mask_keep else 0
    return "*" * (len(text) - keep) + text[len(text) - keep :]


def _is_secret_header(name: str, rules: RedactionRules) -> bool:
    lowered = name.lower()
    return lowered in rules.headers or any(word in lowered for word in _HEADER_WORDS)


def _is_secret_query_key(key: str, rules: RedactionRules) -> bool:
    lowered = key.lower()
    return lowered in rules.query_keys or "token" in lowered or "secret" in lowered


def redact_text(text: str, rules: RedactionRules = DEFAULT_RULES) -> str:
    """Best-effort redaction of a line that is not valid JSON (kept in the rejects list).

    A secret attribute name masks the next value after it, whatever the JSON around it looks
    like; bearer and basic credentials are masked wherever they appear.
    """
    names = sorted(rules.attributes | rules.headers | {"token", "secret"}, key=len, reverse=True)
    alternation = "|".join(re.escape(n) for n in names)
    # name, optional closing quote, separator, optionally `"value":`, then the value itself
    pattern = re.compile(
        rf'((?:{alternation})[^"\\]{{0,40}}"?\s*[:,=]\s*(?:\{{?\s*"value"\s*:\s*)?)'
        r'("(?:[^"\\]|\\.)*"?|[^,\s}\]]+)',
        re.IGNORECASE,
    )
    text = pattern.sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)
    text = re.sub(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+", r"\1 " + REDACTED, text)
    masked = "|".join(re.escape(n) for n in rules.masked)
    if masked:
        text = re.sub(
            rf'((?:{masked})"?\s*:\s*")([^"]*)(")',
            lambda m: m.group(1) + _mask(m.group(2), rules) + m.group(3),
            text,
            flags=re.IGNORECASE,
        )
    return text
