"""parse_line / read_lines against the v1 contract (docs: /work/shared/scim-request-log-v1.md)."""
from __future__ import annotations

import gzip
import io
import pickle
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.formats.scim import parse
from dashboard.formats.scim.parse import (
    MAX_LINE_BYTES,
    METHODS,
    RAW_KEEP,
    parse_line,
    read_lines,
)
from dashboard.formats.scim.records import Exchange, ParseProblem
from tests.factories import MISSING, NOW, jsonl_line


def _exchange(raw: bytes | str) -> Exchange:
    item = parse_line(1, raw)
    assert isinstance(item, Exchange), item
    return item


def _problem(raw: bytes | str) -> ParseProblem:
    item = parse_line(7, raw)
    assert isinstance(item, ParseProblem), item
    return item


# --- required fields -------------------------------------------------------------------------


def test_it_parses_the_contract_example_lines():
    raw = (
        b'{"ts":"2026-11-28T09:00:00.310Z","method":"POST","path":"/scim/v2/Users","status":409,'
        b'"duration_ms":41.0,"request_id":"7f1c","client":"Microsoft Entra SCIM Client",'
        b'"job":"uniflow-prod","cycle_id":"c1","request_headers":{"Content-Type":"application/scim+json"},'
        b'"request_body":{"userName":"ryan@contoso.com"},'
        b'"response_body":{"status":"409","scimType":"uniqueness"}}'
    )

    exchange = _exchange(raw)

    assert exchange == Exchange(
        ts=NOW + timedelta(milliseconds=310),
        method="POST",
        path="/scim/v2/Users",
        status=409,
        duration_ms=41.0,
        request_id="7f1c",
        client="Microsoft Entra SCIM Client",
        job="uniflow-prod",
        cycle_id="c1",
        request_headers={"content-type": "application/scim+json"},  # names lower-cased
        request_body={"userName": "ryan@contoso.com"},
        response_body={"status": "409", "scimType": "uniqueness"},
    )


@pytest.mark.parametrize("field", ["ts", "method", "path", "status"])
def test_it_names_a_missing_required_field(field):
    problem = _problem(jsonl_line(**{field: MISSING}))

    assert problem.line_no == 7
    assert problem.reason == f"missing required field '{field}'"


@pytest.mark.parametrize("field", ["ts", "method", "path", "status"])
def test_it_treats_a_null_required_field_as_missing(field):
    problem = _problem(jsonl_line(**{field: None}))

    assert f"'{field}'" in problem.reason


def test_it_rejects_an_empty_path():
    problem = _problem(jsonl_line(path=""))

    assert "'path'" in problem.reason


# --- aliases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "value", "attribute", "expected"),
    [
        ("timestamp", "2026-11-28T09:00:00Z", "ts", NOW),
        ("time", "2026-11-28T09:00:00Z", "ts", NOW),
        ("status_code", 201, "status", 201),
        ("user_agent", "Microsoft Entra SCIM Client", "client", "Microsoft Entra SCIM Client"),
        ("request", {"userName": "a@contoso.com"}, "request_body", {"userName": "a@contoso.com"}),
        ("response", {"id": "2819c223"}, "response_body", {"id": "2819c223"}),
    ],
)
def test_it_accepts_each_alias_of_the_contract(alias, value, attribute, expected):
    line = jsonl_line(**{attribute: MISSING, alias: value})  # the alias instead of the field

    exchange = _exchange(line)

    assert getattr(exchange, attribute) == expected
    assert exchange.extra == {}


def test_it_splits_a_url_into_path_and_query():
    line = jsonl_line(path=MISSING, url='/scim/v2/Users?filter=userName eq "ryan@contoso.com"')

    exchange = _exchange(line)

    assert (exchange.path, exchange.query) == ("/scim/v2/Users", 'filter=userName eq "ryan@contoso.com"')


def test_it_takes_the_path_of_a_full_url_with_host():
    line = jsonl_line(path=MISSING, url="https://scim.example.com/scim/v2/Users/2819c223")

    exchange = _exchange(line)

    assert (exchange.path, exchange.query) == ("/scim/v2/Users/2819c223", None)


def test_it_keeps_the_percent_encoding_of_a_url_query():
    line = jsonl_line(path=MISSING, url="/scim/v2/Users?filter=userName+eq+%22ryan%40contoso.com%22")

    exchange = _exchange(line)

    assert exchange.query == "filter=userName+eq+%22ryan%40contoso.com%22"


def test_it_keeps_the_query_field_of_a_line_whose_url_has_none():
    line = jsonl_line(path=MISSING, url="/scim/v2/Users", query='filter=userName eq "ryan@contoso.com"')

    exchange = _exchange(line)

    assert exchange.query == 'filter=userName eq "ryan@contoso.com"'


def test_it_prefers_the_canonical_name_when_a_line_also_has_its_alias():
    line = jsonl_line(ts="2026-11-28T09:00:00Z", timestamp="2020-01-01T00:00:00Z")

    exchange = _exchange(line)

    assert exchange.ts == NOW
    assert exchange.extra == {"timestamp": "2020-01-01T00:00:00Z"}  # kept, not lost


@pytest.mark.parametrize(("alias", "field", "alias_value", "value", "attribute", "expected"), [
    ("time", "ts", "2020-01-01T00:00:00Z", "2026-11-28T09:00:00Z", "ts", NOW),
    ("status_code", "status", 500, 200, "status", 200),
    ("request", "request_body", {"userName": "old@x"}, {"userName": "a@x"}, "request_body", {"userName": "a@x"}),
])
def test_the_canonical_name_wins_over_its_alias_standing_before_it(alias, field, alias_value, value, attribute,  # type: ignore[no-untyped-def]
                                                                    expected):
    base = orjson.loads(jsonl_line())
    base.pop(field, None)
    line = orjson.dumps({alias: alias_value, **base, field: value}).decode()  # the alias first

    exchange = _exchange(line)

    assert getattr(exchange, attribute) == expected
    assert exchange.extra == {alias: alias_value}  # kept, not lost


def test_it_keeps_unknown_fields_in_extra():
    line = jsonl_line(tenant="contoso", attempt=2, trace={"span": "a1"})

    exchange = _exchange(line)

    assert exchange.extra == {"tenant": "contoso", "attempt": 2, "trace": {"span": "a1"}}


def test_it_decodes_a_body_written_as_a_json_string():
    exchange = _exchange(jsonl_line(request_body='{"userName":"a@contoso.com"}'))

    assert exchange.request_body == {"userName": "a@contoso.com"}


@pytest.mark.parametrize("body", ["not json", "42", 42, True])
def test_it_rejects_a_body_that_is_not_an_object_array_or_null(body):
    problem = _problem(jsonl_line(request_body=body))

    assert "'request_body'" in problem.reason


# --- ts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    ["2026-11-28T09:00:00", "2026-11-28T09:00:00.120", "2026-11-28", "28/11/2026 09:00:00 +00:00"],
)
def test_it_rejects_a_ts_without_a_zone_offset(ts):
    problem = _problem(jsonl_line(ts=ts))

    assert "'ts'" in problem.reason


@pytest.mark.parametrize("ts", [
    "2026-11-28T09:00:00Z\n",  # a newline inside the string: `$` matched before it
    "\uff12\uff10\uff12\uff16-11-28T09:00:00Z",  # full-width digits: `\\d` is any Unicode digit
    "2026-11-28T09:00:00.\u0661\u0662Z",  # Arabic-Indic digits in the fraction
    "2026-11-28T09:00:00+01:0\u0660",  # ... and in the offset
])
def test_it_rejects_a_ts_with_a_trailing_newline_or_digits_other_than_ascii(ts):
    problem = _problem(jsonl_line(ts=ts))

    assert problem.reason == f"field 'ts' is not RFC 3339 with a zone offset: {ts!r}"


@pytest.mark.parametrize("ts", [1764320400, 1764320400.5, ["2026-11-28T09:00:00Z"]])
def test_it_rejects_a_ts_that_is_not_a_string(ts):
    problem = _problem(jsonl_line(ts=ts))

    assert problem.reason == "field 'ts' must be an RFC 3339 string"


@pytest.mark.parametrize("ts", ["2026-02-30T09:00:00Z", "2026-11-28T24:00:00Z", "2026-11-28T09:00:00+24:00"])
def test_it_rejects_an_impossible_date_time(ts):
    problem = _problem(jsonl_line(ts=ts))

    assert "'ts'" in problem.reason


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-28T10:00:00+01:00", NOW),
        ("2026-11-28T03:30:00-05:30", NOW),
        ("2026-11-28t09:00:00z", NOW),
        ("2026-11-28 09:00:00Z", NOW),
    ],
)
def test_it_converts_a_ts_with_an_offset_to_utc(ts, expected):
    exchange = _exchange(jsonl_line(ts=ts))

    assert exchange.ts == expected
    assert exchange.ts.utcoffset() == timedelta(0)
    assert exchange.ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("fraction", "microseconds"),
    [
        ("", 0),
        (".1", 100_000),
        (".12", 120_000),
        (".123", 123_000),
        (".1234", 123_400),
        (".12345", 123_450),
        (".123456", 123_456),
        (".1234567", 123_456),  # beyond microseconds: truncated, not rounded
        (".12345678", 123_456),
        (".123456789", 123_456),
    ],
)
def test_it_reads_zero_to_nine_fractional_digits(fraction, microseconds):
    exchange = _exchange(jsonl_line(ts=f"2026-11-28T09:00:00{fraction}Z"))

    assert exchange.ts == NOW.replace(microsecond=microseconds)


def test_it_rejects_a_decimal_point_without_digits():
    problem = _problem(jsonl_line(ts="2026-11-28T09:00:00.Z"))

    assert "'ts'" in problem.reason


# --- status --------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "expected"), [(200, 200), ("200", 200), (" 404 ", 404), (201.0, 201), (0, 0), (100, 100), (599, 599)])
def test_it_accepts_a_status(status, expected):
    exchange = _exchange(jsonl_line(status=status))

    assert exchange.status == expected
    assert type(exchange.status) is int


@pytest.mark.parametrize("status", [99, 600, -1, True, False, 200.5, "OK", "", [200], {"code": 200}])
def test_it_rejects_a_status_that_is_not_0_or_an_http_status(status):
    problem = _problem(jsonl_line(status=status))

    assert "'status'" in problem.reason


def test_it_names_the_status_field_for_a_digit_like_string_that_is_no_number():
    problem = _problem(jsonl_line(status="²"))

    assert "'status'" in problem.reason


# --- method --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "expected"), [("get", "GET"), ("Patch", "PATCH"), ("DELETE", "DELETE"), ("put", "PUT"), ("post", "POST")])
def test_it_upper_cases_the_method(method, expected):
    exchange = _exchange(jsonl_line(method=method))

    assert exchange.method == expected


@pytest.mark.parametrize("method", ["FETCH", "", 1, ["GET"]])
def test_it_rejects_an_unknown_method(method):
    problem = _problem(jsonl_line(method=method))

    assert "'method'" in problem.reason


# --- other optional fields ------------------------------------------------------------------


@pytest.mark.parametrize("duration", [-1, "18ms", True])
def test_it_rejects_a_bad_duration(duration):
    problem = _problem(jsonl_line(duration_ms=duration))

    assert "'duration_ms'" in problem.reason


def test_it_rejects_a_nul_character_inside_a_string_field():
    problem = _problem(jsonl_line(path="/scim/v2/Users\x00"))

    assert problem.reason == "field 'path' contains a NUL character"


@pytest.mark.parametrize("headers", [["authorization: x"], "authorization: x"])
def test_it_rejects_headers_that_are_not_an_object(headers):
    problem = _problem(jsonl_line(request_headers=headers))

    assert "'request_headers'" in problem.reason


# --- lines that are not records -------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"\n", b"\r\n", b"   \t \r\n", "  \n"])
def test_it_skips_a_blank_line(raw):
    assert parse_line(3, raw) is None


@pytest.mark.parametrize("raw", [b'{"ts":', b"{'ts': 1}", b'{"ts":"2026-11-28T09:00:00Z",}', b"ts=2026"])
def test_it_reports_malformed_json(raw):
    problem = _problem(raw)

    assert problem.reason.startswith("malformed JSON")


@pytest.mark.parametrize("raw", [b"[1, 2]", b"42", b'"a string"', b"null", b"true"])
def test_it_rejects_json_that_is_not_an_object(raw):
    problem = _problem(raw)

    assert problem.reason.startswith("a line must be a JSON object, not a")


@pytest.mark.parametrize(
    "raw",
    [b"\x00\x00\x00\n", b"\xff\xfe\xfd\x00\x01", b"\x1f\x8b\x08\x00junk", b'{"ts":"\xff\xfe"}', bytes(range(256))],
)
def test_it_reports_binary_junk_as_a_problem(raw):
    problem = _problem(raw)

    assert problem.line_no == 7
    assert "\x00" not in problem.raw  # NULs are shown escaped, never stored


_UTF8_LINE = jsonl_line(request_body={"displayName": "Ren\u00e9e"}).replace("Ren\u00e9e".encode(), b"Ren\xffe")
_FF = _UTF8_LINE.index(b"\xff") + 1  # counted from 1


@pytest.mark.parametrize(("raw", "reason"), [
    (_UTF8_LINE, f"invalid UTF-8 at byte {_FF} (0xff: invalid start byte)"),
    (b"\xef\xbb\xbf" + _UTF8_LINE,  # the byte order mark is counted: the byte is named in the line as read
     f"invalid UTF-8 at byte {_FF + 3} (0xff: invalid start byte)"),
    (b"\xff{}", "invalid UTF-8 at byte 1 (0xff: invalid start byte)"),
    (b'{"a": "\xe2\x82"}', "invalid UTF-8 at byte 8 (0xe2: invalid continuation byte)"),  # a character cut short
    (b'{"a": "\xed\xa0\x80"}', "invalid UTF-8 at byte 8 (0xed: invalid continuation byte)"),  # an encoded surrogate
    (b'{"a": "\xc3\xa9\xc3\xa9\xc0\xaf"}', "invalid UTF-8 at byte 12 (0xc0: invalid start byte)"),  # overlong "/"
    ('{"a": "x\ud800"}', "a lone surrogate (U+D800) at character 9"),  # text (not bytes) given to the parser
])
def test_it_names_the_first_byte_that_is_not_utf_8(raw, reason):
    # orjson says "str is not valid UTF-8: surrogates not allowed at character 1", wherever the fault
    assert _problem(raw).reason == f"malformed JSON: {reason}"


def test_it_rejects_a_line_longer_than_the_limit():
    raw = b'{"x":"' + b"a" * MAX_LINE_BYTES + b'"}'

    problem = _problem(raw)

    assert problem.reason == f"line is longer than {MAX_LINE_BYTES} bytes"
    assert len(problem.raw) == RAW_KEEP + 1


def test_it_keeps_only_the_start_of_a_long_rejected_line():
    raw = b"not json " + b"x" * (RAW_KEEP * 3)

    problem = _problem(raw)

    assert problem.raw == raw[:RAW_KEEP].decode() + "…"


def test_it_keeps_a_short_rejected_line_whole_without_its_newline():
    problem = _problem(b"not json\r\n")

    assert problem.raw == "not json"


# --- read_lines ------------------------------------------------------------------------------

_THREE_LINES = jsonl_line(request_id="a") + b"\n" + jsonl_line(request_id="c").rstrip(b"\n")


def test_it_numbers_lines_from_one():
    lines = list(read_lines(io.BytesIO(_THREE_LINES)))

    assert [n for n, _ in lines] == [1, 2, 3]
    assert lines[1][1] == b"\n"


def test_it_reads_a_last_line_without_a_newline():
    (*_, (line_no, last)) = read_lines(io.BytesIO(_THREE_LINES))

    assert line_no == 3
    assert _exchange(last).request_id == "c"


def test_it_reads_gzip_data_like_plain_data():
    plain = list(read_lines(io.BytesIO(_THREE_LINES)))

    zipped = list(read_lines(io.BytesIO(gzip.compress(_THREE_LINES))))

    assert zipped == plain


def _many_lines(count: int) -> bytes:
    return b"".join(jsonl_line(request_id=f"gz-{n}", client=f"client {n * 7919 % 100003}") for n in range(count))


def _read_damaged(data: bytes) -> tuple[list[tuple[int, bytes]], ParseProblem]:
    """The lines read from damaged gzip `data`, and the reject of the damage (the last item)."""
    items = list(read_lines(io.BytesIO(data)))
    (damage_no, damage) = items[-1]
    problem = parse_line(damage_no, damage)
    assert isinstance(problem, ParseProblem), problem
    return items[:-1], problem


def _decompressed_before_the_damage(data: bytes) -> bytes:
    """What zlib decompresses of `data` before it raises or ends, fed one byte at a time."""
    out, decompressor = [], zlib.decompressobj(31)
    for position in range(len(data)):
        try:
            out.append(decompressor.decompress(data[position : position + 1]))
        except zlib.error:
            break
        if decompressor.eof:
            break
    return b"".join(out)


def test_it_reads_every_line_of_gzip_data_followed_by_junk_and_says_so():
    plain = _many_lines(5000)

    lines, problem = _read_damaged(gzip.compress(plain) + b"garbage")

    assert b"".join(raw for _, raw in lines) == plain
    assert [n for n, _ in lines] == list(range(1, 5001))
    assert problem.line_no == 0
    assert problem.reason == ("the gzip stream is followed by data that is not gzip (after line 5000); "
                              "that data is ignored")


def test_it_reads_every_line_of_gzip_data_whose_crc_is_damaged_and_says_so():
    plain = _many_lines(3)
    zipped = bytearray(gzip.compress(plain))
    zipped[-8] ^= 0xFF  # the CRC-32 of the trailer

    lines, problem = _read_damaged(bytes(zipped))

    assert b"".join(raw for _, raw in lines) == plain
    assert problem.reason == ("the gzip stream is damaged after line 3: CRC check failed; "
                              "nothing after that point can be read")


def test_it_reads_a_cut_off_gzip_file_up_to_the_cut_and_rejects_the_line_cut_there():
    plain = _many_lines(5000)
    zipped = gzip.compress(plain)
    cut = zipped[: len(zipped) // 2]
    expected = _decompressed_before_the_damage(cut)
    complete = expected.count(b"\n")

    lines, problem = _read_damaged(cut)

    assert b"".join(raw for _, raw in lines) == expected
    assert all(_exchange(raw) for _, raw in lines[:complete])
    (cut_no, cut_line), = lines[complete:]  # the line the cut went through
    assert cut_no == complete + 1
    assert parse_line(cut_no, cut_line).reason.startswith("malformed JSON")
    assert problem.reason == f"the gzip stream ends early after line {complete + 1}: the file is cut off"


@pytest.mark.parametrize("where", [0.3, 0.6, 0.9])
def test_it_reads_every_line_decompressed_before_damage_inside_the_stream(where):
    zipped = bytearray(gzip.compress(_many_lines(5000)))
    for offset in range(int(len(zipped) * where), int(len(zipped) * where) + 16):
        zipped[offset] ^= 0x55
    expected = _decompressed_before_the_damage(bytes(zipped))

    lines, problem = _read_damaged(bytes(zipped))

    assert b"".join(raw for _, raw in lines) == expected
    assert expected.count(b"\n") > 1000  # zlib drops a failing call's output: not lost here
    assert problem.reason.startswith(f"the gzip stream is damaged after line {len(lines)}: ")


def test_it_reads_a_gzip_file_that_is_only_its_magic_number_as_cut_off():
    lines, problem = _read_damaged(b"\x1f\x8b")

    assert lines == []
    assert problem.reason == "the gzip stream ends early before its first line: the file is cut off"


def test_it_reads_concatenated_gzip_members_and_nul_padding_as_one_stream():
    first, second = _many_lines(3), _many_lines(2)

    lines = list(read_lines(io.BytesIO(gzip.compress(first) + gzip.compress(second) + b"\0" * 512)))

    assert b"".join(raw for _, raw in lines) == first + second


def test_the_damage_of_an_input_survives_pickling_to_a_worker():
    (*_, (number, damage)) = read_lines(io.BytesIO(gzip.compress(_many_lines(2)) + b"junk"))

    again = pickle.loads(pickle.dumps(damage, pickle.HIGHEST_PROTOCOL))

    assert parse_line(number, again) == parse_line(number, damage)
    assert parse_line(number, again).reason.startswith("the gzip stream is followed by data")


_CR_LINES = jsonl_line(request_id="cr1").rstrip(b"\n") + b"\r" + jsonl_line(request_id="cr2").rstrip(b"\n") + b"\r"


@pytest.mark.parametrize("pack", [lambda data: data, gzip.compress], ids=["plain", "gzip"])
def test_it_reads_lines_ended_by_a_bare_cr_when_the_input_has_no_lf(pack):
    lines = list(read_lines(io.BytesIO(pack(_CR_LINES))))

    assert [(n, _exchange(raw).request_id) for n, raw in lines] == [(1, "cr1"), (2, "cr2")]


def test_it_reads_crlf_lines_as_they_are_even_when_the_first_read_ends_between_cr_and_lf():
    padding = parse.READ_BUFFER - len(jsonl_line(request_id="long", client=""))  # first read: up to the CR
    first = jsonl_line(request_id="long", client="x" * padding).rstrip(b"\n") + b"\r\n"
    assert first.index(b"\r") == parse.READ_BUFFER - 1
    data = first + jsonl_line(request_id="next").rstrip(b"\n") + b"\r\n"

    lines = list(read_lines(io.BytesIO(data)))

    assert [(n, _exchange(raw).request_id) for n, raw in lines] == [(1, "long"), (2, "next")]


def test_it_says_so_when_a_bare_cr_inside_a_line_breaks_it():
    data = jsonl_line(request_id="a") + _CR_LINES.rstrip(b"\r") + b"\n"  # an LF file: CR ends no line

    (_, first), (second_no, second) = read_lines(io.BytesIO(data))

    assert _exchange(first).request_id == "a"
    reason = parse_line(second_no, second).reason
    assert reason.startswith("malformed JSON: unexpected content after document at character ")
    assert reason.endswith("; the line holds a bare CR (\\r), which ends no line here: lines end in LF or CRLF")


def test_it_reads_nothing_from_an_empty_stream():
    assert list(read_lines(io.BytesIO(b""))) == []


def test_it_goes_on_after_an_oversize_line():
    stream = io.BytesIO(b'{"x":"' + b"a" * (MAX_LINE_BYTES + 10) + b'"}\n' + jsonl_line(request_id="after"))

    (first_no, first), (second_no, second) = read_lines(stream)

    assert first_no == 1 and isinstance(parse_line(first_no, first), ParseProblem)
    assert second_no == 2 and _exchange(second).request_id == "after"


def test_it_does_not_hold_an_oversize_line_in_memory(monkeypatch):
    monkeypatch.setattr(parse, "MAX_LINE_BYTES", 1024)
    stream = io.BytesIO(b"x" * (8 * 1024 * 1024) + b"\n" + jsonl_line())
    tracemalloc.start()
    try:
        lines = [(n, len(raw)) for n, raw in read_lines(stream)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert lines[0] == (1, 1025)
    assert peak < 1024 * 1024


# --- fuzz ------------------------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=6,
)
_plausible = st.sampled_from(
    [
        "2026-11-28T09:00:00Z", "2026-11-28T09:00:00.123456789+01:00", "2026-13-40T99:99:99Z", "get",
        "PATCH", "/scim/v2/Users", "/scim/v2/Users?filter=x", 0, 200, "200", 99, 600, -0.0, 1e300,
        '{"a":1}', "[1]", "\x00", "",
    ]
)
_keys = st.sampled_from(
    [
        "ts", "timestamp", "time", "method", "path", "url", "query", "status", "status_code",
        "duration_ms", "request_id", "client", "user_agent", "job", "cycle_id", "request_headers",
        "request_body", "request", "response_body", "response",
    ]
) | st.text(max_size=8)
_VALID = {"ts": "2026-11-28T09:00:00Z", "method": "GET", "path": "/scim/v2/Users", "status": 200}
_records = st.dictionaries(_keys, _plausible | _json, max_size=10) | st.dictionaries(
    _keys, _plausible | _json, max_size=4
).map(lambda changes: _VALID | changes)  # mostly valid: reaches the field checks


def _check_result(item: object) -> None:
    assert item is None or isinstance(item, Exchange | ParseProblem)
    if isinstance(item, Exchange):
        assert item.ts.tzinfo is UTC
        assert item.method in METHODS
        assert item.status == 0 or 100 <= item.status <= 599
        assert isinstance(item.path, str) and item.path
    if isinstance(item, ParseProblem):
        assert item.reason
        assert len(item.raw) <= RAW_KEEP + 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_it_never_raises_on_arbitrary_bytes(raw):
    _check_result(parse_line(1, raw))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_it_never_raises_on_arbitrary_text(raw):
    _check_result(parse_line(1, raw))


@settings(max_examples=300, deadline=None)
@given(_records)
def test_it_never_raises_on_arbitrary_json_records(record):
    item = parse_line(1, orjson.dumps(record))

    _check_result(item)
    if isinstance(item, ParseProblem):  # every rejection of a JSON object names its cause
        assert not item.reason.startswith("unreadable line"), (record, item.reason)


@settings(max_examples=100, deadline=None)
@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),  # RFC 3339 offsets: hh:mm
)
def test_it_reads_back_any_aware_timestamp(naive, offset_minutes):
    when = naive.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))

    exchange = _exchange(jsonl_line(ts=when.isoformat(timespec="microseconds")))

    assert exchange.ts == when


# --- bounded nesting and other hostile lines (issue 10 item 4; regressions found by `make fuzz`) ------

_BASE = b'{"ts":"2026-11-28T09:00:00Z","method":"POST","path":"/scim/v2/Users","status":201'


def _nested(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


def _with(field: bytes, value: bytes) -> bytes:
    return _BASE + b',"' + field + b'":' + value + b"}"


def test_it_accepts_a_body_nested_as_deep_as_the_limit():
    exchange = _exchange(_with(b"request_body", _nested(parse.MAX_NESTING)))

    assert exchange.request_body["a"]["a"]["a"] is not None


@pytest.mark.parametrize("levels", [65, 253, 300, 950, 1000, 1023, 1100, 5000])
def test_it_rejects_a_body_nested_deeper_than_the_limit_naming_the_field(levels):
    problem = _problem(_with(b"request_body", _nested(levels)))

    assert problem.reason == "field 'request_body' is nested deeper than 64 levels"


@pytest.mark.parametrize("field", [b"response", b"request_headers", b"unknown_field"])
def test_it_names_the_field_as_the_line_spells_it(field):
    problem = _problem(_with(field, b"[" * 200 + b"]" * 200))

    assert problem.reason == f"field '{field.decode()}' is nested deeper than 64 levels"


def test_it_rejects_a_body_written_as_a_json_string_that_is_nested_too_deep():
    inner = orjson.dumps(_nested(300).decode())

    problem = _problem(_with(b"response_body", inner))

    assert problem.reason == "field 'response_body' is nested deeper than 64 levels"


def test_it_rejects_a_line_that_is_an_array_nested_too_deep():
    assert _problem(b"[" * 300 + b"]" * 300).reason == "the line is nested deeper than 64 levels"
    assert _problem(b"[" * 2000 + b"]" * 2000).reason == "the line is nested deeper than 64 levels"


def test_the_raw_text_kept_of_a_too_deep_line_can_be_redacted_and_serialised():
    from dashboard.formats.scim.redact import DEFAULT_RULES, deeper_than, redact_body

    line = _with(b"request_body", b'{"pin":"1234","x":' + _nested(500) + b"}")

    problem = _problem(line)

    kept = orjson.loads(problem.raw)  # JSON, cut below the limit: "…" stands for what was deeper
    assert not deeper_than(kept, parse.MAX_NESTING + 1)
    assert orjson.dumps(redact_body(kept, DEFAULT_RULES)).count(b"[REDACTED]") == 1


def test_a_too_deep_line_is_a_reject_of_the_preparation_never_a_deferred_exchange():
    from dashboard.formats.scim.redact import DEFAULT_RULES
    from dashboard.ingest.prepare import Preparer

    preparer = Preparer(rules=DEFAULT_RULES, guid_lookups_are_tests=True, job_id=1, job_name="uniflow-prod")

    items = preparer.prepare([(1, _with(b"request_body", _nested(n))) for n in (253, 255, 990)])

    assert [type(item) for item in items] == [ParseProblem] * 3


def test_it_rejects_an_escaped_line_saying_what_it_is():
    problem = _problem(orjson.dumps(jsonl_line().decode()))

    assert problem.reason == "a line must be a JSON object, not a string (escaped JSON?)"


@pytest.mark.parametrize("raw", [b'{1:"a"}', b'{"ts":"2026-11-28T09:00:00Z" "method":"GET"}', b'{:"ts"}'])
def test_it_rejects_values_where_keys_belong(raw):
    assert _problem(raw).reason.startswith("malformed JSON")


def test_it_rejects_every_truncation_of_a_line_with_a_reason():
    line = jsonl_line(request_body={"userName": "a@contoso.com", "emails": [{"value": "a@contoso.com"}]})

    for end in range(1, len(line.rstrip(b"\n"))):
        item = parse_line(1, line[:end])
        assert isinstance(item, ParseProblem) and item.reason, end


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (b"response_body", b'{"userName":"\\u0000"}'),
        (b"request_body", b'{"Operations":[{"value":{"a\\u0000":1}}]}'),
        (b"request_body", orjson.dumps('{"userName":"x\\u0000"}')),  # a body written as a JSON string
        (b"path", b'"/scim/v2/Users\\u0000"'),
    ],
)
def test_it_rejects_a_nul_character_anywhere_in_a_line(field, value):
    # PostgreSQL refuses NUL in text, and body strings become columns (userName, SCIM id, detail)
    problem = _problem(_with(field, value))

    assert problem.reason == f"field '{field.decode()}' contains a NUL character"


def test_it_reads_a_line_that_starts_with_a_byte_order_mark():
    assert _exchange(b"\xef\xbb\xbf" + jsonl_line()).method == "GET"
    assert _exchange("\ufeff" + jsonl_line().decode()).method == "GET"
    assert parse_line(1, b"\xef\xbb\xbf\n") is None


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_it_rejects_a_time_out_of_range_once_in_utc(ts):
    assert _problem(jsonl_line(ts=ts)).reason == f"field 'ts' is out of range in UTC: {ts!r}"
