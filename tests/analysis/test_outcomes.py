"""A user's outcome in a cycle, folded from their exchanges in any order."""
from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard.analysis.outcomes import Fact, Outcome, Summary, bucket_of
from dashboard.analysis.users import CycleOutcome, UserState, user_state


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


facts = st.builds(Fact, id=st.integers(1, 2**40), ts_us=st.integers(10**15, 2 * 10**15),
                  operation=st.sampled_from(["lookup", "create", "update", "disable", "delete", "enable"]),
                  status=st.sampled_from([0, 200, 201, 204, 400, 401, 404, 409, 429, 500]),
                  found=st.sampled_from([None, True, False]))


@given(st.lists(facts, min_size=1, max_size=6))
def test_any_summary_round_trips_through_its_stored_json(some):
    summary = fold(*some)

    assert Summary.from_dict(orjson.loads(orjson.dumps(summary.to_dict()))) == summary


def test_it_still_reads_the_first_list_form_and_writes_half_its_bytes():
    summary = fold(Fact(3, 1795852800035000, "lookup", 200, found=False), Fact(5, 1795852800074000, "create", 201))
    form_1 = [1795852800035000, 1795852800074000, 2, 1, 0, 1, [1795852800074000, 5, "create", 201],
              [1795852800074000, 5, "create", 201], None, 0, 1]

    assert Summary.from_dict(form_1) == summary
    assert len(orjson.dumps(summary.to_dict())) <= len(orjson.dumps(form_1)) * 0.6


@pytest.mark.parametrize(("operation", "bucket"), [("create", "create"), ("enable", "other"), ("none", "other"), ("delete", "delete")])
def test_it_puts_each_operation_in_its_matrix_row(operation, bucket):
    assert bucket_of(operation) == bucket


def test_a_write_carried_out_before_a_failure_of_the_cycle_is_remembered():
    # created, then a PATCH of a stale id answered 404: the cycle failed, the account was made
    summary = fold(LOOKUP_EMPTY, CREATE_OK, Fact(4, 300, "update", 404))

    assert (summary.outcome, summary.operation, summary.done) == (Outcome.FAILURE, "update", "create")
    assert Summary.from_dict(orjson.loads(orjson.dumps(summary.to_dict()))) == summary
    assert fold(LOOKUP_EMPTY, CREATE_409).done is None
    # a summary stored before this was kept: the latest write, when it was carried out
    assert Summary.from_dict([2, 100, 100, 2, 1, 0, 1, [0, 1, "lookup", 200], [100, 2, "create", 201], None]).done \
        == "create"


def test_a_failed_cycle_keeps_the_account_its_earlier_writes_made():
    # created again in the target, then a PATCH of the old, deleted id answered 404
    state = user_state([CycleOutcome(1, 100, "update", "failure", 200, 9, 200, None, done="create")])

    assert (state.state, state.provisioned) == (UserState.FAILING, True)
    assert user_state([CycleOutcome(1, 100, "create", "failure", 200, 9, 200)]).provisioned is False
    disabled = user_state([CycleOutcome(1, 100, "create", "success", 50),
                           CycleOutcome(2, 200, "update", "failure", 250, 9, 250, None, done="disable")])
    assert (disabled.state, disabled.provisioned) == (UserState.FAILING, True)
