"""Read Entra's loosely typed values: timestamps, durations, actions, statuses, retry wording."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboard.formats.entra.records import ProvisioningStatus


class ValueProblem(ValueError):
    """A value that cannot be read; the caller names the field."""


# ISO 8601 as Graph writes it (1-7 fractional digits, "Z"), also with a space, an offset, a
# trailing "UTC", or no zone at all (downloads are in UTC [DL]). The patterns that read numbers
# take ASCII digits only ([0-9]: `\d` is any Unicode digit, and int() reads full-width ones) and
# match to the very end (\Z: `$` also matches before a final newline). `\s` stays Unicode: .NET
# on ICU writes a narrow no-break space before AM/PM.
_ISO = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?)?\s*"
    r"(?:([Zz]|[+-][0-9]{2}:?[0-9]{2})|\s*UTC)?\s*(?:UTC)?\Z"
)
# .NET's en-US invariant form, seen in step details ("3/24/2026 7:17:42 AM") and in Log
# Analytics CSV exports ("1/22/2021, 8:14:33.894 PM"). Month first unless the first part > 12.
_US = re.compile(
    r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}),?\s+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"\s*([AaPp][Mm])?\s*(?:Z|UTC)?\Z"
)
_NEVER = datetime(1, 1, 1, tzinfo=UTC)


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from Entra's timestamp text. Raises ValueProblem."""
    if not isinstance(value, str):
        raise ValueProblem("must be a date-time string")
    text = value.strip()
    match = _ISO.match(text)
    if match:
        year, month, day, hour, minute, second, frac, zone = match.groups()
        try:
            stamp = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                int((frac + "000000")[:6]) if frac else 0, UTC,
            )
        except ValueError as exc:
            raise ValueProblem(f"is not a valid date-time: {exc}") from None
        if zone and zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            try:
                stamp -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable instant
                raise ValueProblem(f"is out of range in UTC: {text[:40]!r}") from None
        return stamp
    match = _US.match(text)
    if match:
        first, second_part, year, hour, minute, second, frac, meridiem = match.groups()
        month, day = (int(first), int(second_part)) if int(first) <= 12 else (int(second_part), int(first))
        hours = int(hour)
        if meridiem:
            if not 1 <= hours <= 12:
                raise ValueProblem(f"is not a valid date-time: {text[:40]!r}")
            hours = hours % 12 + (12 if meridiem.lower() == "pm" else 0)
        try:
            return datetime(
                int(year), month, day, hours, int(minute), int(second or 0),
                int((frac + "000000")[:6]) if frac else 0, UTC,
            )
        except ValueError as exc:
            raise ValueProblem(f"is not a valid date-time: {exc}") from None
    raise ValueProblem(f"is not a date-time: {text[:40]!r}")


def optional_time(value: Any) -> datetime | None:
    """A timestamp, or None for null, "" and Graph's 0001-01-01 (never); garbage is None too."""
    if value is None or value == "":
        return None
    try:
        stamp = parse_time(value)
    except ValueProblem:
        return None
    return None if stamp == _NEVER else stamp


def parse_duration_ms(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueProblem("must be a number of milliseconds")
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", ""))
        except ValueError:
            raise ValueProblem(f"must be a number of milliseconds, got {value[:20]!r}") from None
    if not isinstance(value, int | float) or value != value or value < 0 or value == float("inf"):
        raise ValueProblem("must be a finite, non-negative number of milliseconds")
    return int(value)


_ISO_DURATION = re.compile(
    r"^P(?:([0-9]+)Y)?(?:([0-9]+)M)?(?:([0-9]+)W)?(?:([0-9]+)D)?"
    r"(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?\Z"
)


def parse_iso_duration(value: Any) -> timedelta | None:
    """A fixed-length ISO 8601 duration ("PT40M", "P10675199DT2H48M5.4775807S").

    None for anything else, and for years or months, which have no fixed length. (The Graph
    schedule page says "PT1M represents a period of 1 month"; in ISO 8601 it is one minute.)
    """
    if not isinstance(value, str):
        return None
    match = _ISO_DURATION.match(value.strip().upper())
    if not match or value.strip().upper() in ("P", "PT"):
        return None
    years, months, weeks, days, hours, minutes, seconds = match.groups()
    if years or months:
        return None
    try:
        return timedelta(
            weeks=int(weeks or 0), days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
    except (OverflowError, ValueError):  # beyond timedelta, or a number of thousands of digits
        return None


def squash(name: str) -> str:
    """A header or key reduced to lower-case letters and digits: "Change ID" -> "changeid"."""
    try:
        return _SQUASHED[name]
    except KeyError:
        squashed = _NOT_ALNUM.sub("", name.lower())
        if len(_SQUASHED) < 50_000:  # keys and headers repeat; free text is not cached for ever
            _SQUASHED[name] = squashed
        return squashed


_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_SQUASHED: dict[str, str] = {}

_STATUSES = {
    "success": ProvisioningStatus.SUCCESS,
    "succeeded": ProvisioningStatus.SUCCESS,
    "successful": ProvisioningStatus.SUCCESS,
    "failure": ProvisioningStatus.FAILURE,
    "failed": ProvisioningStatus.FAILURE,
    "fail": ProvisioningStatus.FAILURE,
    "skipped": ProvisioningStatus.SKIPPED,
    "skip": ProvisioningStatus.SKIPPED,
    "warning": ProvisioningStatus.WARNING,
    "warn": ProvisioningStatus.WARNING,
}
_FAST_STATUSES = {**_STATUSES, "Success": ProvisioningStatus.SUCCESS, "Failure": ProvisioningStatus.FAILURE,
                  "Skipped": ProvisioningStatus.SKIPPED, "Warning": ProvisioningStatus.WARNING}


def status_of(value: Any) -> ProvisioningStatus:
    if not isinstance(value, str):  # (an object or array cannot even be looked up)
        raise ValueProblem("must be a string")
    found = _FAST_STATUSES.get(value)
    if found is not None:
        return found
    found = _STATUSES.get(squash(value))
    if found is None:
        raise ValueProblem(f"is not success, failure, skipped or warning: {value[:40]!r}")
    return found


_STEP_TYPES = {
    t.lower(): t for t in ("import", "scoping", "matching", "processing", "referenceResolution", "export")
}


def step_type_of(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    return _STEP_TYPES.get(text) or _STEP_TYPES.get(squash(text)) or text


def step_status_of(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = value if isinstance(value, str) else str(value)
    found = _FAST_STATUSES.get(text)
    if found is None:
        found = _STATUSES.get(squash(text))
    return found.value if found is not None else text


# "This operation was retried 1 times. It will be retried again after this date:
# 2026-03-24T13:23:44.9198514Z UTC" [observed]; read leniently (time/times, with or without
# "this date", ISO or en-US dates).
_RETRIED = re.compile(r"retried\s+([0-9]+)\s+times?\b", re.IGNORECASE)
_RETRY_AFTER = re.compile(
    r"retried\s+again\s+after(?:\s+this\s+date)?\s*:?\s*"
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.,]+\s*(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?"
    r"|[0-9]{1,2}/[0-9]{1,2}/[0-9]{4},?\s+[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?\s*(?:[AaPp][Mm])?)",
    re.IGNORECASE,
)


def retry_of(reason: str | None) -> tuple[int | None, datetime | None]:
    """(retry count, next retry time) from a failure reason; (None, None) when it says neither."""
    if not reason or "retried" not in reason.lower():
        return None, None
    count = _RETRIED.search(reason)
    after = _RETRY_AFTER.search(reason)
    next_at = None
    if after:
        try:
            next_at = parse_time(after.group(1).strip().rstrip(".,"))
        except ValueProblem:
            next_at = None
    digits = count.group(1) if count else ""
    return (int(digits) if 0 < len(digits) <= 18 else None), next_at
