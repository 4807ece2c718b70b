"""Apply the project's redaction rules to the places Entra's events carry attribute values.

Modified properties name the attribute in `displayName` ("pin", or the URN-qualified
"urn:...:uniFLOWOnline:2.0:User:pin"); export steps' `details` use the name with its
punctuation dropped ("urnietfparamsscimschemasextensionuniFLOWOnline20Userpin", as in the
Sumo Logic sample); a failure `reason` may quote the target's JSON answer. Matching is the one of
ingest/redact.py (case-insensitive, last segment of a URN or dotted name) plus the squashed form.
"""
from __future__ import annotations

import re
from typing import Any

from dashboard.formats.scim.redact import (
    REDACTED,
    RedactionRules,
    redact_body,
    redact_text,
)

TEXT_CACHE_SIZE = 20_000  # texts remembered per redactor (then forgotten all at once)
TEXT_CACHED_CHARS = 300  # longer texts (a reason quoting a JSON answer) are redacted each time
_UNKNOWN = "?"  # not yet in the cache (a kind is "redact", "mask" or None)
_LEAF_INDEX = re.compile(r"\[[^\]]*\]")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


class Redactor:
    """The rules, with a cache of which names are secret. One per rules object (see `redactor_for`)."""

    def __init__(self, rules: RedactionRules) -> None:
        self.rules = rules
        self._kinds: dict[str, str | None] = {}
        self._texts: dict[str, str | None] = {}  # short text -> its redaction (None: unchanged)
        names = sorted(rules.attributes | rules.masked, key=len, reverse=True)
        # "pin": "1234" or \"pin\":\"1234\" inside a reason's quoted JSON answer
        self._in_text = re.compile(
            r'((?:\\?")(?:[^"\\]{0,200}[:.])?(' + "|".join(re.escape(n) for n in names) + r')\\?"\s*:\s*)'
            r'(\\?"(?:[^"\\]|\\.)*?\\?"|[^,}\]\s]+)',
            re.IGNORECASE,
        ) if names else None

    def kind(self, name: str) -> str | None:
        """"redact", "mask" or None for an attribute name."""
        try:
            return self._kinds[name]
        except KeyError:
            pass
        kind = self._kind(name)
        if len(self._kinds) < 50_000:
            self._kinds[name] = kind
        return kind

    def _kind(self, name: str) -> str | None:
        leaf = _LEAF_INDEX.sub("", name)
        for sep in (":", "."):
            if sep in leaf:
                leaf = leaf.rsplit(sep, 1)[-1]
        leaf = leaf.strip().lower()
        squashed = _NOT_ALNUM.sub("", name.lower())
        rules = self.rules
        for kind, names in (("redact", rules.attributes), ("mask", rules.masked)):
            if leaf in names or squashed in names:
                return kind
            if squashed.startswith("urn") and any(squashed.endswith("user" + n) for n in names):
                return kind
        return None

    def value(self, kind: str | None, value: Any) -> Any:
        if kind is None or value is None:
            return value
        if kind == "redact":
            return REDACTED
        return self.mask(value)

    def mask(self, value: Any) -> Any:
        """All but the last `mask_keep` characters replaced, as ingest/redact.py masks."""
        if value is None:
            return None
        if isinstance(value, list):
            return [self.mask(v) for v in value]
        text = str(value)
        keep = self.rules.mask_keep if len(text) > self.rules.mask_keep else 0
        return "*" * (len(text) - keep) + text[len(text) - keep :]

    def details(self, details: dict[str, Any]) -> dict[str, Any]:
        """`details` with secret values replaced; the same dict when nothing is secret."""
        out = None
        kinds = self._kinds
        for key, value in details.items():
            kind = kinds.get(key, _UNKNOWN)
            if kind is _UNKNOWN:
                kind = self.kind(key) if key.__class__ is str else None
            if kind is not None:
                new = self.value(kind, value)
            elif isinstance(value, dict | list):
                new = redact_body(value, self.rules)
            elif value.__class__ is str:
                new = self.text(value)
            else:
                continue
            if new is not value:
                if out is None:
                    out = dict(details)
                out[key] = new
        return details if out is None else out

    def text(self, text: str | None) -> str | None:
        """A reason (or any text of an event) with every secret written in it replaced: quoted
        JSON of the target's answer, a PatchOp quoted with its path, a query string, a bearer
        credential (the one text redaction, ingest/redact.py `redact_text`), and the squashed
        attribute names of Entra's export steps."""
        if not text:
            return text
        texts = self._texts
        try:
            done = texts[text]
        except KeyError:
            pass
        else:  # the same text again (step names, "True", a user's name): the same answer
            return text if done is None else done
        clean = text
        if self._in_text is not None and '"' in clean:
            clean = self._in_text.sub(self._replace_in_text, clean)
        clean = redact_text(clean, self.rules)
        if len(text) <= TEXT_CACHED_CHARS:
            if len(texts) >= TEXT_CACHE_SIZE:
                texts.clear()  # a hard bound: memory never grows with the input
            texts[text] = None if clean == text else clean
        return clean

    def record(self, value: Any) -> Any:
        """A whole decoded record with every secret replaced (for the raw text of a rejected one).

        Slower than the parser's own redaction, and thorough: modified properties
        ({displayName, oldValue, newValue}), secret keys at any depth, JSON inside strings.
        """
        if isinstance(value, dict):
            name = next((v for k, v in value.items() if isinstance(k, str) and k.lower() == "displayname"), None)
            name_kind = self.kind(name) if isinstance(name, str) else None
            out = {}
            for key, item in value.items():
                kind = self.kind(key) if isinstance(key, str) else None
                if name_kind is not None and isinstance(key, str) and key.lower() in ("oldvalue", "newvalue"):
                    kind = name_kind
                out[key] = self.value(kind, item) if kind is not None else self.record(item)
            return out
        if isinstance(value, list):
            return [self.record(item) for item in value]
        if isinstance(value, str):
            return self.raw_text(value)
        return value

    def raw_text(self, text: str) -> str:
        """Text that may hold JSON (a rejected line or record): secret values replaced."""
        text = self.text(text) or ""
        if '"' not in text:
            return text
        return _OBJECT.sub(self._replace_in_property, text)

    def _replace_in_property(self, match: re.Match[str]) -> str:
        segment = match.group(0)
        name = _DISPLAY_NAME.search(segment)
        kind = self.kind(name.group(1)) if name else None
        if kind is None:
            return segment

        def replace(value: re.Match[str]) -> str:
            raw = value.group(2)
            if raw == "null":
                return value.group(0)
            quote = '\\"' if raw.startswith('\\"') else ('"' if raw.startswith('"') else "")
            inner = raw[len(quote) : len(raw) - len(quote)] if quote else raw
            new = REDACTED if kind == "redact" else self.mask(inner)
            quote = quote or '"'  # a bare number becomes a string
            return f"{value.group(1)}{quote}{new}{quote}"

        return _PROPERTY_VALUE.sub(replace, segment)

    def _replace_in_text(self, match: re.Match[str]) -> str:
        prefix, name, value = match.group(1), match.group(2), match.group(3)
        quote = '\\"' if value.startswith('\\"') else ('"' if value.startswith('"') else "")
        inner = value[len(quote) : len(value) - len(quote)] if quote else value
        kind = self.kind(name)
        new = REDACTED if kind == "redact" else self.mask(inner)
        return f"{prefix}{quote}{new}{quote}"


_OBJECT = re.compile(r"\{[^{}]*\}")
_DISPLAY_NAME = re.compile(r'displayName\\?"\s*:\s*\\?"([^"\\]*)', re.IGNORECASE)
_PROPERTY_VALUE = re.compile(
    r'((?:old|new)Value\\?"\s*:\s*)(\\?"(?:[^"\\]|\\.)*?\\?"|[^,}\s]+)', re.IGNORECASE
)

_REDACTORS: dict[tuple[frozenset[str], frozenset[str], int], Redactor] = {}


def redactor_for(rules: RedactionRules) -> Redactor:
    key = (rules.attributes, rules.masked, rules.mask_keep)
    found = _REDACTORS.get(key)
    if found is None:
        if len(_REDACTORS) > 32:
            _REDACTORS.clear()
        found = _REDACTORS[key] = Redactor(rules)
    return found
