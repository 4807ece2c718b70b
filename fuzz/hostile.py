"""Hostile JSON: values, a serializer that can write what JSON libraries refuse, and mutators.

A generated document is a tree of plain values plus two markers: `Raw` (text written verbatim:
NaN, 1e999, a 5,000-digit integer, a lone surrogate escape, nesting 1,000 levels deep) and
`Pairs` (an object whose keys may repeat). `dumps` writes such a tree without recursion, so
that nesting is bounded only by what a mutation asked for.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import orjson


class Raw:
    """Text written into the document as it is. (Not a dataclass: orjson must refuse it, see dumps.)"""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r})"


class Pairs:
    """An object as a list of (key, value): keys may repeat, in any order."""

    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[str, Any], ...]) -> None:
        self.items = items


# -- values ------------------------------------------------------------------------------------------

NUMBERS: tuple[Any, ...] = (
    0, -1, 1, 1.5, -0.0, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
    1e308, 5e-324, -1e-7, 1e15, 86400000, 3236,
    Raw("2" + "0" * 25), Raw("-" + "9" * 40), Raw("9" * 5000), Raw("1e999"), Raw("-1e999"), Raw("NaN"),
    Raw("Infinity"), Raw("-Infinity"), Raw("01"), Raw("1."), Raw("-"), Raw(".5"), Raw("1e"), Raw("0x10"),
    Raw("18446744073709551616"), Raw("-9223372036854775809"), Raw("1E+2"), Raw("-0"),
)
STRINGS: tuple[Any, ...] = (
    "", " ", "\x00", "a\x00b", "\ufeff", "\u202eevil", "\u200b", "\u00a0", "e\u0301", "\uff21\uff22", "ǅ", "ﬁ",
    "İ", "ß", "Ⅻ", "😀", "\U0010ffff", "\u2028\u2029", "\r\n", "\t", "\\", '"', "'", "null", "true", "None", "0",
    "{}", "[]", '{"a":1}', "[1,2", "%00", "%zz", "%", "+", "&filter=", "x" * 5000, "😀" * 700, "é" * 3000,
    "Create", "create ", "CREATE", "stagedDelete", "unknownFutureValue", "Other", "Success", "failure",
    "Failure\u200b", "skipped", "Warning", "EntryExportUpdate", "EntryImportAdd", "Export", "userName",
    "ryan@contoso.com", "RYAN@CONTOSO.COM", "ryan\u00a0@contoso.com", "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:api:messages:2.0:Error", "urn:ietf:params:scim:api:messages:2.0:PatchOp",
    "urn:ietf:params:scim:schemas:extension:uniFLOWOnline:2.0:User:pin", "pin", "password", "cardNumber",
    "Bearer abc.def.ghi", "retried 3 times. It will be retried again after this date: 9999-12-31T23:59:59Z UTC",
    "This operation was retried 99999999999999999999 times", "/scim/v2/Users", "/Users/../../etc", "GET", "get",
    "PATCH", "TRACE", "userName eq \"x\"", "00000000-0000-0000-0000-000000000000", "None",
    Raw('"\\ud800"'), Raw('"\\udc00\\ud800"'), Raw('"\\u0000"'), Raw('"\\uZZZZ"'), Raw('"\\x41"'), Raw("'single'"),
    Raw('"unterminated'), Raw('"a\nb"'), Raw('"\x01"'),
)
DATES: tuple[str, ...] = (
    "2026-11-28T09:00:00Z", "2026-11-28T09:00:00.120Z", "9999-12-31T23:59:59.9999999Z", "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00", "0001-01-01T00:30:00+14:00", "9999-12-31T23:00:00-01:00", "9999-12-31T23:59:59-23:59",
    "10000-01-01T00:00:00Z", "2031-06-01T00:00:00Z", "2099-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
    "1900-01-01T00:00:00Z", "1601-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-28T23:59:60Z",
    "2026-11-28T24:00:00Z", "2026-11-28T09:00:00", "2026-11-28T09:00:00+14:00", "2026-11-28T09:00:00-23:59",
    "2026-11-28T09:00:00+99:99", "2026-11-28T09:00:00.1234567890123Z", "2026-11-28 09:00:00 UTC",
    "2026-11-28T09:00:00,5Z", "2026-11-28", "2026-13-01T00:00:00Z", "2026-11-28T9:0:0Z", "20261128T090000Z",
    "13/45/2026 7:17:42 AM", "3/24/2026 0:17:42 PM", "3/24/2026 13:17:42 PM", "2/29/2025, 1:00:00 AM",
    "1/1/0001 12:00:00 AM", "12/31/9999 11:59:59 PM", "12/31/9999, 11:59:59.9999999 PM",
    "P10675199DT2H48M5.4775807S", "PT40M", "PT1M", "P1Y", "P99999999999999999999D", "PT99999999999999999999S",
    "P", "PT", "-PT1H",
)
SHAPES: tuple[Any, ...] = (None, True, False, [], {}, [None], {"": None}, [[]], [{}], {"value": []}, [1, "a", None])
_KEYS = tuple(s for s in STRINGS if isinstance(s, str) and len(s) < 100) + ("id", "value", "details", "status", "name")
DEPTHS = (2, 10, 63, 64, 65, 66, 100, 253, 254, 255, 256, 400, 950, 990, 999, 1000, 1022, 1023, 1024, 1025, 1500)


def deep(rng: random.Random) -> Raw:
    """An object or array nested DEPTHS[i] levels (as text: no recursion anywhere)."""
    depth = rng.choice(DEPTHS)
    kind = rng.randrange(5)
    if kind == 0:
        return Raw("[" * depth + "]" * depth)
    if kind == 1:
        return Raw('{"a":' * depth + "1" + "}" * depth)
    if kind == 2:
        return Raw('[{"value":' * depth + '"x"' + "}]" * depth)
    if kind == 3:  # balanced, then cut: truncated nesting
        return Raw("[" * depth + "]" * rng.randrange(depth))
    return Raw('{"details":' * depth + '{"pin":"1234"}' + "}" * depth)


def hostile(rng: random.Random) -> Any:
    """One hostile value of any kind."""
    kind = rng.randrange(10)
    if kind < 2:
        return rng.choice(NUMBERS)
    if kind < 5:
        return rng.choice(STRINGS)
    if kind < 7:
        return rng.choice(DATES)
    if kind < 8:
        return rng.choice(SHAPES)
    if kind < 9:
        return deep(rng)
    return random_value(rng, 3)


def random_value(rng: random.Random, depth: int) -> Any:
    """A random JSON value, at most `depth` levels deep, of plausible and hostile parts."""
    kind = rng.randrange(8 if depth > 0 else 5)
    if kind == 0:
        return rng.choice(NUMBERS)
    if kind == 1:
        return rng.choice(STRINGS)
    if kind == 2:
        return rng.choice(DATES)
    if kind == 3:
        return rng.choice((None, True, False))
    if kind == 4:
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x80, 0x2FFF), rng.randrange(0, 32))))
                       for _ in range(rng.randrange(12)))
    if kind in (5, 6):
        return {rng.choice(_KEYS): random_value(rng, depth - 1) for _ in range(rng.randrange(4))}
    return [random_value(rng, depth - 1) for _ in range(rng.randrange(4))]


# -- serializer --------------------------------------------------------------------------------------


def dumps(value: Any, *, indent: bool = False) -> str:
    """JSON text of a tree of plain values, Raw and Pairs; never recursive."""
    out: list[str] = []
    stack: list[Any] = [value]
    newline = "\n" if indent else ""
    option = orjson.OPT_INDENT_2 if indent else 0
    while stack:
        item = stack.pop()
        if item.__class__ is _Text:
            out.append(item.text)
            continue
        if item.__class__ is dict or item.__class__ is list:
            try:  # the common case: nothing orjson refuses below (Raw, Pairs, a lone surrogate, depth)
                out.append(orjson.dumps(item, default=_refuse, option=option).decode())
                continue
            except TypeError:
                pass
        if isinstance(item, Raw):
            out.append(item.text)
        elif isinstance(item, Pairs | dict):
            pairs = item.items if isinstance(item, Pairs) else tuple(item.items())
            parts: list[Any] = [_Text("{" + newline)]
            for index, (key, member) in enumerate(pairs):
                if index:
                    parts.append(_Text("," + newline))
                parts.append(_Text((key.text if isinstance(key, Raw) else _string(str(key))) + ":"))
                parts.append(member)
            parts.append(_Text(newline + "}"))
            stack.extend(reversed(parts))
        elif isinstance(item, list | tuple):
            parts = [_Text("[")]
            for index, member in enumerate(item):
                if index:
                    parts.append(_Text(","))
                parts.append(member)
            parts.append(_Text("]"))
            stack.extend(reversed(parts))
        elif isinstance(item, str):
            out.append(_string(item))
        elif item is None or isinstance(item, bool):
            out.append("null" if item is None else ("true" if item else "false"))
        elif isinstance(item, int):
            out.append(str(item) if abs(item) < 10**4000 else "1")
        elif isinstance(item, float):
            out.append(json.dumps(item) if item == item and abs(item) != float("inf") else "null")
        else:
            out.append(_string(str(item)))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _string(text: str) -> str:
    try:
        return orjson.dumps(text).decode()
    except orjson.JSONEncodeError:  # a lone surrogate: the standard library escapes it
        return json.dumps(text)


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


# -- mutations of a decoded document -------------------------------------------------------------------


def paths(value: Any, limit: int = 400) -> list[tuple[Any, ...]]:
    """Paths (tuples of keys and indexes) to the nodes of `value`, breadth first, at most `limit`."""
    found: list[tuple[Any, ...]] = [()]
    queue: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    head = 0
    while head < len(queue) and len(found) < limit:
        path, node = queue[head]
        head += 1
        if isinstance(node, dict):
            children = list(node.items())
        elif isinstance(node, list):
            children = list(enumerate(node))
        else:
            continue
        for key, child in children:
            found.append(path + (key,))
            queue.append((path + (key,), child))
    return found


def get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """`value` with the node at `path` replaced (copies along the path only)."""
    if not path:
        return new
    stack = [value]
    for key in path[:-1]:
        stack.append(stack[-1][key])
    for key, node in zip(reversed(path), reversed(stack)):
        copy: Any = dict(node) if isinstance(node, dict) else list(node)
        copy[key] = new
        new = copy
    return new


def remove(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return value
    parent = get(value, path[:-1])
    if isinstance(parent, dict):
        copy: Any = {k: v for k, v in parent.items() if k != path[-1]}
    else:
        copy = [v for i, v in enumerate(parent) if i != path[-1]]
    return replace(value, path[:-1], copy)


def mutate(rng: random.Random, value: Any, keys: tuple[str, ...], fragments: list[Any]) -> Any:
    """One structural mutation of a decoded document. `keys`: field names the reader knows;
    `fragments`: parts of other seeds to splice in."""
    where = rng.choice(paths(value))
    node = get(value, where)
    op = rng.randrange(14)
    if op <= 3:
        return replace(value, where, hostile(rng))
    if op == 4:
        return remove(value, where)
    if op == 5 and isinstance(node, dict) and node:  # a repeated key, with another value before or after
        items = list(node.items())
        key = rng.choice(items)[0]
        extra = (key, hostile(rng))
        items.insert(rng.randrange(len(items) + 1), extra)
        return replace(value, where, Pairs(tuple(items)))
    if op == 6 and isinstance(node, dict):  # a known field, added with a hostile value
        return replace(value, where, {**node, rng.choice(keys): hostile(rng)})
    if op == 7 and isinstance(node, dict) and node:  # a key renamed: case, spacing, another field's name
        old = rng.choice(list(node))
        new = rng.choice((old.upper(), old.lower(), f" {old}", f"{old}\u200b", old.replace("I", "i"), rng.choice(keys),
                          old + old, ""))
        return replace(value, where, {(new if k == old else k): v for k, v in node.items()})
    if op == 8:  # the node as a JSON string (escaped JSON)
        return replace(value, where, dumps(node) if rng.random() < 0.8 else dumps(node)[: rng.randrange(1, 40)])
    if op == 9:  # wrapped
        return replace(value, where, rng.choice(([node], {"value": [node]}, {"properties": node}, [node, node])))
    if op == 10 and fragments:
        return replace(value, where, rng.choice(fragments))
    if op == 11 and isinstance(node, list) and node:  # an element repeated or moved
        items = list(node)
        items.insert(rng.randrange(len(items) + 1), rng.choice(items))
        return replace(value, where, items)
    if op == 12:
        return replace(value, where, rng.choice(DATES))
    return replace(value, where, random_value(rng, 3))


# -- mutations of bytes --------------------------------------------------------------------------------

TOKENS = (b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"\x00", b"\xff", b"\xef\xbb\xbf", b"\r\n", b"\n", b"NaN",
          b"Infinity", b"1e999", b"-0", b"9" * 30, b"\\u0000", b"\\ud800", b"\xc3", b"\xed\xa0\x80", b"\x1f\x8b", b"\t",
          b";", b"\"\"", b"null", b"true", b",,", b"]]]]", b"{{{{")


def mutate_bytes(rng: random.Random, data: bytes, index: int) -> bytes:
    """One byte-level mutation. `index` walks truncation points so that every position is tried."""
    op = rng.randrange(10)
    size = len(data)
    if op <= 2 and size:  # truncation: at every position across inputs
        return data[: (index * 7919) % size]
    if op == 3:
        at = rng.randrange(size + 1)
        return data[:at] + rng.choice(TOKENS) + data[at:]
    if op == 4 and size:
        at = rng.randrange(size)
        return data[:at] + data[at + rng.randrange(1, 20):]
    if op == 5 and size:
        at = rng.randrange(size)
        return data[:at] + bytes((rng.randrange(256),)) + data[at + 1:]
    if op == 6 and size:  # a slice repeated
        a = rng.randrange(size)
        b = min(size, a + rng.randrange(1, 200))
        return data[:b] + data[a:b] + data[b:]
    if op == 7:
        return b"\xef\xbb\xbf" + data
    if op == 8 and size:  # the end of the file cut and the start repeated
        return data + data[: rng.randrange(size)]
    return data.replace(b"\n", b"\r\n") if rng.random() < 0.5 else data.replace(b",", b", ", rng.randrange(1, 50))
