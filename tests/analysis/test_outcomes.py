"""A user's outcome in a cycle, folded from their exchanges in any order."""
from __future__ import annotations

import itertools

import pytest

from dashboard.analysis.outcomes import Fact, Outcome, Summary, bucket_of


def fold(*facts: Fact) -> Summary:
    summary = Summary.of(facts[0])
    for fact in facts[1:]:
        summary = summary.merge(Summary.of(fact))
    return summary


LOOKUP_EMPTY = Fact(1, 100, "lookup", 200)
CREATE_OK = Fact(2, 200, "create", 201)
CREATE_409 = Fact(3, 200, "create", 409)


@pytest.mark.parametrize(
    ("facts", "outcome", "operation"),
    [
        ((LOOKUP_EMPTY, CREATE_OK), Outcome.SUCCESS, "create"),
        ((LOOKUP_EMPTY, CREATE_409), Outcome.FAILURE, "create"),
        ((Fact(1, 100, "lookup", 200),), Outcome.SKIPPED, "none"),  # found, nothing to change
        ((Fact(1, 100, "lookup", 401),), Outcome.FAILURE, "none"),
        ((Fact(1, 100, "lookup", 404),), Outcome.FAILURE, "none"),  # nothing happened for this user
        ((Fact(1, 100, "lookup", 200), Fact(2, 150, "disable", 200)), Outcome.SUCCESS, "disable"),
        ((Fact(1, 100, "delete", 0),), Outcome.FAILURE, "delete"),
        # a retry within the cycle that succeeded: the last request decides
        ((Fact(1, 100, "update", 429), Fact(2, 300, "update", 200)), Outcome.SUCCESS, "update"),
    ],
)
def test_it_reads_the_outcome_from_the_users_last_request(facts, outcome, operation):
    summary = fold(*facts)

    assert summary.outcome is outcome
    assert summary.operation == operation


def test_it_folds_in_any_order_to_the_same_summary():
    facts = [Fact(1, 100, "lookup", 200), Fact(2, 200, "update", 500), Fact(3, 300, "update", 200), Fact(4, 50, "lookup", 200)]
    results = {fold(*order) for order in itertools.permutations(facts)}

    assert len(results) == 1
    assert results.pop().writes == 2


def test_it_round_trips_through_json():
    summary = fold(LOOKUP_EMPTY, CREATE_409)

    assert Summary.from_dict(summary.to_dict()) == summary


@pytest.mark.parametrize(("operation", "bucket"), [("create", "create"), ("enable", "other"), ("none", "other"), ("delete", "delete")])
def test_it_puts_each_operation_in_its_matrix_row(operation, bucket):
    assert bucket_of(operation) == bucket
