"""Names in a list of people: two who share a userName are told apart."""
from __future__ import annotations

from dashboard.analysis.identity import people_labels


def test_distinct_names_are_shown_as_they_are():
    assert people_labels([("a@contoso.com", "ext-a", "id-a", 1), (None, "ext-b", None, 2), (None, None, "id-c", 3),
                          (None, None, None, 4)]) == ["a@contoso.com", "ext-b", "id-c", "user 4"]


def test_a_shared_name_gets_what_tells_each_person_apart():
    labels = people_labels([("sam@contoso.com", "ext-1", "id-1", 1), ("SAM@contoso.com", "ext-2", None, 2),
                            ("sam@contoso.com", None, "id-3", 3), ("sam@contoso.com", None, None, 4)])

    assert labels == ["sam@contoso.com (externalId ext-1)", "SAM@contoso.com (externalId ext-2)",
                      "sam@contoso.com (SCIM id id-3)", "sam@contoso.com (#4)"]
    assert len(set(labels)) == 4


def test_a_unicode_variant_of_a_name_counts_as_the_same_name():
    # a no-break space and full-width letters: one name to the target's uniqueness check
    labels = people_labels([("jo smith", "e1", None, 1), ("jo\u00a0ＳＭＩＴＨ", "e2", None, 2)])

    assert labels == ["jo smith (externalId e1)", "jo\u00a0ＳＭＩＴＨ (externalId e2)"]
