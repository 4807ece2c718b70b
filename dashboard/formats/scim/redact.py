"""Remove secrets from exchanges (and from rejected raw lines) before anything is written."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from dashboard.formats.scim.records import Exchange

REDACTED = "[REDACTED]"
# A field's value may hold at most this many levels of nested objects and arrays (the field's own
# object or array is level 1; docs/ingest.md). The readers (ingest/parse.py, entra/parse.py)
# reject deeper lines and records before anything recursive sees them: this module's walk,
# classification, packing (orjson stops at 255 levels) and hashing.
MAX_NESTING = 64
_CUT = "…"  # what a container beyond the kept depth becomes in a rejected line's raw text
_HEADER_WORDS = ("authorization", "token", "cookie", "secret", "password", "api-key", "apikey", "signature")


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
    _walk: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (to an ingest worker) without the caches: they hold this process's sentinels.
        return (type(self), (self.attributes, self.masked, self.headers, self.query_keys, self.mask_keep))

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

    Every body is walked whole. (`hint`, the raw line, is accepted for compatibility and unused:
    searching the line for the secret names cost about as much as the walk it could save.)
    Parts without a secret are shared with `exchange`, not copied; the exchange itself is
    returned when nothing changed.
    """
    query = redact_query(exchange.query, rules)
    headers = redact_headers(exchange.request_headers, rules)
    request_body = redact_body(exchange.request_body, rules)
    response_body = redact_body(exchange.response_body, rules)
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


_QUERY_WORDS: dict[frozenset[str], tuple[str, ...]] = {}


def _query_words(rules: RedactionRules) -> tuple[str, ...]:
    """Words one of which every secret query key holds (lower-cased)."""
    found = _QUERY_WORDS.get(rules.query_keys)
    if found is None:
        words = {"token", "secret"} | set(rules.query_keys)
        found = _QUERY_WORDS[rules.query_keys] = tuple(sorted(w for w in words if not any(o != w and o in w for o in words)))
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
        name: (REDACTED if (cache[name] if name in cache else _is_secret_header(name, rules)) else value)
        for name, value in headers.items()
    }


def redact_query(query: str | None, rules: RedactionRules) -> str | None:
    if not query or "=" not in query:
        return query
    if "%" not in query and "+" not in query and query.isascii():
        # Nothing to decode: a key is secret only if its text occurs in the query as it is.
        lowered = query.lower()
        if not any(word in lowered for word in _query_words(rules)):
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
        return _redact_object(body, rules, rules._walk)
    if isinstance(body, list):
        return _redact_list(body, rules, rules._walk)
    return body


_MISSING = object()


def _redact_list(items: list[Any], rules: RedactionRules, kinds: dict[str, Any]) -> list[Any]:
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


def _redact_object(obj: dict[str, Any], rules: RedactionRules, kinds: dict[str, Any]) -> dict[str, Any]:
    out = None
    path_kind: Any = _MISSING  # found when a "value" member needs it
    for key, value in obj.items():
        kind = kinds.get(key, _MISSING)
        if kind is _MISSING:
            kind = _walk_kind(key, rules)
        if kind is _VALUE:
            # a PatchOp whose path names a secret: {"path": "...:pin", "value": ...}
            if path_kind is _MISSING:
                path = obj.get("path") if "path" in obj else next((v for k, v in obj.items() if k.lower() == "path"), None)
                path_kind = _secret_kind(path, rules) if isinstance(path, str) else None
            kind = path_kind
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


_VALUE: Any = object()  # a member kind in the walk: "value", secret when the PatchOp path is


def _walk_kind(key: str, rules: RedactionRules) -> str | None:
    """A member's kind for the walk: its secret kind, else _VALUE for "value" in any case."""
    kind = _secret_kind(key, rules)
    if kind is None and key.lower() == "value":
        kind = _VALUE
    walk = rules._walk
    if len(walk) < 100_000:
        walk[key] = kind
    return kind


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
        value = redact_body(value, rules)  # its other members may be secrets of their own
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
    text = re.sub(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+", r"\1 " + REDACTED, text)
    text = pattern.sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)
    masked = "|".join(re.escape(n) for n in rules.masked)
    if masked:
        text = re.sub(
            rf'((?:{masked})"?\s*:\s*")([^"]*)(")',
            lambda m: m.group(1) + _mask(m.group(2), rules) + m.group(3),
            text,
            flags=re.IGNORECASE,
        )
    return text


# -- bounded nesting --------------------------------------------------------------------------------


def too_deep(data: Any, limit: int = MAX_NESTING) -> str | None:
    """Why `data` (a decoded line or record) is nested too deep, naming the field; else None.

    An object's fields may each hold `limit` levels; anything else (an array) `limit` + 1 levels
    in all. Iterative: safe on any depth.
    """
    if not deeper_than(data, limit + 1):  # one walk of the whole: the common case ends here
        return None
    if isinstance(data, dict):
        for key, value in data.items():
            if deeper_than(value, limit):
                return f"field {quoted_name(key)} is nested deeper than {limit} levels"
    return f"the line is nested deeper than {limit} levels"


def deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` holds more than `limit` levels of objects and arrays (itself counting as
    one level). Level by level, without recursion, and never more than limit + 1 levels down."""
    if value.__class__ is not dict and value.__class__ is not list:
        if not isinstance(value, dict | list):
            return False
        value = dict(value) if isinstance(value, dict) else list(value)
    level = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        extend = below.extend
        for container in level:
            extend([item for item in (container.values() if container.__class__ is dict else container)
                    if item.__class__ is dict or item.__class__ is list])
        level = below
        depth += 1
    return False


def cut_nesting(value: Any, keep: int) -> Any:
    """A copy of `value` with every object or array below level `keep` replaced by "…".

    Without recursion: for the raw text of a rejected line or record, so that what is kept of it
    can be redacted and serialised like any other JSON.
    """
    if not isinstance(value, dict | list):
        return value
    if keep < 1:
        return _CUT
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while stack:
        source, target, depth = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            if isinstance(item, dict | list):
                if depth >= keep:
                    copy: Any = _CUT
                else:
                    copy = {} if isinstance(item, dict) else []
                    stack.append((item, copy, depth + 1))
            else:
                copy = item
            if isinstance(target, dict):
                target[key if key.__class__ is str else str(key)] = copy
            else:
                target.append(copy)
    return root


def quoted_name(name: Any) -> str:
    """A field name as a reason shows it: quoted, cut to 100 characters, control characters escaped."""
    text = str(name)[:100]
    if text.isprintable():
        return f"'{text}'"
    return repr(text)


def bounded_raw(text: str) -> str:
    """The raw text of a rejected line or record as it may be kept: when it is JSON nested deeper
    than the limit (a line too deep, a damaged record the reader could not decode, a CSV row of
    brackets), the same JSON with everything below the limit replaced by "…", so that it can be
    redacted and serialised like any other JSON; any other text as it is."""
    if text.count("[") + text.count("{") <= MAX_NESTING + 1:
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if not deeper_than(value, MAX_NESTING + 1):
        return text
    return orjson.dumps(cut_nesting(value, MAX_NESTING + 1)).decode()
