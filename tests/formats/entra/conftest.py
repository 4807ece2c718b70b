"""Helpers for the Entra tests: fixture files under tests/data/entra."""
from __future__ import annotations

from pathlib import Path

from dashboard.formats.entra.parse import read_events
from dashboard.formats.entra.records import ProvisioningEvent
from dashboard.formats.scim.records import ParseProblem

DATA = Path(__file__).resolve().parents[2] / "data" / "entra"


def read(name: str, fmt: str | None = None, **kwargs) -> list[ProvisioningEvent | ParseProblem]:
    with open(DATA / name, "rb") as stream:
        return list(read_events(stream, fmt, **kwargs))


def events(items: list) -> list[ProvisioningEvent]:
    return [i for i in items if isinstance(i, ProvisioningEvent)]


def problems(items: list) -> list[ParseProblem]:
    return [i for i in items if isinstance(i, ParseProblem)]
