"""Read the elements of a damaged JSON array one by one, so that one bad record loses only itself.

Used only when the whole file does not decode (truncated downloads, hand-edited pages). Each
element is decoded where it starts; after a bad one, reading resumes at the next place where a
record of the same shape starts (the first key of the good records, e.g. `,{"id":`), so a
record with an unbalanced quote or bracket does not take its neighbours with it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

RAW_KEEP = 2000
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[\s,]*")


@dataclass(frozen=True, slots=True)
class Element:
    number: int  # 1-based position in the array
    value: Any = None
    problem: str | None = None  # set when the element could not be decoded
    raw: str = ""  # the element's text, for a problem (cut to RAW_KEEP characters)


def find_array(text: str, key: str | None) -> int | None:
    """The index just after the `[` of the top-level array, or of the array under "key"."""
    if key is None:
        match = re.match(r"\s*\[", text)
    else:
        match = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[', text)
    return match.end() if match else None


def iter_array(text: str, pos: int) -> Iterator[Element]:
    """The elements of the array that starts just before `pos`, never raising."""
    number = 0
    resync: re.Pattern[str] | None = None
    end_of_text = len(text)
    while True:
        pos = _SPACE.match(text, pos).end()
        if pos >= end_of_text:
            number += 1
            problem = f"the file ends after record {number - 1}: truncated, the array is not closed"
            yield Element(number, problem=problem)
            return
        if text[pos] == "]":
            return
        number += 1
        try:
            value, end = _decode(text, pos, resync)
        except json.JSONDecodeError as exc:
            following = resync.search(text, pos + 1) if resync else None
            stop = following.start(1) if following else end_of_text
            raw = text[pos:stop].rstrip().rstrip(",")
            if following is None and not _closes(text):
                reason = f"the file ends inside this record: truncated ({exc.msg})"
            else:
                reason = f"malformed JSON: {exc.msg} at character {exc.pos - pos + 1} of the record"
            yield Element(number, problem=reason, raw=raw[:RAW_KEEP])
            if following is None:
                return
            pos = stop
            continue
        except (RecursionError, ValueError) as exc:  # nested too deep; an integer of thousands of digits
            following = resync.search(text, pos + 1) if resync else None
            stop = following.start(1) if following else end_of_text
            what = "nested too deep" if isinstance(exc, RecursionError) else "a number too long"
            yield Element(number, problem=f"malformed JSON: {what}", raw=text[pos:stop].rstrip().rstrip(",")[:RAW_KEEP])
            if following is None:
                return
            pos = stop
            continue
        try:
            # The standard library found where the element ends; orjson reads it, so that a
            # salvaged record means what it means in a file that decodes whole (no NaN or
            # Infinity, no integers beyond 64 bits, no lone surrogates, the same depth limit).
            value = orjson.loads(_TRAILING_COMMA.sub(_blank_comma, text[pos:end]))
        except orjson.JSONDecodeError as exc:
            yield Element(number, problem=f"malformed JSON: {exc.msg}", raw=text[pos:end][:RAW_KEEP])
            pos = end
            continue
        if resync is None:
            resync = _resync_pattern(value)
        yield Element(number, value=value)
        pos = end


def _decode(text: str, pos: int, resync: re.Pattern[str] | None) -> tuple[Any, int]:
    """The element at `pos` and where it ends. An element that does not decode is tried again with
    its trailing commas dropped (`[1, 2,]`, `{"a": 1,}`: Graph's own published examples hold one):
    they are the one damage whose intent is certain."""
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as first:
        following = resync.search(text, pos + 1) if resync else None
        stop = following.start(1) if following else len(text)
        segment = text[pos:stop]
        cleaned = _TRAILING_COMMA.sub(_blank_comma, segment)
        if cleaned == segment:
            raise
        try:
            value, end = _DECODER.raw_decode(cleaned, 0)
        except json.JSONDecodeError:
            raise first from None
        # decoded from the cleaned text; the same length, so `end` is an offset in the original
        return value, pos + end


# a string (skipped), or a comma followed by nothing but space before a closing bracket
_TRAILING_COMMA = re.compile(r'"(?:[^"\\]|\\.)*"|,(?=\s*[\]}])')


def _blank_comma(match: re.Match[str]) -> str:
    token = match.group()
    return " " if token == "," else token


def _resync_pattern(value: Any) -> re.Pattern[str] | None:
    if isinstance(value, dict) and value:
        first = next(iter(value))
        return re.compile(r",\s*(\{)\s*" + re.escape(json.dumps(first)) + r"\s*:")
    if isinstance(value, list):
        return re.compile(r"\]\s*,\s*(\[)")
    return None


def _closes(text: str) -> bool:
    tail = text.rstrip()
    return tail.endswith("]") or tail.endswith("}")
