"""Fit a value into a column of limited length the same way on every database.

PostgreSQL refuses a `varchar(n)` value longer than n characters; SQLite stores it whole. A
value that reaches a limited column goes through `fit` first, so that both keep the same text:
its first n - 1 characters and a marker saying it was cut.
"""
from __future__ import annotations

CUT_MARK = "…"  # the last character of a value that was cut to fit its column


def fit(value: str | None, size: int) -> str | None:
    """`value` unchanged when it has at most `size` characters, else its start and CUT_MARK
    (`size` characters in all). None stays None."""
    if value is None or len(value) <= size:
        return value
    return value[: size - 1] + CUT_MARK
