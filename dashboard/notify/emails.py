"""Render an email from its three templates: templates/emails/<name>-subject.txt, -body.txt, -body.html."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from dashboard.analysis.causes import processed_words

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates"
SUBJECT_PREFIX = "[Provisioning] "


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_email(name: str, ctx: dict[str, Any]) -> RenderedEmail:
    """All three parts from the same context; a missing variable is an error, not a blank."""
    env = _environment()
    subject = env.get_template(f"emails/{name}-subject.txt").render(ctx)
    text = env.get_template(f"emails/{name}-body.txt").render(ctx)
    html = env.get_template(f"emails/{name}-body.html").render(ctx)
    subject = re.sub(r"\s+", " ", subject).strip()
    if not subject.startswith("["):  # a job's email names the job first ("[uniFLOW EMEA] ...")
        subject = SUBJECT_PREFIX + subject
    return RenderedEmail(subject[:300], _tidy(text), html)


def link(base_url: str, *parts: str | int) -> str:
    """An absolute dashboard link: the configured base URL and the path parts, each quoted."""
    return base_url.rstrip("/") + "".join("/" + quote(str(p), safe="") for p in parts)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = _when
    env.filters["processed"] = processed_words
    env.filters["pct"] = lambda share: f"{share:.0%}" if share is not None else "?"
    return env


def _when(iso: str | None) -> str:
    """2026-11-28T09:00:00.000Z -> 2026-11-28 09:00 UTC."""
    return f"{iso[:10]} {iso[11:16]} UTC" if iso else "-"


def _tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
