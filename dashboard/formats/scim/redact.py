"""Remove secrets from exchanges (and from rejected raw lines) before anything is written."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, unquote_plus, urlencode

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
# ... and, for the names of a request's or response's own headers only, these too: `X-Auth`,
# `Ocp-Apim-Subscription-Key`, `X-Functions-Key`, `api_key`, `X-Session-Id`... (a header is cheap to
# lose; a credential in clear is not). Not used for a `name` member in a body (`{"name": "keyboard",
# "value": ...}`), where they would hide ordinary values.
_OWN_HEADER_WORDS = (*_HEADER_WORDS, "auth", "key", "jwt", "session", "credential", "passwd")
# A query parameter whose name holds one of these is a credential (`api-key`, `apikey`, `key`, `auth`,
# `jwt`, `sessionid`...), besides the configured `query_keys`.
_QUERY_KEY_WORDS = ("token", "secret", "key", "auth", "jwt", "session", "credential", "passw")


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
    _query_keys: dict[str, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)
    _walk: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    _text: list[Any] = field(default_factory=list, compare=False, hash=False, repr=False)  # its _TextPatterns
    _memo: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False, repr=False)  # redact_text's

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
    """The exchange with every secret replaced: secret headers, query parameters and attributes,
    and secrets written as text inside any string (a token in the path, a SCIM filter on a secret
    attribute, JSON inside an error's `detail`, a bearer credential anywhere; see `redact_text`).

    Every body is walked whole. (`hint`, the raw line, is accepted for compatibility and unused.)
    Parts without a secret are shared with `exchange`, not copied; the exchange itself is
    returned when nothing changed.
    """
    path = redact_path(exchange.path, rules)
    query = redact_query(exchange.query, rules)
    headers = redact_headers(exchange.request_headers, rules)
    request_body = redact_body(exchange.request_body, rules)
    response_body = redact_body(exchange.response_body, rules)
    extra = redact_body(exchange.extra, rules) if exchange.extra else exchange.extra
    request_id = redact_text(exchange.request_id, rules)
    client = redact_text(exchange.client, rules)
    cycle_id = redact_text(exchange.cycle_id, rules)
    if (
        path is exchange.path and query is exchange.query and headers is exchange.request_headers
        and extra is exchange.extra and request_body is exchange.request_body
        and response_body is exchange.response_body and request_id is exchange.request_id
        and client is exchange.client and cycle_id is exchange.cycle_id
    ):
        return exchange
    return Exchange(
        exchange.ts, exchange.method, path, exchange.status, query, exchange.duration_ms,
        request_id, client, exchange.job, cycle_id, headers, request_body, response_body, extra,
    )


def redact_path(path: str | None, rules: RedactionRules) -> str | None:
    """A request path with secrets in a query part (`/Users?access_token=...`), in matrix
    parameters (`;token=...`) or written as text replaced."""
    if not path:
        return path
    if "?" in path:
        head, _, tail = path.partition("?")
        clean_tail = redact_query(tail, rules)
        clean_head = redact_text(head, rules)
        if clean_tail is tail and clean_head is head:
            return path
        return f"{clean_head}?{clean_tail}"
    return redact_text(path, rules)


_QUERY_WORDS: dict[frozenset[str], tuple[str, ...]] = {}


def _query_words(rules: RedactionRules) -> tuple[str, ...]:
    """Words one of which every secret query key holds (lower-cased)."""
    found = _QUERY_WORDS.get(rules.query_keys)
    if found is None:
        words = set(_QUERY_KEY_WORDS) | set(rules.query_keys)
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
            known = _is_secret_own_header(name, rules)
            if len(cache) < 10_000:
                cache[name] = known
        if known:
            secret = True
            break
    if not secret:
        clean = redact_body(headers, rules)  # a value holding a credential as text (a Referer with ?token=)
        return headers if clean is headers else clean
    return {
        name: (REDACTED if (cache[name] if name in cache else _is_secret_own_header(name, rules))
               else redact_text(value, rules) if value.__class__ is str else redact_body(value, rules))
        for name, value in headers.items()
    }


def redact_query(query: str | None, rules: RedactionRules) -> str | None:
    """A raw query string with secret parameters replaced, `&`- or `;`-separated: a secret key
    (`access_token`, `token`, a secret attribute such as `pin`, a secret header name), and a secret
    written inside a value (a SCIM filter `urn:...:User:pin eq "..."`, a bearer credential).
    Parameters without a secret keep their encoding; the query itself is returned when none is."""
    if not query:
        return query
    if "%" not in query and "+" not in query and query.isascii():
        # Nothing to decode: a secret can only be there if one of the words occurs as it is.
        lowered = query.lower()
        if not any(word in lowered for word in _query_words(rules)) and not _patterns(rules).trigger.search(query):
            return query
    pieces = _QUERY_SEPARATOR.split(query)
    changed = False
    for index in range(0, len(pieces), 2):
        piece = pieces[index]
        new = _redact_query_piece(piece, rules)
        if new is not piece:
            pieces[index] = new
            changed = True
    return "".join(pieces) if changed else query


_QUERY_SEPARATOR = re.compile(r"([&;])")


def _redact_query_piece(piece: str, rules: RedactionRules) -> str:
    if not piece:
        return piece
    raw_key, eq, raw_value = piece.partition("=")
    key = unquote_plus(raw_key)
    if eq:
        kind = "redact" if _is_secret_query_key(key, rules) else _secret_kind(key, rules)
        if kind is not None:
            value = REDACTED if kind == "redact" else _mask(unquote_plus(raw_value), rules)
            if raw_value and unquote_plus(raw_value) == value:
                return piece
            return urlencode([(key, value)])
    # a secret written inside the parameter: decoded when it is encoded, re-encoded if replaced
    encoded = ("%" in piece or "+" in piece) and " " not in piece and '"' not in piece
    text = unquote_plus(piece) if encoded else piece
    clean = redact_text(text, rules)
    if clean is text or clean == text:
        return piece
    if not encoded:
        return clean
    ckey, ceq, cvalue = clean.partition("=")
    return quote_plus(ckey, safe=":") + ceq + quote_plus(cvalue, safe=":")


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
        elif item.__class__ is str:
            if index == 1 and len(items) == 2 and items[0].__class__ is str and _names_secret(items[0], rules):
                new = REDACTED  # a header given as a pair: ["Authorization", "Bearer ..."]
            else:
                new = redact_text(item, rules)
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
    memo = rules._memo
    for key, value in obj.items():
        kind = kinds.get(key, _MISSING)
        if kind is _MISSING:
            kind = _walk_kind(key, rules)
        if kind is _VALUE:
            # a PatchOp whose path names a secret: {"path": "...:pin", "value": ...}; a header or
            # a property given as a pair: {"name": "Authorization", "value": ...}
            if path_kind is _MISSING:
                path_kind = _namer_kind(obj, rules)
            kind = path_kind
        elif kind is _HEADERS:
            kind = None
            if value.__class__ is dict:
                value = redact_headers(value, rules)
        if kind is None:
            cls = value.__class__
            if cls is str:
                # redact_text's memo, looked up here: most members are short texts seen before
                known = memo.get(value, _MISSING) if len(value) <= _MEMO_LENGTH else _MISSING
                if known is None:
                    continue  # unchanged
                new = redact_text(value, rules) if known is _MISSING else known
            elif cls is dict or isinstance(value, dict):
                new = _redact_object(value, rules, kinds)
            elif cls is list or isinstance(value, list):
                new = _redact_list(value, rules, kinds)
            else:
                continue
        elif kind == "redact":
            new = REDACTED if value is not None else None
        else:
            new = _mask(value, rules)
        if new is obj[key]:
            continue
        if out is None:
            out = dict(obj)
        out[key] = new
    return obj if out is None else out


_VALUE: Any = object()  # a member kind in the walk: "value", secret when the PatchOp path is
_HEADERS: Any = object()  # a member kind in the walk: an object of headers ("headers", "response_headers")
_VALUE_KEYS = frozenset({"value", "oldvalue", "newvalue"})
_NAMER_KEYS = ("path", "name", "displayname", "attribute", "header", "key")
# keys that hold a credential wherever they occur in a body (besides the secret headers' names)
_BODY_SECRET_KEYS = frozenset({"access_token", "refresh_token", "id_token", "client_secret", "secret", "apikey",
                               "api_key", "api-key", "private_key"})


def _walk_kind(key: str, rules: RedactionRules) -> Any:
    """A member's kind for the walk: its secret kind, else _VALUE for "value" in any case, else
    _HEADERS for a member named like headers."""
    kind: Any = _secret_kind(key, rules)
    if kind is None:
        lowered = key.lower()
        if lowered in _VALUE_KEYS:
            kind = _VALUE
        elif "header" in lowered:
            kind = _HEADERS
    walk = rules._walk
    if len(walk) < 100_000:
        walk[key] = kind
    return kind


def _namer_kind(obj: dict[str, Any], rules: RedactionRules) -> str | None:
    """The secret kind of what an object's path or name member names (None: not a secret)."""
    for key, value in obj.items():
        if value.__class__ is str and key.__class__ is str and key.lower() in _NAMER_KEYS:
            kind = _secret_kind(value, rules)
            if kind is None and key.lower() != "path" and _is_secret_header(value, rules):
                kind = "redact"
            if kind is not None:
                return kind
    return None


def _names_secret(name: str, rules: RedactionRules) -> bool:
    return len(name) <= 100 and (_is_secret_header(name, rules) or _secret_kind(name, rules) == "redact")


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
    name = normal_name(name)
    leaf = _leaf(name)
    if leaf in rules.attributes:
        return "redact"
    if leaf in rules.masked:
        return "mask"
    whole = name.strip().lower()
    if whole in rules.headers or whole in _BODY_SECRET_KEYS:
        return "redact"
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
    lowered = normal_name(name)
    return lowered in rules.headers or any(word in lowered for word in _HEADER_WORDS)


def _is_secret_own_header(name: str, rules: RedactionRules) -> bool:
    """Whether a header of the exchange's own headers carries a credential (_OWN_HEADER_WORDS)."""
    lowered = normal_name(name)
    return lowered in rules.headers or any(word in lowered for word in _OWN_HEADER_WORDS)


def is_secret_query_key(key: str, rules: RedactionRules = DEFAULT_RULES) -> bool:
    """Whether a query parameter carries a credential (`access_token`, `token`, `client_secret`,
    `api-key`, `key`, `auth`, `jwt`...: _QUERY_KEY_WORDS)."""
    cache = rules._query_keys
    known = cache.get(key)
    if known is None:
        lowered = normal_name(key)
        known = lowered in rules.query_keys or any(word in lowered for word in _QUERY_KEY_WORDS)
        if len(cache) < 10_000:
            cache[key] = known
    return known


# Characters that make one name look like another: a dotless i (`pın`), a long s.
_LOOKALIKES = str.maketrans({"ı": "i", "ſ": "s"})
_ESCAPED_CHARACTER = re.compile(r"\\u([0-9a-fA-F]{4})")


def normal_name(name: str) -> str:
    """A member, header or parameter name as compared with the secret names: lower-cased, and for a
    name that is not plain ASCII letters, also with `\\uXXXX` written out decoded, compatibility
    forms folded (full-width `ｐｉｎ`), invisible and control characters dropped (`pin` followed by a
    zero-width space, `p\\x00in`) and look-alike letters replaced (`pın`)."""
    if name.isascii() and "\\" not in name and name.isprintable():
        return name.lower()
    if "\\" in name:
        name = _ESCAPED_CHARACTER.sub(lambda m: chr(int(m.group(1), 16)), name)
    name = unicodedata.normalize("NFKC", name)
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf"))
    return name.translate(_LOOKALIKES).casefold()


_is_secret_query_key = is_secret_query_key


def redact_text(text: str | None, rules: RedactionRules = DEFAULT_RULES) -> str | None:
    """Secrets written as text replaced, whatever the text is: a line that is not valid JSON
    (kept in the rejects list), a string holding JSON or a query string, a log message.

    A secret attribute or header name (or a word of the secret query keys: `token`, `secret`)
    followed by `:` or `=` hides the value after it, quoted, escaped (`\"pin\":\"1234\"`),
    percent-encoded or bare: JSON, a query string, plain text `pin=1234`, a header line. A SCIM
    filter on a secret attribute (`...:User:pin eq "1234"`) hides its value; so does an object
    whose `path` or `name` names a secret (`{"value":"1234","path":"...:pin"}`, in any order),
    and the `value` of a PatchOp cut off before its path. Bearer and basic credentials are
    hidden wherever they appear. The same text is returned when nothing was replaced.
    """
    if not text:
        return text
    if len(text) <= _MEMO_LENGTH:
        # The same short texts come back on every line ("work", a schema URN, a department): the
        # answer is remembered (None: unchanged, so that the caller's own object is returned).
        memo = rules._memo
        try:
            known = memo[text]
        except KeyError:
            known = _redact_text(text, rules)
            if len(memo) >= _MEMO_ENTRIES:
                memo.clear()
            memo[text] = None if known is text else known
            return known
        return text if known is None else known
    return _redact_text(text, rules)


_MEMO_LENGTH = 120  # longer texts are rarely repeated
_MEMO_ENTRIES = 8_000  # about 1.5 MB at most; cleared whole when full


def _redact_text(text: str, rules: RedactionRules) -> str:
    patterns = _patterns(rules)
    first = text[0]
    if first == "{" or first == "[" or first.isspace():
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            text = _redact_json_text(stripped, text, rules)  # JSON inside a string: walked like a body
    lowered = text.lower()
    for word in patterns.words:  # `in` on the lowered text: several times faster than one regex search
        if word in lowered:
            break
    else:
        return text
    clean = _SCHEME.sub(_replace_scheme, text)
    clean = patterns.segment.sub(lambda m: _replace_segment(m, rules, patterns), clean)
    clean = patterns.filter.sub(lambda m: _replace_value(m, rules, patterns), clean)
    clean = patterns.named.sub(lambda m: _replace_value(m, rules, patterns), clean)
    if patterns.prose.search(clean):
        clean = _redact_prose(clean, patterns)
    return text if clean == text else clean


def _redact_json_text(stripped: str, text: str, rules: RedactionRules) -> str:
    """A string holding a JSON object or array (`"{\\"pin\\":{\\"v\\":\\"1234\\"}}"`, a PatchOp written
    out, `\\u` escapes in a name): decoded and walked like a body, written again only when a secret
    was hidden. Not JSON, or nested deeper than MAX_NESTING: the text as it is (the text patterns
    still look at it)."""
    try:
        data = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return text
    if not isinstance(data, dict | list) or deeper_than(data, MAX_NESTING):
        return text
    clean = redact_body(data, rules)
    return text if clean is data else orjson.dumps(clean).decode()


def _redact_prose(text: str, patterns: _TextPatterns) -> str:
    """A text that names a secret attribute as a word, such as a target's error message (`Invalid
    value '918273' for attribute pin`, `pin 918273 is too short`, `bad value 918273 for path
    urn:...:User:pin`): where the value stands cannot be told, so every quoted value (but a member
    name, followed by `:`, a URN, or a text that itself names the secret) and every word holding a
    digit (but the parts of a URN, `2.0`, and times) is hidden."""
    text = patterns.prose_quoted.sub(lambda m: _hide_quoted(m, patterns), text)
    return _PROSE_NUMBER.sub(REDACTED, text)


def _hide_quoted(match: re.Match[str], patterns: _TextPatterns) -> str:
    inner = match.group("inner")
    if (match.group("colon") is not None or not inner or inner == REDACTED or patterns.prose.search(inner)
            or inner.lower().startswith("urn:") or _MASKED.fullmatch(inner)):
        return match.group(0)  # a member name; a text about the secret (its digits go below); a URN; masked
    return f"{match.group('q')}{REDACTED}{match.group('q')}"


# A word holding a digit, whole (possessive: never a piece of a longer word), not a part of a URN
# or a time (a neighbour `:`), nor the end of a masked value (`******3210`), at least three long.
_PROSE_NUMBER = re.compile(r"(?<![\w:*])(?=[\w.+/=~-]*[0-9])[\w.+/=~-]{3,}+(?![\w:])")
_MASKED = re.compile(r"\*+[^*]{0,8}")


@dataclass(frozen=True)
class _TextPatterns:
    trigger: re.Pattern[str]
    words: tuple[str, ...]  # one of them occurs (lower-cased) in any text a pattern below matches
    named: re.Pattern[str]
    filter: re.Pattern[str]
    segment: re.Pattern[str]
    value: re.Pattern[str]
    masked: frozenset[str]
    prose: re.Pattern[str]  # a secret attribute's name standing as a word of its own (_redact_prose)
    prose_quoted: re.Pattern[str]  # a quoted text in such a text (a member name when ":" follows)


_PATTERNS: dict[tuple[Any, ...], _TextPatterns] = {}

# What follows a name: an optional closing quote (escaped, or percent-encoded), then the value.
_QUOTE_AFTER = r'(?P<q>\\*"|%22|\')?'
# A value: escaped-quoted, quoted (perhaps cut off), percent-quoted, an array, or bare (not null).
_VALUE = (
    r'(?P<value>\\+"[^"]*?(?:\\+"|$)'
    r'|"(?:[^"\\\n]|\\.)*"?'
    r"|'[^'\n]*'?"
    r"|%22.*?(?:%22|$)"
    r"|\[[^\]\n]*\]?"
    r"|(?!null\b)[^\s,;&}\]\"'\\<>{]+)"
)
_WORDS = ("token", "secret")  # secret query keys are recognised by these words in any name


def _patterns(rules: RedactionRules) -> _TextPatterns:
    if rules._text:
        return rules._text[0]  # type: ignore[no-any-return]
    found = _build_patterns(rules)
    rules._text.append(found)
    return found


def _build_patterns(rules: RedactionRules) -> _TextPatterns:
    key = (rules.attributes, rules.masked, rules.headers, rules.query_keys)
    found = _PATTERNS.get(key)
    if found is not None:
        return found
    attributes = rules.attributes | rules.masked
    names = sorted(attributes | rules.headers | set(_WORDS) | _BODY_SECRET_KEYS, key=len, reverse=True)
    alternation = "|".join(re.escape(n) for n in names)
    attribute_alternation = "|".join(re.escape(n) for n in sorted(attributes, key=len, reverse=True)) or "(?!)"
    words = {"bearer", "basic", "value", *(n.lower() for n in names)}
    found = _TextPatterns(
        trigger=re.compile(rf"bearer|basic|value|{alternation}", re.IGNORECASE),
        words=tuple(sorted(w for w in words if not any(o != w and o in w for o in words))),
        # name, closing quote, separator, optionally `{"value":`, then the value
        named=re.compile(
            rf'(?<![A-Za-z0-9])(?P<name>{alternation}){_QUOTE_AFTER}\s*(?P<sep>:|=|%3[AaDd])\s*'
            rf'(?:\{{\s*\\*"value\\*"\s*:\s*)?{_VALUE}',
            re.IGNORECASE,
        ),
        filter=re.compile(
            rf"(?<![A-Za-z0-9])(?P<name>{attribute_alternation})(?:\s|\+|%20)+(?P<sep>eq|ne|co|sw|ew|gt|ge|lt|le)"
            rf"(?:\s|\+|%20)+{_VALUE}",
            re.IGNORECASE,
        ),
        segment=re.compile(r"\{[^{}]*(?:\}|$)"),
        value=re.compile(
            r'(?P<lead>\\*"?(?:value|oldvalue|newvalue)\\*"?\s*:\s*)' + _VALUE, re.IGNORECASE
        ),
        masked=frozenset(rules.masked),
        prose=re.compile(rf"(?<![A-Za-z0-9.@_-])(?:{attribute_alternation})(?![A-Za-z0-9.@_-])", re.IGNORECASE),
        prose_quoted=re.compile(r"""(?P<q>\\*["'])(?P<inner>[^"'\\\n]{0,300})(?P=q)(?P<colon>\s*:)?"""),
    )
    if len(_PATTERNS) > 32:
        _PATTERNS.clear()
    _PATTERNS[key] = found
    return found


_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)([A-Za-z0-9._~+/=\-]{4,})")
_NAMER_IN_TEXT = re.compile(
    r'\\*"?(path|name|displayName|attribute|header|key)\\*"?\s*:\s*\\*"([^"\\]{1,300})', re.IGNORECASE
)
_OPERATION_IN_TEXT = re.compile(r'\\*"op\\*"\s*:', re.IGNORECASE)


def _looks_like_credential(token: str) -> bool:
    """Whether the word after "Bearer"/"Basic" is a credential rather than prose ("Basic Printer")."""
    if token == "[REDACTED]" or token.startswith("[REDACTED"):
        return False
    return any(c.isdigit() or c in "=+/._~-" for c in token) or any(c.isupper() for c in token[1:])


def _replace_scheme(match: re.Match[str]) -> str:
    if not _looks_like_credential(match.group(3)):
        return match.group(0)
    return match.group(1) + match.group(2) + REDACTED


def _replace_value(match: re.Match[str], rules: RedactionRules, patterns: _TextPatterns) -> str:
    name = match.group("name").lower()
    kind = "mask" if name in patterns.masked else "redact"
    quoted = match.re is patterns.named and '"' in (match.group("q") or "")
    return _replaced(match, kind, rules, json=quoted)


def _replaced(match: re.Match[str], kind: str, rules: RedactionRules, *, json: bool = True) -> str:
    """The match with its `value` group replaced (REDACTED, or masked), in the value's own quoting."""
    whole, value = match.group(0), match.group("value")
    before = whole[: match.start("value") - match.start()]
    after = whole[match.end("value") - match.start():]
    if value == REDACTED:
        return whole
    opening, inner, closing = _unquoted(value)
    if opening == "[":
        inner = inner.strip().strip('"')
        opening, closing = '["', '"]'
    elif not opening and json:
        opening = closing = '"'  # a bare JSON value (a number) becomes a string
    if not inner or inner == REDACTED:
        return whole
    new = REDACTED if kind == "redact" else _mask(inner, rules)
    if new == inner:
        return whole
    return f"{before}{opening}{new}{closing}{after}"


def _unquoted(value: str) -> tuple[str, str, str]:
    """(opening quote, inner text, closing quote) of a value as text; a missing closing quote
    (the text was cut off) is ''."""
    if value.startswith("\\"):
        quote = value[: value.index('"') + 1]
    elif value.startswith("%22"):
        quote = "%22"
    elif value[:1] in ('"', "'"):
        quote = value[0]
    elif value.startswith("["):
        return "[", value[1:-1] if value.endswith("]") else value[1:], ""
    else:
        return "", value, ""
    inner = value[len(quote):]
    if len(inner) >= len(quote) and inner.endswith(quote):
        return quote, inner[: len(inner) - len(quote)], quote
    return quote, inner, ""


def _replace_segment(match: re.Match[str], rules: RedactionRules, patterns: _TextPatterns) -> str:
    """An object (as text, without nested objects) whose path or name names a secret: its value
    members hidden. An object cut off (a truncated line) unless every path or name in it is whole
    and names no secret: its value members hidden too, since what it was about is lost
    (`{"value":"1234","op":"replace","path":"urn:...:User:p`, `{"value":"1234","o`)."""
    segment = match.group(0)
    kind = None
    cut_off = not segment.endswith("}")
    unknown = cut_off  # a cut-off object is about something unknown until a whole name says what
    for namer in _NAMER_IN_TEXT.finditer(segment):
        name = namer.group(2)
        kind = _secret_kind(name, rules)
        if kind is None and namer.group(1).lower() != "path" and _is_secret_header(name, rules):
            kind = "redact"
        if kind is not None:
            break
        if namer.end(2) < len(segment):  # the name is whole: its closing quote follows
            unknown = False
        else:
            unknown = True
            break
    if kind is None:
        if not unknown:
            return segment
        kind = "redact"
    return patterns.value.sub(lambda m: _replaced(m, kind, rules), segment)


def redact_raw(raw: str, rules: RedactionRules = DEFAULT_RULES, *, keep: int | None = None) -> str:
    """A rejected line or record as it may be stored or shown: redacted structurally when it is
    JSON (every key, header and string as in an accepted line), then by text (a line that is not
    JSON, and what the structure misses); cut to `keep` characters (and "…") only after that, so
    that a secret named after the cut (`{"value":"1234", ... "path":"...:pin"}`) is still hidden."""
    raw = bounded_raw(raw[:RAW_WINDOW])  # JSON nested too deep for the walk: cut below the limit
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict | list):
        clean = orjson.dumps(redact_document(data, rules)).decode()
    else:
        clean = raw
    clean = redact_text(clean, rules) or ""
    if keep is not None and len(clean) > keep:
        clean = clean[:keep] + "…"
    return clean


RAW_WINDOW = 1_048_576 + 1  # characters of a rejected line that are read for its redaction


def redact_document(data: Any, rules: RedactionRules = DEFAULT_RULES) -> Any:
    """A decoded line, record or document with every secret replaced: the body walk, plus the
    members of a log line that are query strings or paths (`query`, `path`, `url`)."""
    clean = redact_body(data, rules)
    if not isinstance(clean, dict):
        return clean
    out = None
    for key in ("query", "path", "url"):
        value = clean.get(key)
        if isinstance(value, str):
            new = redact_query(value, rules) if key == "query" else redact_path(value, rules)
            if new is not value:
                out = out if out is not None else dict(clean)
                out[key] = new
    return clean if out is None else out


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
