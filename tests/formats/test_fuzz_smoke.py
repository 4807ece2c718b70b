"""The fuzz harness (`make fuzz`, fuzz/) run tiny inside the default suite, so that it cannot rot.

No timing assertions: only that every reader's inputs are generated, run and accounted for, and
that a failure is caught, minimised and reported.
"""
from __future__ import annotations

import json

import pytest

from fuzz import __main__ as harness
from fuzz.readers import READERS, Case, Unstorable

SMALL = 300


@pytest.mark.parametrize("reader", READERS)
def test_every_input_of_a_small_run_is_stored_or_rejected_with_a_reason(reader):
    tally = harness.run_chunk((reader, 0, SMALL, 1))

    assert tally.inputs == SMALL
    assert tally.accepted > 0 and tally.rejected > 0  # the generator reaches both outcomes
    assert {key: f["traceback"][-400:] for key, f in tally.failures.items()} == {}
    assert (tally.exceptions, tally.unstorable) == (0, 0)


def test_the_same_seed_generates_the_same_inputs():
    import random

    reader = READERS["graph"]
    first = [reader.generate(random.Random(f"7:graph:{i}"), i, reader) for i in range(20)]
    again = [reader.generate(random.Random(f"7:graph:{i}"), i, reader) for i in range(20)]

    assert first == again


def test_the_command_prints_the_figures_of_each_reader(capsys):
    assert harness.main(["--n", "40", "--jobs", "1", "--readers", "v1,portal-csv"]) == 0

    out = capsys.readouterr().out
    assert "every input was stored or rejected with a reason" in out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith(("v1 ", "portal-csv "))] == [
        ["v1", "40"], ["portal-csv", "40"]]


def test_a_failure_exits_1_with_a_minimised_reproducer_that_replays(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(harness, "FAILURES", tmp_path)
    original = READERS["v1"].run

    def fragile(case: Case) -> tuple[int, int]:
        if b'"method"' in case.parts["line"]:
            raise KeyError("method")
        if b"POST" in case.parts["line"]:
            raise Unstorable("exchange.method", "too long")
        return original(case)

    monkeypatch.setattr(READERS["v1"], "run", fragile)

    assert harness.main(["--n", "30", "--jobs", "1", "--readers", "v1"]) == 1

    out = capsys.readouterr().out
    assert "--- v1: KeyError at" in out and "minimal reproducer:" in out
    saved = sorted(tmp_path.glob("v1-KeyError*.json"))
    assert saved
    case = json.loads(saved[0].read_text())
    assert case["parts"]["line"] == '"method"'  # nothing else is needed to fail the same way
    assert harness.replay(str(saved[0])) == 1
