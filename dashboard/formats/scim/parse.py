"""Turn lines of a v1 SCIM request log into Exchanges or ParseProblems; never raise."""
from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any, Self
from urllib.parse import unquote_plus, urlsplit

import orjson

from dashboard.formats.gunzip import MAGIC as GZIP_MAGIC
from dashboard.formats.gunzip import Gunzip
from dashboard.formats.scim.records import Exchange, ParseProblem
from dashboard.formats.scim.redact import (
    MAX_NESTING,
    bounded_raw,
    cut_nesting,
    deeper_than,
    quoted_name,
    too_deep,
)

MAX_LINE_BYTES = 1_048_576  # a line longer than 1 MiB is rejected, not parsed
RAW_KEEP = 2000  # characters of a rejected line that are kept for the rejects list
READ_BUFFER = 256 << 10  # bytes read from the input at a time

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_KNOWN = frozenset(
    {
        "ts", "method", "path", "query", "status", "duration_ms", "request_id", "client", "job",
        "cycle_id", "request_headers", "request_body", "response_body",
    }
)
_ALIASES = {
    "timestamp": "ts",
    "time": "ts",
    "status_code": "status",
    "user_agent": "client",
    "request": "request_body",
    "response": "response_body",
}
# RFC 3339: a zone offset is required; fractional seconds optional. Matched whole (fullmatch:
# `$` would let a final newline through) and in ASCII digits ([0-9]: `\d` is any Unicode digit,
# and int() reads full-width ones).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class LineError(ValueError):
    """Why one line was rejected; its message names the field."""


class Unreadable(bytes):
    """Stands where an input stops being readable (a damaged gzip stream): read_lines yields it
    as its last line, numbered 0 (the whole file), and parse_line makes it a reject with `reason`.
    Empty bytes, so that the ingest counts, measures and pickles it like any line."""

    reason: str

    def __new__(cls, reason: str) -> Self:
        self = super().__new__(cls, b"")
        self.reason = reason
        return self

    def __reduce__(self):  # type: ignore[no-untyped-def] # to the ingest's worker processes
        return Unreadable, (self.reason,)


def read_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw line) from a byte stream, gunzipping when it is gzip data.

    Line numbers start at 1. Oversize lines are yielded truncated to MAX_LINE_BYTES + 1 bytes so
    that the parser rejects them without holding them whole in memory. Gzip data that is damaged,
    cut off or followed by junk is read up to the damage (a line cut there is yielded as it is),
    then an Unreadable line numbered 0 says what is wrong; nothing raises.
    """
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        gunzip = Gunzip(buffered)
        last = 0
        for last, line in _lines(_line_ends(io.BufferedReader(gunzip, READ_BUFFER))):
            yield last, line
        if gunzip.damage is not None:
            yield 0, Unreadable(gunzip.reason(last))
        return
    # Large reads: a read every few lines, each releasing and retaking the GIL, slows the loader
    # while its worker threads are about (see prepare.py). The wrapper is detached at the end:
    # closing the stream is its owner's business.
    wrapper = io.BufferedReader(buffered, READ_BUFFER)  # type: ignore[arg-type]
    try:
        yield from _lines(_line_ends(wrapper))
    finally:
        wrapper.detach()


_BARE_CR = re.compile(rb"\r[^\n]")
_BARE_CR_TEXT = re.compile(r"\r[^\n]")


def _line_ends(buffered: io.BufferedReader) -> io.BufferedReader:
    """The reader to split into lines: `buffered` itself, or, when its first read (a whole buffer
    from a file) holds a CR followed by something else and no LF at all, a reader that turns CR
    into LF: lines that end in a bare CR (classic Mac OS). JSON strings cannot hold a raw CR, so
    only white space changes. A CR at the very end of the first read may be the first half of a
    CRLF and decides nothing."""
    head = buffered.peek(1)
    if b"\n" in head or not _BARE_CR.search(head):
        return buffered
    return io.BufferedReader(_CrAsLf(buffered), READ_BUFFER)


class _CrAsLf(io.RawIOBase):
    def __init__(self, source: io.BufferedReader) -> None:
        super().__init__()
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        data = self._source.read1(len(buffer)).replace(b"\r", b"\n")
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


def _lines(buffered: io.BufferedReader) -> Iterator[tuple[int, bytes]]:
    line_no = 0
    while True:
        line = buffered.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        line_no += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            rest = buffered.readline(MAX_LINE_BYTES)
            while rest and not rest.endswith(b"\n"):
                rest = buffered.readline(MAX_LINE_BYTES)
        yield line_no, line


def parse_line(line_no: int, raw: bytes | str) -> Exchange | ParseProblem | None:
    """Parse one line. Returns None for a blank line, a ParseProblem for anything invalid."""
    try:
        if len(raw) > MAX_LINE_BYTES:
            return _problem(line_no, f"line is longer than {MAX_LINE_BYTES} bytes", raw)
        is_text = isinstance(raw, str)
        bom = 0
        if raw[:1] == ("\ufeff" if is_text else b"\xef"):
            line_len = len(raw)
            raw = _without_bom(raw)  # a UTF-8 byte order mark (Windows tools write one) is not data
            bom = line_len - len(raw)
        if not raw.strip():
            if raw.__class__ is Unreadable:  # blank, but where the input could not be read on
                return ParseProblem(line_no, raw.reason, "")  # type: ignore[union-attr]
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if exc.msg.startswith("depth limit"):  # orjson stops at 1024 levels
                return _problem(line_no, _deep_field_reason(raw), raw)
            if exc.msg.startswith("str is not valid UTF-8"):  # orjson's words, wherever the fault
                return _problem(line_no, f"malformed JSON: {_not_utf8(raw, bom)}", raw)
            reason = f"malformed JSON: {exc.msg} at character {exc.pos + 1}"
            if (_BARE_CR.search(raw) if not is_text else _BARE_CR_TEXT.search(raw)):  # type: ignore[arg-type]
                reason += "; the line holds a bare CR (\\r), which ends no line here: lines end in LF or CRLF"
            return _problem(line_no, reason, raw)
        # Counting the opening brackets is cheap and bounds the depth from above (brackets inside
        # strings count too): only a line with more of them than the limit is walked.
        if (raw.count("{") + raw.count("[") if is_text
                else len(raw.translate(None, _ALL_BUT_OPENING))) > MAX_NESTING:
            reason = too_deep(data)
            if reason is not None:
                return _problem(line_no, reason, orjson.dumps(cut_nesting(data, MAX_NESTING + 1)))
        if is_text:
            nul = "\\u0000" in raw
        else:  # "\u0000" needs a backslash: looked for (fast) first
            nul = b"\\" in raw and b"\\u0000" in raw
        if nul and isinstance(data, dict):
            # PostgreSQL refuses a NUL character in text, and any string of a body may become a
            # column (a userName, a SCIM id, an error's detail): such a line is refused whole.
            for key, value in data.items():
                if "\x00" in key or _holds_nul(value):
                    return _problem(line_no, f"field {quoted_name(key)} contains a NUL character", raw)
        if not isinstance(data, dict):
            kind = _JSON_KINDS.get(data.__class__, "value")
            hint = " (escaped JSON?)" if kind == "string" and data.lstrip()[:1] in ("{", "[") else ""
            return _problem(line_no, f"a line must be a JSON object, not a {kind}{hint}", raw)
        return exchange_from_dict(data)
    except LineError as exc:
        return _problem(line_no, str(exc), raw)
    except Exception as exc:  # the parser's promise: no input raises out of it
        return _problem(line_no, f"unreadable line ({type(exc).__name__})", raw)


def _not_utf8(raw: bytes | str, bom: int) -> str:
    """Where a line stops being UTF-8 (orjson says "str is not valid UTF-8: surrogates not
    allowed at character 1" whatever the fault and wherever): the first bad byte counted from 1 in
    the line as read (`bom`: the byte order mark removed before), or the lone surrogate of a text."""
    if isinstance(raw, bytes):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"invalid UTF-8 at byte {bom + exc.start + 1} (0x{raw[exc.start]:02x}: {exc.reason})"
        return "invalid UTF-8"
    for index, char in enumerate(raw):
        if "\ud800" <= char <= "\udfff":
            return f"a lone surrogate (U+{ord(char):04X}) at character {bom + index + 1}"
    return "invalid UTF-8"


_ALL_BUT_OPENING = bytes(b for b in range(256) if b not in b"{[")  # bytes.translate keeps "{" and "["


def _without_bom(raw: bytes | str) -> bytes | str:
    if isinstance(raw, str):
        return raw[1:] if raw[:1] == "\ufeff" else raw
    return raw[3:] if raw[:3] == b"\xef\xbb\xbf" else raw


_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def _holds_nul(value: Any) -> bool:
    """Whether a decoded value holds a NUL character in any string or key (iteratively)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item.__class__ is str:
            if "\x00" in item:
                return True
        elif item.__class__ is dict:
            for key, member in item.items():
                if "\x00" in key:
                    return True
                stack.append(member)
        elif item.__class__ is list:
            stack.extend(item)
    return False


_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"\s*:?|[\[\]{}]')


def _deep_field_reason(raw: bytes | str) -> str:
    """The reason for a line too deep to decode at all: the field that holds the nesting, found
    by scanning the text (strings skipped), without recursion."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "replace")
    depth = 0
    key: bytes | None = None
    for match in _TOKENS.finditer(data):
        token = match.group()
        first = token[:1]
        if first == b'"':
            if depth == 1 and token.endswith(b":"):
                key = token[: token.rindex(b'"') + 1]
            continue
        if first in (b"{", b"["):
            depth += 1
            if depth > MAX_NESTING + 1:
                if key is None:
                    break
                try:
                    name = orjson.loads(key)
                except orjson.JSONDecodeError:
                    break
                return f"field {quoted_name(name)} is nested deeper than {MAX_NESTING} levels"
        else:
            depth -= 1
    return f"the line is nested deeper than {MAX_NESTING} levels"


def exchange_from_dict(data: dict[str, Any]) -> Exchange:
    """Validate one decoded record. Raises LineError naming the field."""
    if _KNOWN.issuperset(data):
        fields = data  # the common case: only the canonical names, so nothing to sort out
        extra: dict[str, Any] = {}
    else:
        # A contract name wins over an alias of it wherever each stands in the line ({"time": ...,
        # "ts": ...} is dated by `ts`); an alias that loses, like any unknown field, is kept as extra.
        fields = {key: value for key, value in data.items() if key in _KNOWN}
        extra = {}
        for key, value in data.items():
            if key in _KNOWN:
                continue
            name = _ALIASES.get(key)
            if name is not None and name not in fields:
                fields[name] = value
            elif key == "url":
                continue
            else:
                extra[key] = value
        if "url" in data and "path" not in fields:
            fields["path"], url_query = _split_url(data["url"])
            if url_query is not None or fields.get("query") is None:
                fields["query"] = url_query
    get = fields.get
    ts, method, path, status = get("ts"), get("method"), get("path"), get("status")
    for required, value in (("ts", ts), ("method", method), ("path", path), ("status", status)):
        if value is None:
            raise LineError(f"missing required field '{required}'")
    # Each field is checked in the order of the fields of Exchange (the first error is reported);
    # the plain cases are recognised inline, anything else goes to the field's validator.
    stamp = parse_ts(ts)
    if not (method.__class__ is str and method in METHODS):
        method = _method(method)
    path = _text("path", path, required=True)
    if not (status.__class__ is int and (status == 0 or 100 <= status <= 599)):
        status = _status(status)
    query = get("query")
    if query is not None:
        query = _text("query", query)
    duration_ms = get("duration_ms")
    if not (duration_ms.__class__ is float and 0.0 <= duration_ms < _INF):
        duration_ms = _number("duration_ms", duration_ms)
    request_id, client, job, cycle_id = get("request_id"), get("client"), get("job"), get("cycle_id")
    if request_id is not None:
        request_id = _text("request_id", request_id)
    if client is not None:
        client = _text("client", client)
    if job is not None:
        job = _text("job", job)
    if cycle_id is not None:
        cycle_id = _text("cycle_id", cycle_id)
    headers = get("request_headers")
    if headers is not None:
        headers = _headers(headers)
    request_body = get("request_body")
    if not (request_body is None or request_body.__class__ is dict):
        request_body = _body("request_body", request_body)
    response_body = get("response_body")
    if not (response_body is None or response_body.__class__ is dict):
        response_body = _body("response_body", response_body)
    return Exchange(
        stamp, method, path, status, query, duration_ms, request_id, client, job, cycle_id, headers,
        request_body, response_body, extra,
    )


_INF = float("inf")


def parse_ts(value: Any) -> datetime:
    """An RFC 3339 timestamp with a zone, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise LineError("field 'ts' must be an RFC 3339 string")
    match = _RFC3339.fullmatch(value)
    if not match:
        raise LineError(f"field 'ts' is not RFC 3339 with a zone offset: {value[:40]!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    if zone == "Z" or zone == "z":
        try:  # UTC already: the same datetime as below, built directly
            return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, UTC)
        except ValueError:
            pass  # let fromisoformat word the error
    try:
        stamp = datetime.fromisoformat(
            f"{year}-{month}-{day}T{hour}:{minute}:{second}.{micro:06d}"
            + ("+00:00" if zone in ("Z", "z") else zone)
        )
    except ValueError as exc:
        raise LineError(f"field 'ts' is not a valid date-time: {exc}") from None
    try:
        return stamp.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
        raise LineError(f"field 'ts' is out of range in UTC: {value[:40]!r}") from None


def _method(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in METHODS:
        raise LineError(f"field 'method' must be an HTTP method, got {str(value)[:20]!r}")
    return value.upper()


def _status(value: Any) -> int:
    if isinstance(value, bool):
        raise LineError("field 'status' must be an integer")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not (value == 0 or 100 <= value <= 599):
        raise LineError(f"field 'status' must be 0 or an HTTP status, got {str(value)[:20]!r}")
    return value


def _text(name: str, value: Any, *, required: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or (required and not value):
        raise LineError(f"field '{name}' must be a string")
    if "\x00" in value:
        raise LineError(f"field '{name}' contains a NUL character")
    return value


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LineError(f"field '{name}' must be a number")
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise LineError(f"field '{name}' must be a finite, non-negative number")
    return float(value)


def _headers(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise LineError("field 'request_headers' must be an object")
    return {str(k).lower(): v for k, v in value.items()}


def _body(name: str, value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    if isinstance(value, str):
        # Some shippers write the body as a JSON string; accept it when it decodes.
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            if exc.msg.startswith("depth limit"):
                raise LineError(f"field '{name}' is nested deeper than {MAX_NESTING} levels") from None
            raise LineError(f"field '{name}' must be a JSON object, array or null") from None
        if deeper_than(decoded, MAX_NESTING):
            raise LineError(f"field '{name}' is nested deeper than {MAX_NESTING} levels")
        if "\\u0000" in value and _holds_nul(decoded):
            raise LineError(f"field '{name}' contains a NUL character")
        if decoded is None or isinstance(decoded, dict | list):
            return decoded
    raise LineError(f"field '{name}' must be a JSON object, array or null")


def _split_url(url: Any) -> tuple[str, str | None]:
    if not isinstance(url, str):
        raise LineError("field 'url' must be a string")
    parts = urlsplit(url)
    return parts.path or "/", parts.query or None


def _problem(line_no: int, reason: str, raw: bytes | str) -> ParseProblem:
    if isinstance(raw, bytes):
        text = raw[: RAW_KEEP * 4].decode("utf-8", errors="replace")
    else:
        text = raw
    text = text.replace("\x00", "\\x00").rstrip("\r\n")
    if len(text) > RAW_KEEP:
        text = text[:RAW_KEEP] + "…"
    return ParseProblem(line_no=line_no, reason=reason, raw=bounded_raw(text))


def decode_query(query: str | None) -> str:
    """A query string with its percent-encoding and '+' spaces undone."""
    if not query:
        return ""
    if " " in query or '"' in query:
        return query  # written decoded already: a '+' is a plus sign, not a space
    return unquote_plus(query) if "%" in query or "+" in query else query
