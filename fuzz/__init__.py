"""Fuzz every reader of the dashboard's inputs: `make fuzz` (or `.venv/bin/python -m fuzz`).

Readers: SCIM request log v1 lines (parse + prepare), Graph pages, the portal's JSON and CSV
downloads, Log Analytics rows, and job status documents. Each input is generated from a valid
seed (the simulator, tests/data) by mutation, or built hostile from scratch (deep nesting, huge
numbers, NaN, wrong types, Unicode, truncation at every position, duplicated keys, BOMs, dates
far in the future or past). Every input must come out stored or rejected with a reason; an
exception, or an accepted record the database could not store, fails the run with a minimal
reproducer. Outside the default test suite (tests/formats/test_fuzz_smoke.py runs it tiny).
"""
