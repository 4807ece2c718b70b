"""Analysis: cycles, per-user outcomes, error signatures, health and quarantine."""
