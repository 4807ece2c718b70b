"""The pure rules of names (ingest/identity.py): which spellings are one name, and how a page
shows the characters a person cannot tell apart."""
from __future__ import annotations

import pytest

from dashboard.analysis.identity import name_key, says_gone, visible


@pytest.mark.parametrize(("a", "b"), [
    ("ryan\u00a0smith@contoso.com", "ryan smith@contoso.com"),  # no-break space
    ("Ryan.Smith@Contoso.com", "ryan.smith@contoso.com"),  # case
    ("ryan.smith\uff20contoso.com", "ryan.smith@contoso.com"),  # full-width @
    ("jose\u0301@contoso.com", "jos\u00e9@contoso.com"),  # decomposed accent
    ("  ryan   smith ", "ryan smith"),  # white space runs
    ("STRASSE", "strasse"),
])
def test_spellings_of_one_name_have_one_key(a, b):  # type: ignore[no-untyped-def]
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(("a", "b"), [
    ("ryan.smith@contoso.com", "ryan.smyth@contoso.com"),
    ("ryan smith", "ryansmith"),
])
def test_different_names_have_different_keys(a, b):  # type: ignore[no-untyped-def]
    assert name_key(a) != name_key(b)


def test_no_name_has_no_key():
    assert name_key(None) is None and name_key("") is None and name_key(" \u00a0 ") is None


def test_a_page_shows_invisible_characters_by_code_point():
    assert visible("ryan\u00a0smith@contoso.com") == "ryan\u27e8U+00A0\u27e9smith@contoso.com"
    assert visible("a\u200db") == "a\u27e8U+200D\u27e9b"
    assert visible("plain name@contoso.com") == "plain name@contoso.com"


@pytest.mark.parametrize(("operation", "status", "gone"), [
    ("delete", 204, True), ("delete", 200, True), ("delete", 404, True), ("update", 404, True),
    ("disable", 404, True), ("read", 404, True), ("delete", 500, False), ("update", 204, False),
    ("read", 200, False), ("lookup", 404, False), ("create", 404, False), ("update", 0, False),
])
def test_a_successful_delete_or_a_404_by_id_says_the_id_is_gone(operation, status, gone):  # type: ignore[no-untyped-def]
    assert says_gone(operation, status) is gone
